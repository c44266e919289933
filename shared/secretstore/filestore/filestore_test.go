package filestore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/drivertest"
)

// The test binary re-executes itself as a writer process when helperEnv is
// set; see runHelper.
const (
	helperEnv       = "FILESTORE_TEST_HELPER" // the writer's id
	helperDirEnv    = "FILESTORE_TEST_DIR"
	helperSecretEnv = "FILESTORE_TEST_SECRET"
	helperCountEnv  = "FILESTORE_TEST_COUNT" // 0: write until killed
)

func TestMain(m *testing.M) {
	if id := os.Getenv(helperEnv); id != "" {
		os.Exit(runHelper(id))
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, drivertest.Harness{
		NewStore: func(t *testing.T) *secretstore.Store {
			s, err := Open(t.TempDir(), nil)
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			return s
		},
	})
}

func mustOpen(t *testing.T, dir string, opts *Options) *secretstore.Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLayoutAndClock(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	now := time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("X", 3600))
	s := mustOpen(t, dir, &Options{Now: func() time.Time { return now }})

	p, err := s.SetSecret(ctx, "SVC-A", secretstore.SetParams{Value: "v1", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(p.Version) {
		t.Errorf("version %q is not 32 lower-case hex characters", p.Version)
	}
	wantCreated := time.Date(2030, 1, 2, 2, 4, 5, 0, time.UTC)
	if !p.Created.Equal(wantCreated) || !p.Updated.Equal(wantCreated) || p.Created.Location() != time.UTC {
		t.Errorf("Created, Updated = %v, %v; want %v (from Options.Now, whole seconds, UTC)", p.Created, p.Updated, wantCreated)
	}
	file := filepath.Join(dir, "secrets", "svc-a", "00000000000000000001.json")
	if _, err := os.Stat(file); err != nil {
		t.Errorf("first version file: %v", err)
	}

	now = now.Add(time.Hour)
	up, err := s.UpdateProperties(ctx, "svc-a", "", secretstore.Update{Tags: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if !up.Created.Equal(wantCreated) || !up.Updated.Equal(wantCreated.Add(time.Hour)) {
		t.Errorf("after update: Created, Updated = %v, %v; want %v, %v", up.Created, up.Updated, wantCreated, wantCreated.Add(time.Hour))
	}

	p2, err := s.SetSecret(ctx, "svc-a", secretstore.SetParams{Value: "v2", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets", "svc-a", "00000000000000000002.json")); err != nil {
		t.Errorf("second version file: %v", err)
	}
	// No temporary file is left after successful writes.
	entries, _ := os.ReadDir(filepath.Join(dir, "secrets", "svc-a"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	// Another store on the same dir sees everything.
	s2 := mustOpen(t, dir, nil)
	got, err := s2.GetSecret(ctx, "svc-a", p.Version)
	if err != nil || got.Value != "v1" || got.Tags["k"] != "v" {
		t.Errorf("reopened GetSecret(first) = (%q, %v, %v); want (v1, tags k=v, nil)", got.Value, got.Tags, err)
	}
	got, err = s2.GetSecret(ctx, "svc-a", "")
	if err != nil || got.Version != p2.Version {
		t.Errorf("reopened GetSecret(newest) = (%q, %v); want version %q", got.Version, err, p2.Version)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	ctx := t.Context()
	base := t.TempDir()
	dir := filepath.Join(base, "data", "nested")
	s := mustOpen(t, dir, nil)
	for _, name := range []string{"one", "two"} {
		if _, err := s.SetSecret(ctx, name, secretstore.SetParams{Value: "v", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateProperties(ctx, "one", "", secretstore.Update{ContentType: new("text/plain")}); err != nil {
		t.Fatal(err)
	}
	var files, dirs int
	err := filepath.WalkDir(filepath.Join(base, "data"), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
			dirs++
		} else {
			files++
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v; want %v", path, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dirs != 5 || files != 2 { // data, nested, secrets, one, two; a version of each
		t.Errorf("walked %d directories and %d files; want 5 and 2", dirs, files)
	}

	// A secrets directory that others can read is restricted on Open.
	loose := t.TempDir()
	if err := os.Mkdir(filepath.Join(loose, "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(loose, "secrets"), 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	mustOpen(t, loose, nil)
	if info, err := os.Stat(filepath.Join(loose, "secrets")); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("secrets directory after Open: %v, %v; want mode 0700", info.Mode().Perm(), err)
	}
}

func TestErrorCode(t *testing.T) {
	d, err := open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"not found", fmt.Errorf("filestore: get x: %w", ErrNotFound), driver.NotFound},
		{"disabled", fmt.Errorf("filestore: get x: %w", ErrDisabled), driver.Disabled},
		{"invalid", fmt.Errorf("filestore: get x: %w", ErrInvalidArgument), driver.InvalidArgument},
		{"closed", ErrClosed, driver.Unavailable},
		{"permission", &fs.PathError{Op: "open", Path: "p", Err: fs.ErrPermission}, driver.PermissionDenied},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), driver.Unknown},
		{"deadline", context.DeadlineExceeded, driver.Unknown},
		{"i/o", &fs.PathError{Op: "write", Path: "p", Err: errors.New("no space left on device")}, driver.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.ErrorCode(tt.err); got != tt.want {
				t.Errorf("ErrorCode(%v) = %v; want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestRawDriver checks what the portable store normally guards: the raw
// driver refuses names that are not safe file names, and a closed store.
func TestRawDriver(t *testing.T) {
	ctx := t.Context()
	d, err := open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../escape", "UPPER", "a/b", ".", strings.Repeat("a", 128)} {
		_, err := d.SetSecret(ctx, name, driver.SetParams{Value: "v", Enabled: true})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("SetSecret(%q) = %v; want ErrInvalidArgument", name, err)
		}
	}
	p, err := d.SetSecret(ctx, "ok", driver.SetParams{Value: "v", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	// Versions are accepted in either case.
	if sec, err := d.GetSecret(ctx, "ok", strings.ToUpper(p.Version)); err != nil || sec.Version != p.Version {
		t.Errorf("GetSecret(upper-case version) = (%q, %v); want %q", sec.Version, err, p.Version)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.GetSecret(canceled, "ok", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSecret(canceled) = %v; want context.Canceled", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetSecret(ctx, "ok", ""); !errors.Is(err, ErrClosed) {
		t.Errorf("GetSecret after Close = %v; want ErrClosed", err)
	}
	if _, err := d.SetSecret(ctx, "ok", driver.SetParams{Value: "v"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetSecret after Close = %v; want ErrClosed", err)
	}
}

// TestCrashLeftovers leaves in a secret's folder what crashed writes (and
// stray files) can leave, and checks that none of it hides or damages the
// good versions.
func TestCrashLeftovers(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := mustOpen(t, dir, nil)
	v1, err := s.SetSecret(ctx, "crashy", secretstore.SetParams{Value: "good-1", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := s.SetSecret(ctx, "crashy", secretstore.SetParams{Value: "good-2", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.SetSecret(ctx, "other", secretstore.SetParams{Value: "other", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(dir, "secrets", "crashy")
	whole, err := os.ReadFile(filepath.Join(sdir, seqName(2)))
	if err != nil {
		t.Fatal(err)
	}
	// A whole record of a version that was never published.
	unpublished := strings.Replace(string(whole), v2.Version, strings.Repeat("ab", 16), 1)
	otherRec, err := os.ReadFile(filepath.Join(dir, "secrets", "other", seqName(1)))
	if err != nil {
		t.Fatal(err)
	}
	leftovers := map[string][]byte{
		".tmp-cut":              whole[:len(whole)/2],  // a write cut short
		".tmp-whole":            []byte(unpublished),   // written, never linked
		".tmp-empty":            nil,                   // created, nothing written
		seqName(3):              []byte("garbage\x00"), // junk under a version name
		seqName(4):              whole[:len(whole)-1],  // a torn version file
		seqName(5):              otherRec,              // another secret's version
		seqName(6):              []byte("{}"),          // decodes, but is no version
		"notes.txt":             []byte("hello"),
		"0000000000000007.json": whole, // not a version name
	}
	for name, b := range leftovers {
		if err := os.WriteFile(filepath.Join(sdir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(sdir, seqName(8)), 0o700); err != nil { // a folder under a version name
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleTmpAge)
	if err := os.Chtimes(filepath.Join(sdir, ".tmp-cut"), old, old); err != nil {
		t.Fatal(err)
	}

	checkNewest := func(want secretstore.Properties, wantValue string) {
		t.Helper()
		got, err := s.GetSecret(ctx, "crashy", "")
		if err != nil || got.Version != want.Version || got.Value != wantValue {
			t.Errorf("GetSecret(newest) = (%q, %q, %v); want (%q, %q)", got.Version, got.Value, err, want.Version, wantValue)
		}
	}
	checkList := func(want ...secretstore.Properties) {
		t.Helper()
		list, err := s.ListVersions(ctx, "crashy")
		if err != nil {
			t.Fatalf("ListVersions = %v", err)
		}
		var got, wantV []string
		for _, p := range list {
			got = append(got, p.Version)
		}
		for _, p := range want {
			wantV = append(wantV, p.Version)
		}
		if !slices.Equal(got, wantV) {
			t.Errorf("ListVersions = %q; want %q", got, wantV)
		}
	}
	checkNewest(v2, "good-2")
	checkList(v2, v1)
	if got, err := s.GetSecret(ctx, "crashy", v1.Version); err != nil || got.Value != "good-1" {
		t.Errorf("GetSecret(v1) = (%q, %v); want good-1", got.Value, err)
	}
	for _, version := range []string{strings.Repeat("ab", 16), other.Version} {
		if _, err := s.GetSecret(ctx, "crashy", version); secretstore.Code(err) != secretstore.NotFound {
			t.Errorf("GetSecret(leftover version %s) = %v; want NotFound", version, err)
		}
	}

	// A new write goes above every name in use and is the newest; it
	// removes the stale temporary file and leaves the fresh ones.
	v3, err := s.SetSecret(ctx, "crashy", secretstore.SetParams{Value: "good-3", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sdir, seqName(9))); err != nil {
		t.Errorf("new version file: %v", err)
	}
	checkNewest(v3, "good-3")
	checkList(v3, v2, v1)
	if _, err := os.Stat(filepath.Join(sdir, ".tmp-cut")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file: Stat = %v; want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(sdir, ".tmp-whole")); err != nil {
		t.Errorf("fresh temporary file: Stat = %v; want it kept", err)
	}
	// Updates work beside the leftovers.
	if _, err := s.UpdateProperties(ctx, "crashy", v2.Version, secretstore.Update{Tags: map[string]string{"k": "v"}}); err != nil {
		t.Errorf("UpdateProperties(v2) = %v", err)
	}
	checkList(v3, v2, v1)

	// A secret with nothing readable does not exist.
	empty := filepath.Join(dir, "secrets", "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, seqName(1)), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecret(ctx, "empty", ""); secretstore.Code(err) != secretstore.NotFound {
		t.Errorf("GetSecret(only junk) = %v; want NotFound", err)
	}
	if _, err := s.ListVersions(ctx, "empty"); secretstore.Code(err) != secretstore.NotFound {
		t.Errorf("ListVersions(only junk) = %v; want NotFound", err)
	}
}

// helperValue is the value writer id writes at step i: sizes vary up to
// about 20 KB so that a kill can land mid-write, and a checksum at the end
// lets a reader tell a whole value from a damaged one.
func helperValue(id string, i int) string {
	body := fmt.Sprintf("%s:%06d:", id, i) + strings.Repeat(strconv.Itoa(i%10), (i*7919)%20000)
	sum := sha256.Sum256([]byte(body))
	return body + ":" + hex.EncodeToString(sum[:])
}

// parseHelperValue checks a value's checksum and returns its writer and
// step.
func parseHelperValue(v string) (id string, i int, ok bool) {
	const sumLen = 1 + 2*sha256.Size // ":" and the hex checksum
	if len(v) < sumLen || v[len(v)-sumLen] != ':' {
		return "", 0, false
	}
	body, sum := v[:len(v)-sumLen], v[len(v)-sumLen+1:]
	want := sha256.Sum256([]byte(body))
	if sum != hex.EncodeToString(want[:]) {
		return "", 0, false
	}
	parts := strings.SplitN(body, ":", 3)
	if len(parts) != 3 {
		return "", 0, false
	}
	i, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, false
	}
	return parts[0], i, true
}

// runHelper is a writer process: once a line arrives on stdin, it writes
// helperValue(id, 0), (id, 1), ... to one secret, and prints "<step>
// <version>" after each write completes. It stops after the count, or
// when killed.
func runHelper(id string) int {
	count, err := strconv.Atoi(os.Getenv(helperCountEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad count:", err)
		return 2
	}
	s, err := Open(os.Getenv(helperDirEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	defer s.Close()
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "helper: waiting for go:", err)
		return 1
	}
	name := os.Getenv(helperSecretEnv)
	for i := 0; count == 0 || i < count; i++ {
		p, err := s.SetSecret(context.Background(), name, secretstore.SetParams{Value: helperValue(id, i), Enabled: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		// One write of a short line: atomic on a pipe.
		fmt.Fprintf(os.Stdout, "%d %s\n", i, p.Version)
	}
	return 0
}

// helper is a running writer process.
type helper struct {
	id    string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu       sync.Mutex
	versions []string // versions[i] is the version of step i
	first    chan struct{}
	done     chan struct{} // closed when stdout is drained
}

func startHelper(t *testing.T, id, dir, secret string, count int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"="+id, helperDirEnv+"="+dir, helperSecretEnv+"="+secret, helperCountEnv+"="+strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{id: id, cmd: cmd, stdin: stdin, first: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { cmd.Process.Kill(); h.wait() })
	go func() {
		defer close(h.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			step, version, ok := strings.Cut(sc.Text(), " ")
			h.mu.Lock()
			if n, err := strconv.Atoi(step); ok && err == nil && n == len(h.versions) {
				h.versions = append(h.versions, version)
			} else {
				h.versions = append(h.versions, "bad line "+sc.Text())
			}
			if len(h.versions) == 1 {
				close(h.first)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *helper) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	h.stdin.Close()
}

// wait waits for the helper to exit, after reading all it printed (Wait
// closes the pipe).
func (h *helper) wait() error {
	<-h.done
	return h.cmd.Wait()
}

// writes returns the writes the helper reported; call it after wait.
func (h *helper) writes() []drivertest.Write {
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]drivertest.Write, len(h.versions))
	for i, v := range h.versions {
		out[i] = drivertest.Write{Version: v, Value: helperValue(h.id, i)}
	}
	return out
}

// TestTwoProcesses has two processes write one secret at once.
func TestTwoProcesses(t *testing.T) {
	const n = 40
	dir := t.TempDir()
	mustOpen(t, dir, nil) // creates the folders, as a deployment would
	a := startHelper(t, "proc-a", dir, "shared", n)
	b := startHelper(t, "proc-b", dir, "shared", n)
	a.release(t)
	b.release(t)
	for _, h := range []*helper{a, b} {
		if err := h.wait(); err != nil {
			t.Fatalf("writer %s: %v", h.id, err)
		}
	}
	writes := [][]drivertest.Write{a.writes(), b.writes()}
	for i, ws := range writes {
		if len(ws) != n {
			t.Fatalf("writer %d reported %d writes; want %d", i, len(ws), n)
		}
	}
	s := mustOpen(t, dir, nil)
	drivertest.CheckConcurrentWrites(t, s, "shared", writes)

	// Log how much the two interleaved; it varies from run to run.
	list, err := s.ListVersions(t.Context(), "shared")
	if err == nil {
		switches := 0
		owner := make(map[string]int)
		for w, ws := range writes {
			for _, wr := range ws {
				owner[wr.Version] = w
			}
		}
		for i := 1; i < len(list); i++ {
			if owner[list[i].Version] != owner[list[i-1].Version] {
				switches++
			}
		}
		t.Logf("the list switches writer %d times", switches)
	}
}

// TestKilledWriter kills a writing process at a random moment, a few times,
// and checks that every listed version reads back whole, that no completed
// write is lost, and that the newest version is one the process wrote
// completely.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const rounds = 4
	ctx := t.Context()
	dir := t.TempDir()
	mustOpen(t, dir, nil)
	var reported []drivertest.Write // every write a process reported, oldest first
	for round := range rounds {
		id := fmt.Sprintf("round%d", round)
		h := startHelper(t, id, dir, "killed", 0)
		h.release(t)
		select {
		case <-h.first:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: no write reported", round)
		}
		time.Sleep(time.Duration(rand.IntN(40_000)) * time.Microsecond)
		if err := h.cmd.Process.Signal(os.Kill); err != nil {
			t.Fatal(err)
		}
		h.wait() // killed: the error says so
		done := h.writes()
		reported = append(reported, done...)

		// Read with a fresh store, as a restarted process would.
		s := mustOpen(t, dir, nil)
		list, err := s.ListVersions(ctx, "killed")
		if err != nil {
			t.Fatalf("round %d: ListVersions = %v", round, err)
		}
		// Every listed version reads back whole, as one of the values
		// written.
		listed := make(map[string]string)
		for _, p := range list {
			sec, err := s.GetSecret(ctx, "killed", p.Version)
			if err != nil {
				t.Fatalf("round %d: GetSecret(%s) = %v", round, p.Version, err)
			}
			wid, step, ok := parseHelperValue(sec.Value)
			if !ok || sec.Value != helperValue(wid, step) {
				t.Fatalf("round %d: version %s holds a damaged value (%d bytes)", round, p.Version, len(sec.Value))
			}
			listed[p.Version] = sec.Value
		}
		// No reported write is lost, and the list holds at most one
		// unreported write per round: the one in flight at the kill.
		for _, w := range reported {
			if listed[w.Version] != w.Value {
				t.Errorf("round %d: reported version %s is missing or changed", round, w.Version)
			}
		}
		if extra := len(list) - len(reported); extra < 0 || extra > round+1 {
			t.Errorf("round %d: %d versions listed, %d reported", round, len(list), len(reported))
		}
		// The newest is this round's last reported write, or the write
		// after it, whole.
		newest, err := s.GetSecret(ctx, "killed", "")
		if err != nil {
			t.Fatalf("round %d: GetSecret(newest) = %v", round, err)
		}
		wid, step, _ := parseHelperValue(newest.Value)
		if wid != id || (step != len(done)-1 && step != len(done)) {
			t.Errorf("round %d: newest is step %d of %q; want step %d or %d of %q", round, step, wid, len(done)-1, len(done), id)
		}
		if newest.Version != list[0].Version {
			t.Errorf("round %d: GetSecret(newest) = %s; ListVersions()[0] = %s", round, newest.Version, list[0].Version)
		}
		t.Logf("round %d: %d writes reported, %d versions listed", round, len(done), len(list))
	}
}

// FuzzValueRoundTrip writes any value and reads it back: every valid value
// keeps every byte; an invalid one (too long, or not UTF-8) is refused.
func FuzzValueRoundTrip(f *testing.F) {
	for _, seed := range []string{"", "v", "\x00\xff\xfe", "héllo 😀", strings.Repeat("x", secretstore.MaxValueBytes), strings.Repeat("y", secretstore.MaxValueBytes+1)} {
		f.Add(seed)
	}
	s, err := Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ctx := context.Background()
		p, err := s.SetSecret(ctx, "fuzz", secretstore.SetParams{Value: value, Enabled: true})
		if len(value) > secretstore.MaxValueBytes || !utf8.ValidString(value) {
			if secretstore.Code(err) != secretstore.InvalidArgument {
				t.Fatalf("SetSecret(%d bytes) = %v; want InvalidArgument", len(value), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("SetSecret = %v", err)
		}
		got, err := s.GetSecret(ctx, "fuzz", p.Version)
		if err != nil || got.Value != value {
			t.Fatalf("GetSecret = (%q, %v); want %q", got.Value, err, value)
		}
	})
}

// FuzzDecodeRecord feeds any bytes to the decoder, as a damaged file would:
// it never panics, and what it accepts is a version of the secret that
// encodes and decodes to itself.
func FuzzDecodeRecord(f *testing.F) {
	rec := record{Name: "fuzz", Version: strings.Repeat("0f", 16), Value: []byte("v"), Enabled: true,
		Created: time.Unix(1e9, 0).UTC(), Updated: time.Unix(1e9, 0).UTC(), Tags: map[string]string{"k": "v"}}
	whole, _ := json.Marshal(rec)
	for _, seed := range [][]byte{whole, whole[:len(whole)/2], nil, []byte("{}"), []byte(`{"name":"fuzz","version":"x"}`)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b, "fuzz")
		if err != nil {
			return
		}
		if rec.Name != "fuzz" || !versionRE.MatchString(rec.Version) || rec.Tags == nil {
			t.Fatalf("decodeRecord accepted %+v", rec)
		}
		again, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec2, err := decodeRecord(again, "fuzz")
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again2, _ := json.Marshal(rec2); string(again2) != string(again) {
			t.Fatalf("record changes on a round trip:\n%s\n%s", again, again2)
		}
	})
}
