// Command mkzip writes a Lambda deployment package: a zip with the given
// files at its root, so that `make lambda` needs nothing but Go. A file
// that is executable on disk (the bootstrap) is stored with mode 0755,
// any other with 0644; every entry carries the same fixed time, so the
// same files always make the same zip.
//
//	go run ./cmd/lambda/internal/mkzip -o build/lambda/modelauth-arm64.zip build/lambda/arm64/bootstrap modelauth.json
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// modified is every entry's time: zip's earliest, 1980-01-01.
var modified = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	out := flag.String("o", "", "the zip file to write")
	flag.Parse()
	if err := write(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

// write writes the zip out holding files at its root, replacing out only
// once the zip is complete.
func write(out string, files []string) (err error) {
	if out == "" || len(files) == 0 {
		return errors.New("usage: mkzip -o out.zip file...")
	}
	seen := map[string]bool{}
	for _, f := range files {
		if b := filepath.Base(f); seen[b] {
			return fmt.Errorf("two files named %s", b)
		} else {
			seen[b] = true
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkzip-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	for _, f := range files {
		if err := add(zw, f); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func add(zw *zip.Writer, file string) error {
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file)
	}
	mode := os.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	h := &zip.FileHeader{Name: filepath.Base(file), Method: zip.Deflate, Modified: modified}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, src)
	return err
}
