module github.com/modelauth/modelauth

go 1.26
