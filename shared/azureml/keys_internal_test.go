package azureml

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != KeyLength || strings.Trim(k, KeyAlphabet) != "" || CheckKey(k) != nil {
			t.Fatalf("GenerateKey() = %q: want %d characters of the alphabet", k, KeyLength)
		}
		if seen[k] {
			t.Fatal("a key repeated")
		}
		seen[k] = true
	}
}

func TestCheckKey(t *testing.T) {
	good := strings.Repeat("aZ09", 8)
	for k, ok := range map[string]bool{
		good:                     true,
		strings.Repeat("x", 128): true,
		strings.Repeat("x", 129): false,
		good[:31]:                false,
		good[:31] + "-":          false,
		good[:31] + "_":          false,
		good[:31] + "/":          false,
		good[:31] + "@":          false,
		good[:31] + "[":          false,
		good[:31] + "`":          false,
		good[:31] + "{":          false,
		good[:31] + ":":          false,
		good[:31] + " ":          false,
		good[:30] + "é":          false,
		"":                       false,
	} {
		if err := CheckKey(k); (err == nil) != ok || (err != nil && !errors.Is(err, ErrKeyFormat)) {
			t.Errorf("CheckKey(%q) = %v; want ok %v", k, err, ok)
		}
	}
}
