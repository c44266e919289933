// Command mkzip writes a deployment zip with nothing but Go, for `make
// lambda` and `make package`. It has two modes:
//
//   - flat: the given files at the zip's root, each by its base name (a
//     Lambda deployment package);
//   - tree (-C dir): every file under dir, by its path relative to dir with
//     forward slashes, folders implied by the paths (an Azure Functions zip
//     deploy package).
//
// Entries are written in sorted order; a file that is executable on disk
// (a handler, a bootstrap) is stored with mode 0755, any other with 0644;
// every entry carries the same fixed time: so the same files always make
// the same zip. Symbolic links and anything that is neither a regular
// file nor a folder are refused, as is a zip written inside the folder it
// zips. The zip replaces the output file only once it is complete.
//
//	go run ./cmd/mkzip -o build/lambda/modelauth-arm64.zip build/lambda/arm64/bootstrap modelauth.json
//	go run ./cmd/mkzip -o build/package/modelauth-azure.zip -C build/package/.stage/app
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// modified is every entry's time: zip's earliest, 1980-01-01.
var modified = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

const usage = "usage: mkzip -o out.zip file... | mkzip -o out.zip -C dir"

func main() {
	out := flag.String("o", "", "the zip file to write")
	dir := flag.String("C", "", "zip every file under this folder, by its path relative to it")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := write(*out, *dir, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkzip:", err)
		os.Exit(1)
	}
}

// entry is one file of the zip.
type entry struct {
	name string // in the zip: slash-separated, relative
	path string // on disk
}

// write writes the zip out holding either the files at its root (dir
// empty) or the tree under dir, replacing out only once the zip is
// complete.
func write(out, dir string, files []string) (err error) {
	var entries []entry
	switch {
	case out == "" || (dir == "" && len(files) == 0):
		return errors.New(usage)
	case dir != "" && len(files) > 0:
		return fmt.Errorf("give either -C dir or files, not both (%s)", usage)
	case dir != "":
		if entries, err = treeEntries(dir, out); err != nil {
			return err
		}
	default:
		if entries, err = flatEntries(files); err != nil {
			return err
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

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
	for _, e := range entries {
		if err := add(zw, e); err != nil {
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

// flatEntries puts files at the zip's root by their base names, which must
// differ.
func flatEntries(files []string) ([]entry, error) {
	seen := map[string]bool{}
	entries := make([]entry, 0, len(files))
	for _, f := range files {
		b := filepath.Base(f)
		if seen[b] {
			return nil, fmt.Errorf("two files named %s", b)
		}
		seen[b] = true
		entries = append(entries, entry{name: b, path: f})
	}
	return entries, nil
}

// treeEntries lists every file under dir (which may itself be a symbolic
// link to a folder), refusing symbolic links and special files in it, and
// an output file inside it.
func treeEntries(dir, out string) ([]entry, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("-C %s: not a folder", dir)
	}
	if inside(out, dir) {
		return nil, fmt.Errorf("the zip %s cannot be written inside %s, the folder it zips", out, dir)
	}
	var entries []entry
	err = fs.WalkDir(os.DirFS(dir), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; only regular files and folders can be zipped", filepath.Join(dir, filepath.FromSlash(name)))
		case !t.IsRegular():
			return fmt.Errorf("%s is not a regular file or a folder (%v)", filepath.Join(dir, filepath.FromSlash(name)), t)
		}
		entries = append(entries, entry{name: name, path: filepath.Join(dir, filepath.FromSlash(name))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("-C %s: no files to zip", dir)
	}
	return entries, nil
}

// inside reports whether file is under dir, by their absolute paths with
// symbolic links resolved (those of file's folder: file may not exist).
func inside(file, dir string) bool {
	f := filepath.Join(resolve(filepath.Dir(file)), filepath.Base(file))
	rel, err := filepath.Rel(resolve(dir), f)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolve returns path made absolute, its symbolic links resolved if it
// exists.
func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		path = r
	}
	if a, err := filepath.Abs(path); err == nil {
		path = a
	}
	return path
}

func add(zw *zip.Writer, e entry) error {
	// Lstat first, so that a symbolic link is refused rather than followed.
	fi, err := os.Lstat(e.path)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link; only regular files can be zipped", e.path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", e.path)
	}
	src, err := os.Open(e.path)
	if err != nil {
		return err
	}
	defer src.Close()
	if fi, err = src.Stat(); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", e.path)
	}
	mode := os.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modified}
	h.SetMode(mode)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, src)
	return err
}
