// Package filestore is the embedded secret store driver: every version of a
// secret is one JSON file on local disk. It is modelauth's default store when
// no Key Vault is configured, and it passes the conformance suite in
// secretstore/drivertest, so it behaves as Key Vault does.
//
// # Layout
//
// Under the directory given to [Open]:
//
//	secrets/                            0700
//	  <name>/                           0700, one per secret, name in lower case
//	    00000000000000000001.json       0600, version 1 of the secret
//	    00000000000000000002.json       0600, version 2, and so on
//	    .tmp-<random>                   0600, a write in progress (or cut short)
//
// A version file is named after its sequence number, 20 decimal digits, so
// that the names sort in the order the versions were written; the newest
// version is the one with the largest number. The file holds the version's
// id (32 lower-case hexadecimal characters from crypto/rand), its value
// (base64, so every byte round-trips), its properties and its tags. Times are
// kept in whole seconds, UTC, as Key Vault keeps them.
//
// # Writes and crash safety
//
// A write encodes the version into a temporary file in the secret's folder,
// fsyncs it, and publishes it with [os.Link] under the next sequence number.
// A link never replaces an existing name: if another goroutine or process
// took that number first, the writer looks again and takes the next one. So
// versions are unique and totally ordered with no lock, in one process or
// many, and a reader sees either the whole version or none of it. The
// temporary name is then removed and the folder fsynced, which makes the new
// name durable. (The version id is inside the file, not in its name: two
// writers would link two different names under one number.)
//
// Updating a version's properties writes the whole new file to a temporary
// name and renames it over the version's file, which again readers see
// whole or not at all. Within one store returned by [Open] updates are
// serialized; two processes updating the same version at once may lose one
// update (the last rename wins), as there is no compare-and-swap.
//
// A store remembers which file holds each version it has seen, so reading a
// version by id reads one file; a version it has not seen (written by
// another process) costs a scan of the secret's folder, newest first.
//
// A crash can leave a temporary file behind, whole or cut short. Readers
// ignore every name that is not a version file and every version file that
// does not decode, so a leftover never hides or damages the newest good
// version. Writes remove temporary files more than an hour old.
//
// The store needs a file system with hard links (any local Unix file system,
// or NTFS).
//
// # Errors
//
// Errors wrap [ErrNotFound], [ErrDisabled] and [ErrInvalidArgument], which
// the driver's ErrorCode maps to the matching codes; [ErrClosed] and
// file-system failures map to Unavailable, or PermissionDenied. No error
// contains a secret value.
package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// Sentinel errors of the driver: package driver's common ones.
var (
	ErrNotFound        = driver.ErrNotFound        // the secret or the version does not exist
	ErrDisabled        = driver.ErrDisabled        // the version is disabled and cannot be read
	ErrInvalidArgument = driver.ErrInvalidArgument // a name the driver cannot store
	ErrClosed          = driver.ErrClosed          // the store was closed
)

const (
	secretsDir  = "secrets"
	tmpPrefix   = ".tmp-"
	seqDigits   = 20 // enough for every uint64
	fileSuffix  = ".json"
	staleTmpAge = time.Hour
	// maxPublishTries bounds the publish loop. Every failed try means that
	// another writer published a version, so the bound is never reached in
	// practice.
	maxPublishTries = 10000
)

var (
	nameRE    = regexp.MustCompile(`^[0-9a-z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Options are the optional settings of [Open]. A nil *Options means the
// defaults.
type Options struct {
	// Now returns the current time for the Created and Updated properties.
	// Default time.Now.
	Now func() time.Time
}

// Open returns a store whose data lives under dir, creating dir (mode 0700)
// if it is missing. Several stores, in one process or many, may be open on
// the same dir at once.
func Open(dir string, opts *Options) (*secretstore.Store, error) {
	d, err := open(dir, opts)
	if err != nil {
		return nil, err
	}
	return secretstore.New(d), nil
}

var _ driver.Driver = (*fileDriver)(nil)

type fileDriver struct {
	root   string // <dir>/secrets
	now    func() time.Time
	closed atomic.Bool

	// updateMu serializes UpdateProperties within this driver.
	updateMu sync.Mutex

	// index remembers the sequence number of versions seen so far: name ->
	// version -> seq. A version never changes its number, so an entry can
	// only go stale if files are removed by hand; lookups check the version
	// in the file they read and rescan when it differs.
	indexMu sync.Mutex
	index   map[string]map[string]uint64
}

func open(dir string, opts *Options) (*fileDriver, error) {
	if dir == "" {
		return nil, errors.New("filestore: empty directory")
	}
	d := &fileDriver{
		root:  filepath.Join(dir, secretsDir),
		now:   time.Now,
		index: make(map[string]map[string]uint64),
	}
	if opts != nil && opts.Now != nil {
		d.now = opts.Now
	}
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	fi, err := os.Stat(d.root)
	if err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("filestore: secrets directory was accessible to other users; restricting it to its owner",
			"path", d.root, "mode", fi.Mode().Perm().String())
		if err := os.Chmod(d.root, 0o700); err != nil {
			return nil, fmt.Errorf("filestore: open: %w", err)
		}
	}
	return d, nil
}

// record is the content of a version file.
type record struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Value       []byte            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Enabled     bool              `json:"enabled"`
	Expires     *time.Time        `json:"expires,omitempty"`
	NotBefore   *time.Time        `json:"notBefore,omitempty"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	Tags        map[string]string `json:"tags"`
}

func (r *record) properties() driver.Properties {
	tags := maps.Clone(r.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return driver.Properties{
		Name:        r.Name,
		Version:     r.Version,
		ContentType: r.ContentType,
		Enabled:     r.Enabled,
		Expires:     driver.CloneTime(r.Expires),
		NotBefore:   driver.CloneTime(r.NotBefore),
		Created:     r.Created,
		Updated:     r.Updated,
		Tags:        tags,
	}
}

// SetSecret writes a new version, which becomes the newest.
func (d *fileDriver) SetSecret(ctx context.Context, name string, p driver.SetParams) (_ driver.Properties, err error) {
	defer wrap(&err, "set", name)
	if err := d.check(ctx, name); err != nil {
		return driver.Properties{}, err
	}
	now := driver.WholeSecond(d.now())
	rec := &record{
		Name:        name,
		Version:     driver.NewVersionID(),
		Value:       []byte(p.Value),
		ContentType: p.ContentType,
		Enabled:     p.Enabled,
		Expires:     driver.WholeSecondPtr(p.Expires),
		NotBefore:   driver.WholeSecondPtr(p.NotBefore),
		Created:     now,
		Updated:     now,
		Tags:        maps.Clone(p.Tags),
	}
	if rec.Tags == nil {
		rec.Tags = map[string]string{}
	}
	dir := d.secretDir(name)
	if err := d.mkdirSecret(dir); err != nil {
		return driver.Properties{}, err
	}
	tmp, err := writeTemp(dir, rec)
	if err != nil {
		return driver.Properties{}, err
	}
	seq, err := publish(ctx, dir, tmp)
	// Published or not, the temporary name goes; after a publish, one
	// fsync of the folder makes both the new name and the removal durable.
	os.Remove(tmp)
	if err != nil {
		return driver.Properties{}, err
	}
	if err := syncDir(dir); err != nil {
		return driver.Properties{}, err
	}
	d.remember(name, rec.Version, seq)
	return rec.properties(), nil
}

// publish links tmp into dir under the next free sequence number and
// returns that number.
func publish(ctx context.Context, dir, tmp string) (uint64, error) {
	for range maxPublishTries {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		seqs, err := scan(dir, true)
		if err != nil {
			return 0, err
		}
		var next uint64 = 1
		if len(seqs) > 0 {
			last := seqs[len(seqs)-1]
			if last == math.MaxUint64 {
				return 0, errors.New("sequence numbers exhausted")
			}
			next = last + 1
		}
		err = os.Link(tmp, filepath.Join(dir, seqName(next)))
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return 0, err
		}
		// Another writer took the number: look again.
	}
	return 0, fmt.Errorf("no free sequence number after %d tries", maxPublishTries)
}

// GetSecret reads one version; version "" means the newest.
func (d *fileDriver) GetSecret(ctx context.Context, name, version string) (_ driver.Secret, err error) {
	defer wrap(&err, "get", name)
	if err := d.check(ctx, name); err != nil {
		return driver.Secret{}, err
	}
	rec, _, err := d.find(name, version)
	if err != nil {
		return driver.Secret{}, err
	}
	if !rec.Enabled {
		return driver.Secret{}, fmt.Errorf("version %q: %w", rec.Version, ErrDisabled)
	}
	return driver.Secret{Properties: rec.properties(), Value: string(rec.Value)}, nil
}

// ListVersions returns the properties of every version, newest first (this
// driver's order; the portable store promises none).
func (d *fileDriver) ListVersions(ctx context.Context, name string) (_ []driver.Properties, err error) {
	defer wrap(&err, "list", name)
	if err := d.check(ctx, name); err != nil {
		return nil, err
	}
	var out []driver.Properties
	err = d.eachVersion(name, func(_ uint64, rec *record) bool {
		out = append(out, rec.properties())
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// UpdateProperties changes one version's properties; version "" means the
// newest.
func (d *fileDriver) UpdateProperties(ctx context.Context, name, version string, u driver.Update) (_ driver.Properties, err error) {
	defer wrap(&err, "update", name)
	if err := d.check(ctx, name); err != nil {
		return driver.Properties{}, err
	}
	d.updateMu.Lock()
	defer d.updateMu.Unlock()
	rec, seq, err := d.find(name, version)
	if err != nil {
		return driver.Properties{}, err
	}
	if u.Enabled != nil {
		rec.Enabled = *u.Enabled
	}
	if u.Expires != nil {
		rec.Expires = driver.WholeSecondPtr(u.Expires)
	}
	if u.NotBefore != nil {
		rec.NotBefore = driver.WholeSecondPtr(u.NotBefore)
	}
	if u.ContentType != nil {
		rec.ContentType = *u.ContentType
	}
	if u.Tags != nil {
		rec.Tags = maps.Clone(u.Tags)
	}
	rec.Updated = driver.WholeSecond(d.now())
	dir := d.secretDir(name)
	tmp, err := writeTemp(dir, rec)
	if err != nil {
		return driver.Properties{}, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, seqName(seq))); err != nil {
		os.Remove(tmp)
		return driver.Properties{}, err
	}
	if err := syncDir(dir); err != nil {
		return driver.Properties{}, err
	}
	return rec.properties(), nil
}

// ErrorCode classifies an error returned by the other methods.
func (d *fileDriver) ErrorCode(err error) driver.ErrorCode {
	if code, ok := driver.CommonCode(err); ok {
		return code
	}
	switch {
	case errors.Is(err, fs.ErrPermission):
		return driver.PermissionDenied
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return driver.Unknown // the portable store reports these as Unavailable
	}
	return driver.Unavailable // the file system failed (disk full, I/O error, ...)
}

// Close marks the store closed; later calls fail with [ErrClosed].
func (d *fileDriver) Close() error {
	d.closed.Store(true)
	return nil
}

func (d *fileDriver) check(ctx context.Context, name string) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !nameRE.MatchString(name) {
		// The portable store lower-cases and checks names; this guards the
		// raw driver against names that are not safe as file names.
		return fmt.Errorf("%w: malformed secret name", ErrInvalidArgument)
	}
	return nil
}

// wrap gives an error from a driver method its context. The secret's name
// is shown only if it is a valid one; values are never shown.
func wrap(err *error, op, name string) {
	if *err == nil {
		return
	}
	if !nameRE.MatchString(name) {
		name = "(invalid name)"
	}
	*err = fmt.Errorf("filestore: %s %s: %w", op, name, *err)
}

func (d *fileDriver) secretDir(name string) string { return filepath.Join(d.root, name) }

// mkdirSecret creates a secret's folder if it is missing, durably.
func (d *fileDriver) mkdirSecret(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(d.root)
}

// find reads a version of a secret, or its newest version for "", and
// returns it with its sequence number.
func (d *fileDriver) find(name, version string) (*record, uint64, error) {
	if version != "" {
		version = strings.ToLower(version)
		if !versionRE.MatchString(version) {
			return nil, 0, fmt.Errorf("version %q: %w", version, ErrNotFound)
		}
		if seq, ok := d.lookup(name, version); ok {
			if rec, err := readRecord(d.secretDir(name), name, seq); err == nil && rec.Version == version {
				return rec, seq, nil
			}
		}
		// Not seen yet (another process wrote it), or stale: scan, newest
		// first, as recent versions are the ones usually asked for.
	}
	var found *record
	var foundSeq uint64
	err := d.eachVersion(name, func(seq uint64, rec *record) bool {
		if version == "" || rec.Version == version {
			found, foundSeq = rec, seq
			return false
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	if found == nil {
		if version == "" {
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("version %q: %w", version, ErrNotFound)
	}
	return found, foundSeq, nil
}

// eachVersion calls fn with every whole version of a secret, newest first,
// until fn returns false. It skips every file that does not decode as a
// version of this secret, and reports a missing secret as [ErrNotFound].
func (d *fileDriver) eachVersion(name string, fn func(seq uint64, rec *record) bool) error {
	dir := d.secretDir(name)
	seqs, err := scan(dir, false)
	if err != nil {
		return err
	}
	for _, seq := range slices.Backward(seqs) {
		rec, err := readRecord(dir, name, seq)
		if err != nil {
			continue // not a whole version: ignored
		}
		d.remember(name, rec.Version, seq)
		if !fn(seq, rec) {
			return nil
		}
	}
	return nil
}

func (d *fileDriver) lookup(name, version string) (uint64, bool) {
	d.indexMu.Lock()
	defer d.indexMu.Unlock()
	seq, ok := d.index[name][version]
	return seq, ok
}

func (d *fileDriver) remember(name, version string, seq uint64) {
	d.indexMu.Lock()
	defer d.indexMu.Unlock()
	m := d.index[name]
	if m == nil {
		m = make(map[string]uint64)
		d.index[name] = m
	}
	m[version] = seq
}

// scan returns the sequence numbers of the version files in dir, in
// increasing order. A missing dir is [ErrNotFound]. With removeStale, it
// also removes temporary files left by writes that were cut short long ago.
func scan(dir string, removeStale bool) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, 0, len(entries))
	for _, e := range entries {
		if seq, ok := parseSeqName(e.Name()); ok {
			seqs = append(seqs, seq)
			continue
		}
		if removeStale && strings.HasPrefix(e.Name(), tmpPrefix) {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmpAge {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	// os.ReadDir sorts by name, and the fixed width makes that numeric
	// order; sort anyway rather than rely on it.
	slices.Sort(seqs)
	return seqs, nil
}

func seqName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", seqDigits, seq, fileSuffix)
}

func parseSeqName(s string) (uint64, bool) {
	digits, ok := strings.CutSuffix(s, fileSuffix)
	if !ok || len(digits) != seqDigits || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}

// readRecord reads and checks one version file. Any error means the file
// is not a whole version of this secret and must be ignored.
func readRecord(dir, name string, seq uint64) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, seqName(seq)))
	if err != nil {
		return nil, err
	}
	return decodeRecord(b, name)
}

func decodeRecord(b []byte, name string) (*record, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, errors.New("version file does not decode")
	}
	if rec.Name != name || !versionRE.MatchString(rec.Version) {
		return nil, errors.New("version file is not a version of this secret")
	}
	if rec.Tags == nil {
		rec.Tags = map[string]string{}
	}
	return &rec, nil
}

// writeTemp writes rec to a new temporary file in dir, fsynced, and returns
// its path.
func writeTemp(dir string, rec *record) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*") // mode 0600
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes the names in dir durable. Windows cannot fsync a folder;
// NTFS journals its metadata instead.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
