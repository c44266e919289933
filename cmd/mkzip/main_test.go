package main

import (
	"archive/zip"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// zipEntry is an entry as read back from a zip.
type zipEntry struct {
	name string
	mode os.FileMode
	body string
}

// mkfile writes body to dir/rel with perm, making its folders.
func mkfile(t *testing.T, dir, rel, body string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask; the tests need it exact.
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// readZip reads every entry of the zip at path, in the zip's order.
func readZip(t *testing.T, path string) []zipEntry {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var got []zipEntry
	for _, f := range zr.File {
		if !f.Modified.Equal(modified) {
			t.Errorf("%s: modified %v; want %v", f.Name, f.Modified, modified)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, zipEntry{f.Name, f.Mode(), string(body)})
	}
	return got
}

func TestWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the tests rely on the execute bit, which Windows does not keep")
	}
	dir := t.TempDir()
	bootstrap := mkfile(t, dir, "bin/bootstrap", "\x7fELF...", 0o700)
	cfg := mkfile(t, dir, "modelauth.json", `{"services":[]}`, 0o600)
	// An app folder as `make stage` makes one, in an order that sorts
	// differently by walk and by name ("b.json" < "b/function.json").
	app := filepath.Join(dir, "app")
	mkfile(t, app, "host.json", `{"version":"2.0"}`, 0o644)
	mkfile(t, app, "handler", "\x7fELF-handler", 0o755)
	mkfile(t, app, "b/function.json", `{"bindings":[]}`, 0o600)
	mkfile(t, app, "b.json", `{}`, 0o644)
	mkfile(t, app, "a/deep/er/x.sh", "#!/bin/sh\n", 0o750)
	if err := os.MkdirAll(filepath.Join(app, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The app folder through a symbolic link: -C follows a link given as
	// the folder itself.
	appLink := filepath.Join(dir, "applink")
	if err := os.Symlink(app, appLink); err != nil {
		t.Fatal(err)
	}

	// The tree, whether named directly or through a link.
	tree := []zipEntry{
		{"a/deep/er/x.sh", 0o755, "#!/bin/sh\n"},
		{"b.json", 0o644, `{}`},
		{"b/function.json", 0o644, `{"bindings":[]}`},
		{"handler", 0o755, "\x7fELF-handler"},
		{"host.json", 0o644, `{"version":"2.0"}`},
	}
	tests := []struct {
		name  string
		dir   string
		files []string
		want  []zipEntry
	}{{
		name:  "flat",
		files: []string{cfg, bootstrap},
		want:  []zipEntry{{"bootstrap", 0o755, "\x7fELF..."}, {"modelauth.json", 0o644, `{"services":[]}`}},
	}, {
		name: "tree",
		dir:  app,
		want: tree,
	}, {
		name: "tree through a link",
		dir:  appLink,
		want: tree,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.zip")
			if err := write(out, tt.dir, tt.files); err != nil {
				t.Fatal(err)
			}
			got := readZip(t, out)
			if len(got) != len(tt.want) {
				t.Fatalf("entries %v; want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %s %v %q; want %s %v %q", i, got[i].name, got[i].mode, got[i].body, tt.want[i].name, tt.want[i].mode, tt.want[i].body)
				}
			}
			if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].name < got[j].name }) {
				t.Errorf("entries not sorted: %v", got)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("the zip's own mode: %v, %v; want 0644", fi, err)
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".mkzip-*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}

			// The same files make the same zip.
			first, _ := os.ReadFile(out)
			if err := write(out, tt.dir, tt.files); err != nil {
				t.Fatal(err)
			}
			if again, _ := os.ReadFile(out); !bytes.Equal(again, first) {
				t.Errorf("a second zip of the same files differs")
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the tests make symbolic links")
	}
	dir := t.TempDir()
	bootstrap := mkfile(t, dir, "bin/bootstrap", "\x7fELF...", 0o755)
	other := mkfile(t, dir, "other/bootstrap", "\x7fELF!!!", 0o755)
	good := filepath.Join(dir, "good")
	mkfile(t, good, "host.json", "{}", 0o644)
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	withLink := filepath.Join(dir, "withlink")
	mkfile(t, withLink, "host.json", "{}", 0o644)
	linked := filepath.Join(withLink, "sub", "linked.json")
	if err := os.MkdirAll(filepath.Dir(linked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(withLink, "host.json"), linked); err != nil {
		t.Fatal(err)
	}
	withDirLink := filepath.Join(dir, "withdirlink")
	mkfile(t, withDirLink, "host.json", "{}", 0o644)
	if err := os.Symlink(good, filepath.Join(withDirLink, "alias")); err != nil {
		t.Fatal(err)
	}
	fileLink := filepath.Join(dir, "bootstrap-link")
	if err := os.Symlink(bootstrap, fileLink); err != nil {
		t.Fatal(err)
	}
	// A special file: a Unix socket.
	withSocket := filepath.Join(dir, "withsocket")
	mkfile(t, withSocket, "host.json", "{}", 0o644)
	ln, err := net.Listen("unix", filepath.Join(withSocket, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out := filepath.Join(dir, "bad.zip")

	tests := []struct {
		name    string
		out     string
		dir     string
		files   []string
		wantErr string
	}{
		{"no arguments", out, "", nil, "usage"},
		{"no output", "", "", []string{bootstrap}, "usage"},
		{"no output, tree", "", good, nil, "usage"},
		{"both modes", out, good, []string{bootstrap}, "not both"},
		{"missing file", out, "", []string{filepath.Join(dir, "missing")}, "no such file"},
		{"duplicate base names", out, "", []string{bootstrap, other}, "two files named bootstrap"},
		{"same file twice", out, "", []string{bootstrap, bootstrap}, "two files named bootstrap"},
		{"a folder as a file", out, "", []string{good}, "not a regular file"},
		{"a link as a file", out, "", []string{fileLink}, "symbolic link"},
		{"missing folder", out, filepath.Join(dir, "missing"), nil, "no such file"},
		{"a file as the folder", out, bootstrap, nil, "not a folder"},
		{"no files in the folder", out, empty, nil, "no files"},
		{"a link to a file in the folder", out, withLink, nil, "linked.json is a symbolic link"},
		{"a link to a folder in the folder", out, withDirLink, nil, "alias is a symbolic link"},
		{"a socket in the folder", out, withSocket, nil, "s.sock is not a regular file or a folder"},
		{"the zip inside the folder", filepath.Join(good, "app.zip"), good, nil, "inside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := write(tt.out, tt.dir, tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("write(%q, %q, %q) = %v; want an error with %q", tt.out, tt.dir, tt.files, err, tt.wantErr)
			}
			for _, pattern := range []string{out, filepath.Join(dir, ".mkzip-*"), filepath.Join(good, "*.zip"), filepath.Join(good, ".mkzip-*")} {
				if left, _ := filepath.Glob(pattern); len(left) > 0 {
					t.Errorf("left %v", left)
				}
			}
		})
	}
}
