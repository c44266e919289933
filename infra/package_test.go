package infra_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
)

// TestPackage builds the deployment packages with `make package`, checks
// what the Azure Functions zip holds (and what it must not: local
// settings), unpacks it with the modes it records and serves the unpacked
// folder, untouched, with the local host: the handler in the zip must run
// (its execute bit survived) and answer validate for the sample service
// `demo`. The app settings, which a deployed app gets from Azure rather
// than from the zip, are given to the host as environment variables.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds the packages with make")
	}
	// The zip's handler is built for Linux (Flex Consumption); make's
	// HANDLER_GOARCH picks its architecture, so any Linux machine can run it.
	if runtime.GOOS != "linux" {
		t.Skipf("the Azure package's handler is a Linux binary (only its architecture can be chosen, with HANDLER_GOARCH); this machine is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	root := hosttest.RepoRoot(t)
	out := t.TempDir()

	args := []string{"-s", "--no-print-directory", "package", "PACKAGE=" + out}
	if runtime.GOARCH != "amd64" { // amd64 is the default
		args = append(args, "HANDLER_GOARCH="+runtime.GOARCH)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = root
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, output)
	}
	t.Logf("make package: %v", time.Since(start).Round(time.Millisecond))
	azureZip := filepath.Join(out, "modelauth-azure.zip")
	lambdaZips := map[string]elf.Machine{
		filepath.Join(out, "modelauth-lambda-arm64.zip"):  elf.EM_AARCH64,
		filepath.Join(out, "modelauth-lambda-x86_64.zip"): elf.EM_X86_64,
	}
	for _, p := range append([]string{azureZip}, mapKeys(lambdaZips)...) {
		if !strings.Contains(string(output), "wrote "+p) {
			t.Errorf("make package did not print %s:\n%s", p, output)
		}
	}
	if left, _ := os.ReadDir(out); len(left) != 1+len(lambdaZips) {
		t.Errorf("%s holds %v; want the three zips only", out, dirNames(left))
	}

	// What the Azure zip holds: exactly the staged app, less the local
	// settings.
	want := map[string]os.FileMode{"host.json": 0o644, "modelauth.json": 0o644, "handler": 0o755}
	fns, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
	if err != nil || len(fns) == 0 {
		t.Fatalf("no functions/*/function.json: %v", err)
	}
	for _, f := range fns {
		want[filepath.Base(filepath.Dir(f))+"/function.json"] = 0o644
	}
	entries := readZip(t, azureZip)
	for name := range entries {
		if strings.HasPrefix(path.Base(name), "local.settings") {
			t.Errorf("the Azure zip holds %s: local settings must never be deployed", name)
		} else if _, ok := want[name]; !ok {
			t.Errorf("the Azure zip holds %s, which is not part of the app", name)
		}
	}
	for name, mode := range want {
		e, ok := entries[name]
		switch {
		case !ok:
			t.Errorf("the Azure zip lacks %s", name)
		case e.mode != mode:
			t.Errorf("%s in the Azure zip: mode %v; want %v", name, e.mode, mode)
		case name != "handler":
			src := filepath.Join(root, filepath.FromSlash(name))
			if name != "host.json" && name != "modelauth.json" {
				src = filepath.Join(root, "functions", filepath.FromSlash(name))
			}
			if disk, err := os.ReadFile(src); err != nil || !bytes.Equal(disk, e.body) {
				t.Errorf("%s in the Azure zip differs from %s (%v)", name, src, err)
			}
		}
	}
	if e, ok := entries["handler"]; ok {
		checkELF(t, "the Azure zip's handler", e.body, goarchMachine[runtime.GOARCH])
	}
	for p, machine := range lambdaZips {
		lz := readZip(t, p)
		if len(lz) != 2 || lz["bootstrap"].mode != 0o755 || lz["modelauth.json"].mode != 0o644 {
			t.Errorf("%s holds %v; want bootstrap (0755) and modelauth.json (0644)", p, lz)
		}
		if b, ok := lz["bootstrap"]; ok {
			checkELF(t, p+"'s bootstrap", b.body, machine)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Unpacked with its modes, the zip is a function app the host serves.
	app := filepath.Join(t.TempDir(), "wwwroot")
	if err := unzip(azureZip, app); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(app, "handler")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("the unpacked handler: %v, %v; want mode 0755", fi, err)
	}
	h := hosttest.Start(t, hosttest.Options{AppDir: app})
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(path, key string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, h.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, body := get("/api/services/demo/keys", h.AdminKey)
	var keys struct{ PrimaryKey, SecondaryKey string }
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get_keys: %s %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &keys); err != nil || keys.PrimaryKey == "" {
		t.Fatalf("get_keys: %s (%v)", body, err)
	}
	resp, body = get("/api/services/demo/validate", keys.PrimaryKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Modelauth-Service") != "demo" {
		t.Errorf("validate with the primary key: %s %v %s; want 200 for demo", resp.Status, resp.Header, body)
	}
	resp, body = get("/api/services/demo/validate", "wrong-"+keys.PrimaryKey)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("validate with a wrong key: %s %s; want 401", resp.Status, body)
	}
}

// goarchMachine maps a GOARCH to its ELF machine, for the architectures
// the tests run on.
var goarchMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkELF checks from its header that an executable is a 64-bit
// little-endian ELF executable for machine (any machine if machine is 0).
func checkELF(t *testing.T, what string, head []byte, machine elf.Machine) {
	t.Helper()
	if len(head) < 20 || string(head[:4]) != elf.ELFMAG || elf.Class(head[4]) != elf.ELFCLASS64 || elf.Data(head[5]) != elf.ELFDATA2LSB {
		t.Errorf("%s is not a 64-bit little-endian ELF file", what)
		return
	}
	if typ := elf.Type(binary.LittleEndian.Uint16(head[16:])); typ != elf.ET_EXEC && typ != elf.ET_DYN {
		t.Errorf("%s: ELF type %v; want an executable", what, typ)
	}
	if m := elf.Machine(binary.LittleEndian.Uint16(head[18:])); machine != 0 && m != machine {
		t.Errorf("%s: built for %v; want %v", what, m, machine)
	}
}

// zipEntry is an entry of a zip: its body if small, else its first bytes
// (reading whole binaries costs seconds under the race detector).
type zipEntry struct {
	mode os.FileMode
	size uint64
	body []byte
}

func (e zipEntry) String() string { return fmt.Sprintf("%v (%d bytes)", e.mode, e.size) }

// readZip returns every entry of the zip at p by name, failing on a name
// seen twice.
func readZip(t *testing.T, p string) map[string]zipEntry {
	t.Helper()
	zr, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	entries := map[string]zipEntry{}
	for _, f := range zr.File {
		if _, dup := entries[f.Name]; dup {
			t.Errorf("%s holds %s twice", p, f.Name)
		}
		body, err := readEntry(f)
		if err != nil {
			t.Fatalf("%s: %s: %v", p, f.Name, err)
		}
		entries[f.Name] = zipEntry{f.Mode(), f.UncompressedSize64, body}
	}
	return entries
}

// readEntry reads f whole if it has 1 MiB at most, else its first 64 bytes.
func readEntry(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if f.UncompressedSize64 > 1<<20 {
		head := make([]byte, 64)
		n, err := io.ReadFull(rc, head)
		if err == io.ErrUnexpectedEOF {
			err = nil
		}
		return head[:n], err
	}
	return io.ReadAll(rc)
}

// unzip unpacks the zip at p into the new folder dir, with each file's
// permission bits from the zip. It refuses names that are absolute, hold
// "..", or are not clean slash-separated paths, and entries that are
// neither regular files nor folders (symbolic links among them).
func unzip(p, dir string) error {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return err
	}
	defer zr.Close()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, f := range zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		// fs.ValidPath refuses "", "..", ".", empty elements and a leading
		// "/"; Localize refuses what is not local on this system (a
		// backslash or a drive letter on Windows, say).
		if !fs.ValidPath(name) || name == "." || strings.Contains(f.Name, `\`) {
			return fmt.Errorf("%s: unsafe name %q", p, f.Name)
		}
		local, err := filepath.Localize(name)
		if err != nil {
			return fmt.Errorf("%s: unsafe name %q: %v", p, f.Name, err)
		}
		target := filepath.Join(dir, local)
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			continue
		case !mode.IsRegular():
			return fmt.Errorf("%s: %s is not a regular file (%v)", p, f.Name, mode.Type())
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := extract(f, target, mode.Perm()); err != nil {
			return fmt.Errorf("%s: %s: %w", p, f.Name, err)
		}
	}
	return nil
}

// extract writes the entry f to the new file target with perm, exactly
// (whatever the umask).
func extract(f *zip.File, target string, perm os.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rc); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Chmod(target, perm)
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func dirNames(entries []os.DirEntry) []string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}
