package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bin", "bootstrap")
	if err := os.MkdirAll(filepath.Dir(bootstrap), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bootstrap, []byte("\x7fELF..."), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfg, []byte(`{"services":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "fn.zip")
	if err := write(out, []string{bootstrap, cfg}); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(first), int64(len(first)))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		mode os.FileMode
		body string
	}{{"bootstrap", 0o755, "\x7fELF..."}, {"modelauth.json", 0o644, `{"services":[]}`}}
	if len(zr.File) != len(want) {
		t.Fatalf("%d entries; want %d", len(zr.File), len(want))
	}
	for i, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name != want[i].name || f.Mode() != want[i].mode || string(body) != want[i].body {
			t.Errorf("entry %d = %s %v %q; want %s %v %q", i, f.Name, f.Mode(), body, want[i].name, want[i].mode, want[i].body)
		}
	}

	// The same files make the same zip.
	if err := write(out, []string{bootstrap, cfg}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, first) {
		t.Errorf("a second zip of the same files differs")
	}

	for _, bad := range [][]string{nil, {filepath.Join(dir, "missing")}, {bootstrap, bootstrap}, {dir}} {
		if err := write(filepath.Join(dir, "bad.zip"), bad); err == nil {
			t.Errorf("write(%q) succeeded; want an error", bad)
		}
		if _, err := os.Stat(filepath.Join(dir, "bad.zip")); err == nil {
			t.Errorf("write(%q) left bad.zip", bad)
		}
	}
}
