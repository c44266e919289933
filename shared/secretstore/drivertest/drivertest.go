// Package drivertest is the conformance suite of secret store drivers.
//
// Every driver's tests call [RunConformanceTests] with a [Harness] that
// makes empty stores. The suite works through the portable
// [secretstore.Store] and pins the Key Vault rules that it documents: names
// are case-insensitive and match ^[0-9a-zA-Z-]{1,127}$; every write makes a
// new version and reading without a version returns the newest; a listing
// holds every version once, in no promised order (Key Vault promises none);
// at most 15 tags, tag names of at most 512
// characters and values of at most 256; values of at most 25 KiB; an update
// replaces the whole tag set; a disabled version cannot be read while the
// others can; an expired version can; concurrent writers lose nothing.
//
// A driver whose listing order can be set (the in-memory store, the Key
// Vault test server) runs the suite once per order: see
// [Harness.NewOrderedStore].
//
// Errors are checked by code ([secretstore.Code]), never by their text.
// Times are compared at whole seconds, the precision of Key Vault.
//
// A driver's own tests that write one secret from several processes check
// the result with [CheckConcurrentWrites], as the suite does for goroutines.
package drivertest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// Harness makes stores for the conformance suite.
type Harness struct {
	// NewStore returns a new, empty store for one test. The suite runs its
	// tests in parallel, so NewStore must be safe to call concurrently. The
	// suite closes the store when the test ends; NewStore registers any
	// other clean-up (a temporary directory, a test server) with t.Cleanup.
	NewStore func(t *testing.T) *secretstore.Store

	// NewOrderedStore, if set, replaces NewStore for a driver whose
	// listing order can be set: it returns a new, empty store that lists
	// versions in order. The suite then runs once per order of Orders, in
	// subtests named after the order.
	NewOrderedStore func(t *testing.T, order driver.ListOrder) *secretstore.Store
	// Orders are the orders NewOrderedStore can make; default every
	// [driver.ListOrder].
	Orders []driver.ListOrder
}

// Sizes of the concurrent-writers test.
const (
	concurrentWriters = 16
	writesPerWriter   = 20
)

// RunConformanceTests runs the conformance suite against the stores that h
// makes.
func RunConformanceTests(t *testing.T, h Harness) {
	t.Helper()
	if h.NewOrderedStore != nil {
		orders := h.Orders
		if len(orders) == 0 {
			orders = driver.ListOrders
		}
		for _, order := range orders {
			t.Run(order.String(), func(t *testing.T) {
				t.Parallel()
				runConformanceTests(t, func(t *testing.T) *secretstore.Store { return h.NewOrderedStore(t, order) })
			})
		}
		return
	}
	if h.NewStore == nil {
		t.Fatal("drivertest: Harness.NewStore is nil")
	}
	runConformanceTests(t, h.NewStore)
}

func runConformanceTests(t *testing.T, newStore func(t *testing.T) *secretstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *secretstore.Store)
	}{
		{"CaseInsensitiveNames", testCaseInsensitiveNames},
		{"InvalidNames", testInvalidNames},
		{"InvalidVersions", testInvalidVersions},
		{"Versions", testVersions},
		{"NotFound", testNotFound},
		{"TagLimits", testTagLimits},
		{"ValueSize", testValueSize},
		{"ValueRoundTrip", testValueRoundTrip},
		{"ContentType", testContentType},
		{"Dates", testDates},
		{"ExpiredReadable", testExpiredReadable},
		{"UpdateReplacesTags", testUpdateReplacesTags},
		{"Disabled", testDisabled},
		{"Timestamps", testTimestamps},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			if s == nil {
				t.Fatal("Harness.NewStore returned nil")
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close() = %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

func testCaseInsensitiveNames(t *testing.T, s *secretstore.Store) {
	long := strings.Repeat("aB3-", 31) + "xYz" // 127 characters
	tests := []struct {
		name        string
		write, read string
	}{
		{"mixed then other mix", "svc-A", "SVC-a"},
		{"upper then lower", "ABC", "abc"},
		{"lower then upper", "def", "DEF"},
		{"digits and dashes", "0-X-9", "0-x-9"},
		{"dash only", "-", "-"},
		{"single digit", "7", "7"},
		{"127 characters", long, strings.ToUpper(long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			lower := strings.ToLower(tt.write)
			p := mustSet(t, s, tt.write, enabled("first of "+tt.write))
			if p.Name != lower {
				t.Errorf("SetSecret(%q).Name = %q; want %q", tt.write, p.Name, lower)
			}
			got := mustGet(t, s, tt.read, "")
			if got.Value != "first of "+tt.write || got.Version != p.Version {
				t.Errorf("GetSecret(%q) = version %q; want the version %q written as %q", tt.read, got.Version, p.Version, tt.write)
			}
			if got.Name != lower {
				t.Errorf("GetSecret(%q).Name = %q; want %q", tt.read, got.Name, lower)
			}
			// A write under the other spelling is a new version of the
			// same secret.
			p2 := mustSet(t, s, tt.read, enabled("second"))
			list, err := s.ListVersions(ctx, tt.write)
			if err != nil {
				t.Fatalf("ListVersions(%q) = %v", tt.write, err)
			}
			listed, want := versionsOf(list), []string{p2.Version, p.Version}
			slices.Sort(listed) // listings come in no promised order
			slices.Sort(want)
			if !slices.Equal(listed, want) {
				t.Errorf("ListVersions(%q) versions = %q; want %q", tt.write, listed, want)
			}
		})
	}
}

func testInvalidNames(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	// A valid secret, so that refusals cannot be NotFound by accident.
	mustSet(t, s, "valid", enabled("v"))
	names := []string{
		"",
		"a_b",
		"a.b",
		"a b",
		"a/b",
		"../valid",
		"valid/",
		`a\b`,
		"ä",
		"svc-é",
		"名前",
		"a\x00",
		"a\xff",
		"tab\t",
		strings.Repeat("a", secretstore.MaxNameLen+1),
	}
	for _, name := range names {
		label := fmt.Sprintf("%q", name)
		if len(name) > 20 {
			label = fmt.Sprintf("%d characters", len(name))
		}
		t.Run(label, func(t *testing.T) {
			_, err := s.SetSecret(ctx, name, enabled("value"))
			wantCode(t, err, secretstore.InvalidArgument, "SetSecret")
			_, err = s.GetSecret(ctx, name, "")
			wantCode(t, err, secretstore.InvalidArgument, "GetSecret")
			_, err = s.ListVersions(ctx, name)
			wantCode(t, err, secretstore.InvalidArgument, "ListVersions")
			_, err = s.UpdateProperties(ctx, name, "", secretstore.Update{Tags: map[string]string{"a": "b"}})
			wantCode(t, err, secretstore.InvalidArgument, "UpdateProperties")
		})
	}
}

func testInvalidVersions(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	mustSet(t, s, "secret", enabled("v"))
	for _, version := range []string{".", "..", "../secret", "a/b", `a\b`, "a.b", strings.Repeat("a", 65)} {
		t.Run(fmt.Sprintf("%q", version), func(t *testing.T) {
			_, err := s.GetSecret(ctx, "secret", version)
			wantCode(t, err, secretstore.InvalidArgument, "GetSecret")
			_, err = s.UpdateProperties(ctx, "secret", version, secretstore.Update{Tags: map[string]string{}})
			wantCode(t, err, secretstore.InvalidArgument, "UpdateProperties")
		})
	}
}

// testVersions pins: every write makes a new version (even of the same
// value), reading without a version returns the newest, an older version
// can be read by its id, and the list holds every version exactly once (in
// no promised order).
func testVersions(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	values := []string{"one", "two", "two", "three"}
	var written []secretstore.Properties
	for i, v := range values {
		p := mustSet(t, s, "versions", secretstore.SetParams{Value: v, Enabled: true, Tags: map[string]string{"n": fmt.Sprint(i)}})
		if p.Version == "" {
			t.Fatalf("SetSecret #%d returned an empty version", i)
		}
		for _, old := range written {
			if old.Version == p.Version {
				t.Fatalf("SetSecret #%d returned version %q again", i, p.Version)
			}
		}
		written = append(written, p)
		got := mustGet(t, s, "versions", "")
		if got.Value != v || got.Version != p.Version {
			t.Errorf("after write #%d, GetSecret(newest) = (%q, version %q); want (%q, version %q)", i, got.Value, got.Version, v, p.Version)
		}
	}
	for i, p := range written {
		got := mustGet(t, s, "versions", p.Version)
		if got.Value != values[i] {
			t.Errorf("GetSecret(version #%d) = %q; want %q", i, got.Value, values[i])
		}
		sameProps(t, fmt.Sprintf("GetSecret(version #%d)", i), got.Properties, p)
	}
	list, err := s.ListVersions(ctx, "versions")
	if err != nil {
		t.Fatalf("ListVersions = %v", err)
	}
	if len(list) != len(written) {
		t.Fatalf("ListVersions returned %d versions; want %d", len(list), len(written))
	}
	byVersion := make(map[string]secretstore.Properties)
	for _, got := range list {
		if _, dup := byVersion[got.Version]; dup {
			t.Errorf("ListVersions lists version %q twice", got.Version)
		}
		byVersion[got.Version] = got
	}
	for i, want := range written {
		got, ok := byVersion[want.Version]
		if !ok {
			t.Errorf("ListVersions lacks version #%d, %q", i, want.Version)
			continue
		}
		sameProps(t, fmt.Sprintf("ListVersions() entry of version #%d", i), got, want)
	}
}

func testNotFound(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	mine := mustSet(t, s, "known", enabled("k"))
	other := mustSet(t, s, "other", enabled("o"))
	const unknownVersion = "0123456789abcdef0123456789abcdef"
	upd := secretstore.Update{Tags: map[string]string{"a": "b"}}
	tests := []struct {
		name string
		call func() error
	}{
		{"get unknown secret", func() error { _, err := s.GetSecret(ctx, "unknown", ""); return err }},
		{"get unknown secret with a version", func() error { _, err := s.GetSecret(ctx, "unknown", mine.Version); return err }},
		{"list unknown secret", func() error { _, err := s.ListVersions(ctx, "unknown"); return err }},
		{"update unknown secret", func() error { _, err := s.UpdateProperties(ctx, "unknown", "", upd); return err }},
		{"get unknown version", func() error { _, err := s.GetSecret(ctx, "known", unknownVersion); return err }},
		{"get malformed version", func() error { _, err := s.GetSecret(ctx, "known", "nope"); return err }},
		{"get version of another secret", func() error { _, err := s.GetSecret(ctx, "known", other.Version); return err }},
		{"update unknown version", func() error { _, err := s.UpdateProperties(ctx, "known", unknownVersion, upd); return err }},
		{"update version of another secret", func() error { _, err := s.UpdateProperties(ctx, "known", other.Version, upd); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), secretstore.NotFound, tt.name)
		})
	}
	// The refused updates changed nothing.
	for _, p := range []secretstore.Properties{mine, other} {
		got := mustGet(t, s, p.Name, p.Version)
		if len(got.Tags) != 0 {
			t.Errorf("%s: tags = %v after refused updates; want none", p.Name, got.Tags)
		}
	}
}

func testTagLimits(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	nTags := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("tag%02d", i)] = fmt.Sprintf("value%02d", i)
		}
		return m
	}
	one := func(k, v string) map[string]string { return map[string]string{k: v} }
	const ok = secretstore.Unknown // no error
	tests := []struct {
		name string
		tags map[string]string
		want secretstore.ErrorCode
	}{
		{"no tags", nil, ok},
		{"empty tag set", map[string]string{}, ok},
		{"15 tags", nTags(secretstore.MaxTags), ok},
		{"16 tags", nTags(secretstore.MaxTags + 1), secretstore.InvalidArgument},
		{"name of 512 ASCII", one(strings.Repeat("n", 512), "v"), ok},
		{"name of 513 ASCII", one(strings.Repeat("n", 513), "v"), secretstore.InvalidArgument},
		{"name of 512 two-byte runes", one(strings.Repeat("é", 512), "v"), ok},
		{"name of 513 two-byte runes", one(strings.Repeat("é", 513), "v"), secretstore.InvalidArgument},
		{"empty name", one("", "v"), secretstore.InvalidArgument},
		{"value of 256 ASCII", one("k", strings.Repeat("v", 256)), ok},
		{"value of 257 ASCII", one("k", strings.Repeat("v", 257)), secretstore.InvalidArgument},
		{"value of 256 three-byte runes", one("k", strings.Repeat("€", 256)), ok},
		{"value of 257 three-byte runes", one("k", strings.Repeat("€", 257)), secretstore.InvalidArgument},
		{"value of 256 four-byte runes", one("k", strings.Repeat("😀", 256)), ok},
		{"empty value", one("k", ""), ok},
	}
	wantTags := func(m map[string]string) map[string]string {
		if m == nil {
			return map[string]string{}
		}
		return m
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("SetSecret", func(t *testing.T) {
				name := fmt.Sprintf("set-tags-%d", i)
				_, err := s.SetSecret(ctx, name, secretstore.SetParams{Value: "v", Enabled: true, Tags: tt.tags})
				if tt.want != ok {
					wantCode(t, err, tt.want, "SetSecret")
					_, err := s.ListVersions(ctx, name)
					wantCode(t, err, secretstore.NotFound, "ListVersions after a refused SetSecret")
					return
				}
				if err != nil {
					t.Fatalf("SetSecret = %v", err)
				}
				checkTags(t, s, name, "", wantTags(tt.tags))
			})
			t.Run("UpdateProperties", func(t *testing.T) {
				name := fmt.Sprintf("update-tags-%d", i)
				before := map[string]string{"before": "yes"}
				p := mustSet(t, s, name, secretstore.SetParams{Value: "v", Enabled: true, Tags: before})
				_, err := s.UpdateProperties(ctx, name, p.Version, secretstore.Update{Tags: tt.tags})
				if tt.want != ok {
					wantCode(t, err, tt.want, "UpdateProperties")
					checkTags(t, s, name, p.Version, before)
					return
				}
				if err != nil {
					t.Fatalf("UpdateProperties = %v", err)
				}
				want := tt.tags
				if want == nil { // nil tags leave the set as it is
					want = before
				}
				checkTags(t, s, name, p.Version, want)
			})
		})
	}
}

// checkTags checks a version's tags as GetSecret and ListVersions report
// them; version "" is the newest.
func checkTags(t *testing.T, s *secretstore.Store, name, version string, want map[string]string) {
	t.Helper()
	got := mustGet(t, s, name, version)
	if got.Tags == nil {
		t.Errorf("GetSecret(%q).Tags is nil; want a non-nil map", name)
	}
	if !maps.Equal(got.Tags, want) {
		t.Errorf("GetSecret(%q).Tags = %v; want %v", name, got.Tags, want)
	}
	list, err := s.ListVersions(t.Context(), name)
	if err != nil {
		t.Fatalf("ListVersions(%q) = %v", name, err)
	}
	for _, p := range list {
		if p.Version != got.Version {
			continue
		}
		if p.Tags == nil {
			t.Errorf("ListVersions(%q) entry has nil Tags; want a non-nil map", name)
		}
		if !maps.Equal(p.Tags, want) {
			t.Errorf("ListVersions(%q) tags = %v; want %v", name, p.Tags, want)
		}
		return
	}
	t.Errorf("ListVersions(%q) lacks version %q", name, got.Version)
}

func testValueSize(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	maxBytes := secretstore.MaxValueBytes
	// 8533 three-byte runes and one byte: exactly max bytes.
	multiByteMax := strings.Repeat("€", maxBytes/3) + strings.Repeat("a", maxBytes%3)
	tests := []struct {
		name  string
		value string
		ok    bool
	}{
		{"empty", "", true},
		{"max bytes", strings.Repeat("x", maxBytes), true},
		{"max bytes of multi-byte runes", multiByteMax, true},
		{"max+1 bytes", strings.Repeat("x", maxBytes+1), false},
		{"max+1 bytes of multi-byte runes", multiByteMax + "a", false},
		{"fewer runes than max but more bytes", strings.Repeat("€", maxBytes/3+1), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("size-%d", i)
			_, err := s.SetSecret(ctx, name, enabled(tt.value))
			if !tt.ok {
				wantCode(t, err, secretstore.InvalidArgument, "SetSecret")
				noValueIn(t, err, tt.value)
				_, err := s.ListVersions(ctx, name)
				wantCode(t, err, secretstore.NotFound, "ListVersions after a refused SetSecret")
				return
			}
			if err != nil {
				t.Fatalf("SetSecret of %d bytes = %v", len(tt.value), err)
			}
			if got := mustGet(t, s, name, ""); got.Value != tt.value {
				t.Errorf("GetSecret returned %d bytes; want the %d bytes written", len(got.Value), len(tt.value))
			}
		})
	}
}

func testValueRoundTrip(t *testing.T, s *secretstore.Store) {
	var ascii strings.Builder
	for b := range 128 {
		ascii.WriteByte(byte(b))
	}
	tests := []struct{ name, value string }{
		{"empty", ""},
		{"NUL", "\x00"},
		{"every ASCII byte", ascii.String()},
		{"whitespace", " \t\r\n \v\f "},
		{"surrounding spaces", "  padded  "},
		{"unicode", "héllo wörld — 漢字 😀 ∑ \u200b\ufeff"},
		{"combining marks", "e\u0301 a\u030a"},
		{"JSON and HTML specials", `{"a":"<b>&amp;\"\\/"}` + "\u2028\u2029"},
		{"format verbs", "%s %d %% %v %!"},
		{"PEM", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"},
		{"base64url key", "q5T1xVh0m3b-Jc_8d0Zk2rN9yW4eL6pA7sG1uI3oE5f"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("value-%d", i)
			p := mustSet(t, s, name, enabled(tt.value))
			for _, version := range []string{"", p.Version} {
				if got := mustGet(t, s, name, version); got.Value != tt.value {
					t.Errorf("GetSecret(%q, %q).Value = %q; want %q", name, version, got.Value, tt.value)
				}
			}
		})
	}
}

func testContentType(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	plain := mustSet(t, s, "plain", enabled("v"))
	if plain.ContentType != "" {
		t.Errorf("SetSecret without a content type: ContentType = %q; want empty", plain.ContentType)
	}
	p := mustSet(t, s, "typed", secretstore.SetParams{Value: `{"k":1}`, Enabled: true, ContentType: "application/json"})
	checkContentType(t, s, "typed", p.Version, "application/json")
	ct := "text/plain; charset=utf-8"
	up, err := s.UpdateProperties(ctx, "typed", p.Version, secretstore.Update{ContentType: &ct})
	if err != nil {
		t.Fatalf("UpdateProperties(ContentType) = %v", err)
	}
	if up.ContentType != ct {
		t.Errorf("UpdateProperties returned ContentType %q; want %q", up.ContentType, ct)
	}
	checkContentType(t, s, "typed", p.Version, ct)
	// An update of other fields leaves the content type.
	if _, err := s.UpdateProperties(ctx, "typed", p.Version, secretstore.Update{Tags: map[string]string{"a": "b"}}); err != nil {
		t.Fatalf("UpdateProperties(Tags) = %v", err)
	}
	checkContentType(t, s, "typed", p.Version, ct)
}

func checkContentType(t *testing.T, s *secretstore.Store, name, version, want string) {
	t.Helper()
	if got := mustGet(t, s, name, version); got.ContentType != want {
		t.Errorf("GetSecret(%q).ContentType = %q; want %q", name, got.ContentType, want)
	}
	if p := mustFind(t, s, name, version); p.ContentType != want {
		t.Errorf("ListVersions(%q) ContentType = %q; want %q", name, p.ContentType, want)
	}
}

func testDates(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Second)
	exp := now.Add(90 * 24 * time.Hour)
	nbf := now.Add(-time.Hour)

	plain := mustSet(t, s, "undated", enabled("v"))
	if plain.Expires != nil || plain.NotBefore != nil {
		t.Errorf("SetSecret without dates: Expires = %v, NotBefore = %v; want nil, nil", plain.Expires, plain.NotBefore)
	}
	checkDates(t, s, "undated", plain.Version, nil, nil)

	p := mustSet(t, s, "dated", secretstore.SetParams{Value: "v", Enabled: true, Expires: &exp, NotBefore: &nbf})
	checkDates(t, s, "dated", p.Version, &exp, &nbf)

	// Each date changes alone.
	exp2 := exp.Add(24 * time.Hour)
	if _, err := s.UpdateProperties(ctx, "dated", p.Version, secretstore.Update{Expires: &exp2}); err != nil {
		t.Fatalf("UpdateProperties(Expires) = %v", err)
	}
	checkDates(t, s, "dated", p.Version, &exp2, &nbf)
	nbf2 := nbf.Add(-24 * time.Hour)
	if _, err := s.UpdateProperties(ctx, "dated", p.Version, secretstore.Update{NotBefore: &nbf2}); err != nil {
		t.Fatalf("UpdateProperties(NotBefore) = %v", err)
	}
	checkDates(t, s, "dated", p.Version, &exp2, &nbf2)
	// Dates can be added to a version that had none.
	if _, err := s.UpdateProperties(ctx, "undated", plain.Version, secretstore.Update{Expires: &exp, NotBefore: &nbf}); err != nil {
		t.Fatalf("UpdateProperties(Expires, NotBefore) = %v", err)
	}
	checkDates(t, s, "undated", plain.Version, &exp, &nbf)
}

func checkDates(t *testing.T, s *secretstore.Store, name, version string, exp, nbf *time.Time) {
	t.Helper()
	got := mustGet(t, s, name, version)
	if !sameTime(got.Expires, exp) || !sameTime(got.NotBefore, nbf) {
		t.Errorf("GetSecret(%q): Expires = %v, NotBefore = %v; want %v, %v", name, fmtTime(got.Expires), fmtTime(got.NotBefore), fmtTime(exp), fmtTime(nbf))
	}
	p := mustFind(t, s, name, version)
	if !sameTime(p.Expires, exp) || !sameTime(p.NotBefore, nbf) {
		t.Errorf("ListVersions(%q): Expires = %v, NotBefore = %v; want %v, %v", name, fmtTime(p.Expires), fmtTime(p.NotBefore), fmtTime(exp), fmtTime(nbf))
	}
}

func testExpiredReadable(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	nbf := past.Add(-24 * time.Hour)
	p := mustSet(t, s, "expired", secretstore.SetParams{Value: "still here", Enabled: true, Expires: &past, NotBefore: &nbf})
	for _, version := range []string{"", p.Version} {
		got := mustGet(t, s, "expired", version)
		if got.Value != "still here" || !got.Enabled {
			t.Errorf("GetSecret(expired, %q) = (%q, enabled %v); want (%q, enabled true)", version, got.Value, got.Enabled, "still here")
		}
	}
	// A version that expires by an update is readable too.
	q := mustSet(t, s, "expires-later", enabled("later"))
	if _, err := s.UpdateProperties(ctx, "expires-later", q.Version, secretstore.Update{Expires: &past}); err != nil {
		t.Fatalf("UpdateProperties(Expires) = %v", err)
	}
	if got := mustGet(t, s, "expires-later", ""); got.Value != "later" {
		t.Errorf("GetSecret after expiry by update = %q; want %q", got.Value, "later")
	}
}

func testUpdateReplacesTags(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	v1 := mustSet(t, s, "tagged", secretstore.SetParams{
		Value: "first", Enabled: true, ContentType: "ct", Expires: &exp,
		Tags: map[string]string{"a": "1", "b": "2", "c": "3"},
	})

	// New tags replace the set: a and b are gone, c changes, d is new.
	want := map[string]string{"c": "30", "d": "4"}
	up, err := s.UpdateProperties(ctx, "tagged", "", secretstore.Update{Tags: map[string]string{"c": "30", "d": "4"}})
	if err != nil {
		t.Fatalf("UpdateProperties = %v", err)
	}
	if up.Version != v1.Version {
		t.Errorf("UpdateProperties returned version %q; want %q (an update makes no version)", up.Version, v1.Version)
	}
	if !maps.Equal(up.Tags, want) {
		t.Errorf("UpdateProperties returned tags %v; want %v", up.Tags, want)
	}
	checkTags(t, s, "tagged", "", want)
	got := mustGet(t, s, "tagged", "")
	if got.Value != "first" || got.ContentType != "ct" || !sameTime(got.Expires, &exp) || !got.Enabled {
		t.Errorf("after a tags update: value %q, content type %q, expires %v, enabled %v; want them unchanged",
			got.Value, got.ContentType, fmtTime(got.Expires), got.Enabled)
	}
	if list := mustList(t, s, "tagged"); len(list) != 1 {
		t.Errorf("ListVersions after an update has %d versions; want 1", len(list))
	}

	// An update without tags leaves them.
	ct := "ct2"
	if _, err := s.UpdateProperties(ctx, "tagged", "", secretstore.Update{ContentType: &ct}); err != nil {
		t.Fatalf("UpdateProperties(ContentType) = %v", err)
	}
	checkTags(t, s, "tagged", "", want)

	// An empty set removes every tag.
	if _, err := s.UpdateProperties(ctx, "tagged", "", secretstore.Update{Tags: map[string]string{}}); err != nil {
		t.Fatalf("UpdateProperties(empty tags) = %v", err)
	}
	checkTags(t, s, "tagged", "", map[string]string{})

	// Version "" is the newest; an older version can be named, and an
	// update of it changes neither the newest nor which one is newest.
	v2 := mustSet(t, s, "tagged", secretstore.SetParams{Value: "second", Enabled: true, Tags: map[string]string{"x": "1"}})
	if _, err := s.UpdateProperties(ctx, "tagged", "", secretstore.Update{Tags: map[string]string{"y": "2"}}); err != nil {
		t.Fatalf("UpdateProperties(newest) = %v", err)
	}
	checkTags(t, s, "tagged", v2.Version, map[string]string{"y": "2"})
	checkTags(t, s, "tagged", v1.Version, map[string]string{})
	if _, err := s.UpdateProperties(ctx, "tagged", v1.Version, secretstore.Update{Tags: map[string]string{"z": "3"}}); err != nil {
		t.Fatalf("UpdateProperties(older) = %v", err)
	}
	checkTags(t, s, "tagged", v1.Version, map[string]string{"z": "3"})
	checkTags(t, s, "tagged", v2.Version, map[string]string{"y": "2"})
	if got := mustGet(t, s, "tagged", ""); got.Version != v2.Version {
		t.Errorf("after updating an older version, the newest is %q; want %q", got.Version, v2.Version)
	}
}

func testDisabled(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	no, yes := false, true
	var vs []secretstore.Properties
	for _, v := range []string{"value-1", "value-2", "value-3"} {
		vs = append(vs, mustSet(t, s, "toggled", enabled(v)))
	}

	up, err := s.UpdateProperties(ctx, "toggled", vs[1].Version, secretstore.Update{Enabled: &no})
	if err != nil {
		t.Fatalf("UpdateProperties(Enabled=false) = %v", err)
	}
	if up.Enabled {
		t.Errorf("UpdateProperties(Enabled=false) returned Enabled = true")
	}
	_, err = s.GetSecret(ctx, "toggled", vs[1].Version)
	wantCode(t, err, secretstore.Disabled, "GetSecret(disabled version)")
	noValueIn(t, err, "value-2")
	for _, c := range []struct{ version, want string }{{vs[0].Version, "value-1"}, {vs[2].Version, "value-3"}, {"", "value-3"}} {
		if got := mustGet(t, s, "toggled", c.version); got.Value != c.want {
			t.Errorf("GetSecret(%q) with another version disabled = %q; want %q", c.version, got.Value, c.want)
		}
	}
	list := mustList(t, s, "toggled")
	if got, want := enabledOf(list, vs), []bool{true, false, true}; !slices.Equal(got, want) {
		t.Errorf("ListVersions Enabled, in write order = %v; want %v", got, want)
	}

	// Re-enabled, it reads again, unchanged.
	if _, err := s.UpdateProperties(ctx, "toggled", vs[1].Version, secretstore.Update{Enabled: &yes}); err != nil {
		t.Fatalf("UpdateProperties(Enabled=true) = %v", err)
	}
	if got := mustGet(t, s, "toggled", vs[1].Version); got.Value != "value-2" || !got.Enabled {
		t.Errorf("GetSecret(re-enabled) = (%q, enabled %v); want (%q, enabled true)", got.Value, got.Enabled, "value-2")
	}

	// With the newest disabled, reading the newest is refused: the store
	// does not fall back to an older version.
	if _, err := s.UpdateProperties(ctx, "toggled", "", secretstore.Update{Enabled: &no}); err != nil {
		t.Fatalf("UpdateProperties(newest, Enabled=false) = %v", err)
	}
	_, err = s.GetSecret(ctx, "toggled", "")
	wantCode(t, err, secretstore.Disabled, "GetSecret(newest disabled)")
	_, err = s.GetSecret(ctx, "toggled", vs[2].Version)
	wantCode(t, err, secretstore.Disabled, "GetSecret(newest disabled, by version)")
	if got := mustGet(t, s, "toggled", vs[1].Version); got.Value != "value-2" {
		t.Errorf("GetSecret(older) with the newest disabled = %q; want %q", got.Value, "value-2")
	}
	// A new write is readable again.
	mustSet(t, s, "toggled", enabled("value-4"))
	if got := mustGet(t, s, "toggled", ""); got.Value != "value-4" {
		t.Errorf("GetSecret after a new write = %q; want %q", got.Value, "value-4")
	}

	// A version written disabled is listed but not readable until enabled.
	p := mustSet(t, s, "born-disabled", secretstore.SetParams{Value: "hidden", Enabled: false})
	if p.Enabled {
		t.Errorf("SetSecret(Enabled=false) returned Enabled = true")
	}
	_, err = s.GetSecret(ctx, "born-disabled", "")
	wantCode(t, err, secretstore.Disabled, "GetSecret(written disabled)")
	noValueIn(t, err, "hidden")
	if got := enabledOf(mustList(t, s, "born-disabled"), []secretstore.Properties{p}); !slices.Equal(got, []bool{false}) {
		t.Errorf("ListVersions Enabled = %v; want [false]", got)
	}
	if _, err := s.UpdateProperties(ctx, "born-disabled", p.Version, secretstore.Update{Enabled: &yes}); err != nil {
		t.Fatalf("UpdateProperties(Enabled=true) = %v", err)
	}
	if got := mustGet(t, s, "born-disabled", ""); got.Value != "hidden" {
		t.Errorf("GetSecret after enabling = %q; want %q", got.Value, "hidden")
	}
}

func testTimestamps(t *testing.T, s *secretstore.Store) {
	ctx := t.Context()
	p := mustSet(t, s, "stamped", enabled("v"))
	if p.Created.IsZero() || p.Updated.IsZero() {
		t.Fatalf("SetSecret: Created = %v, Updated = %v; want both set", p.Created, p.Updated)
	}
	if p.Updated.Before(p.Created) {
		t.Errorf("SetSecret: Updated %v is before Created %v", p.Updated, p.Created)
	}
	tag := map[string]string{"a": "b"}
	up, err := s.UpdateProperties(ctx, "stamped", p.Version, secretstore.Update{Tags: tag})
	if err != nil {
		t.Fatalf("UpdateProperties = %v", err)
	}
	if !up.Created.Equal(p.Created) {
		t.Errorf("UpdateProperties changed Created from %v to %v", p.Created, up.Created)
	}
	if up.Updated.Before(p.Updated) {
		t.Errorf("UpdateProperties: Updated went back from %v to %v", p.Updated, up.Updated)
	}
	got := mustGet(t, s, "stamped", "")
	if !got.Created.Equal(up.Created) || !got.Updated.Equal(up.Updated) {
		t.Errorf("GetSecret: Created %v, Updated %v; want %v, %v as the update returned", got.Created, got.Updated, up.Created, up.Updated)
	}
}

// testConcurrentWriters pins that concurrent writes of one secret lose
// nothing (see [CheckConcurrentWrites]).
func testConcurrentWriters(t *testing.T, s *secretstore.Store) {
	const name = "contended"
	writes := make([][]Write, concurrentWriters)
	var wg sync.WaitGroup
	for w := range concurrentWriters {
		wg.Go(func() {
			for i := range writesPerWriter {
				value := concurrentValue(w, i)
				p, err := s.SetSecret(t.Context(), name, enabled(value))
				if err != nil {
					t.Errorf("writer %d, write %d: SetSecret = %v", w, i, err)
					return
				}
				writes[w] = append(writes[w], Write{Version: p.Version, Value: value})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	CheckConcurrentWrites(t, s, name, writes)
}

// Write is one completed write of a secret: the version SetSecret returned
// and the value written.
type Write struct {
	Version, Value string
}

// CheckConcurrentWrites checks a secret that several writers wrote at once,
// and nobody else: writes[w] lists writer w's completed writes in the order
// it made them. It checks that every write got its own version; that
// ListVersions has exactly these versions (in any order), each writer's
// writes created no earlier in the order it made them; that the newest
// version is the last write of one of the writers, created no earlier than
// any other; and that every version reads back the value written.
// Driver tests that write from several processes call it too.
func CheckConcurrentWrites(t *testing.T, s *secretstore.Store, name string, writes [][]Write) {
	t.Helper()
	valueOf := make(map[string]string) // version -> value written
	for w, ws := range writes {
		for i, wr := range ws {
			if prev, dup := valueOf[wr.Version]; dup {
				t.Fatalf("version %q returned for both %q and %q (writer %d, write %d)", wr.Version, prev, wr.Value, w, i)
			}
			valueOf[wr.Version] = wr.Value
		}
	}
	list := mustList(t, s, name)
	if len(list) != len(valueOf) {
		t.Errorf("ListVersions has %d versions; want %d", len(list), len(valueOf))
	}
	listed := make(map[string]secretstore.Properties) // version -> its entry
	var latest time.Time
	for _, p := range list {
		if _, ok := valueOf[p.Version]; !ok {
			t.Errorf("ListVersions has version %q that no writer got", p.Version)
		}
		if _, dup := listed[p.Version]; dup {
			t.Errorf("ListVersions has version %q twice", p.Version)
		}
		listed[p.Version] = p
		if p.Created.After(latest) {
			latest = p.Created
		}
	}
	lastWrites := make(map[string]bool)
	for w, ws := range writes {
		for i, wr := range ws {
			p, ok := listed[wr.Version]
			if !ok {
				t.Errorf("writer %d, write %d: version %q is not listed", w, i, wr.Version)
				continue
			}
			if i > 0 {
				if prev, ok := listed[ws[i-1].Version]; ok && p.Created.Before(prev.Created) {
					t.Errorf("writer %d: write %d was created at %v, before write %d at %v", w, i, p.Created, i-1, prev.Created)
				}
			}
		}
		if len(ws) > 0 {
			lastWrites[ws[len(ws)-1].Version] = true
		}
	}
	newest := mustGet(t, s, name, "")
	if newest.Created.Before(latest) {
		t.Errorf("GetSecret(newest) = version %q created at %v; another version was created later, at %v", newest.Version, newest.Created, latest)
	}
	if !lastWrites[newest.Version] {
		t.Errorf("GetSecret(newest) = %q; want the last write of one writer", newest.Value)
	}
	for v, want := range valueOf {
		if got := mustGet(t, s, name, v); got.Value != want {
			t.Errorf("GetSecret(%q) = %q; want %q", v, got.Value, want)
		}
	}
}

func concurrentValue(writer, write int) string {
	return fmt.Sprintf("writer-%02d-write-%03d", writer, write)
}

// Helpers.

func enabled(value string) secretstore.SetParams {
	return secretstore.SetParams{Value: value, Enabled: true}
}

func mustSet(t *testing.T, s *secretstore.Store, name string, p secretstore.SetParams) secretstore.Properties {
	t.Helper()
	props, err := s.SetSecret(t.Context(), name, p)
	if err != nil {
		t.Fatalf("SetSecret(%q) = %v", name, err)
	}
	return props
}

func mustGet(t *testing.T, s *secretstore.Store, name, version string) secretstore.Secret {
	t.Helper()
	sec, err := s.GetSecret(t.Context(), name, version)
	if err != nil {
		t.Fatalf("GetSecret(%q, %q) = %v", name, version, err)
	}
	return sec
}

func mustList(t *testing.T, s *secretstore.Store, name string) []secretstore.Properties {
	t.Helper()
	list, err := s.ListVersions(t.Context(), name)
	if err != nil {
		t.Fatalf("ListVersions(%q) = %v", name, err)
	}
	return list
}

// mustFind returns a version's entry in the list; version "" is the newest
// (as GetSecret names it: the list's order says nothing).
func mustFind(t *testing.T, s *secretstore.Store, name, version string) secretstore.Properties {
	t.Helper()
	if version == "" {
		version = mustGet(t, s, name, "").Version
	}
	list := mustList(t, s, name)
	for _, p := range list {
		if p.Version == version {
			return p
		}
	}
	t.Fatalf("ListVersions(%q) lacks version %q", name, version)
	return secretstore.Properties{}
}

// wantCode checks that err is a *secretstore.Error with code want.
func wantCode(t *testing.T, err error, want secretstore.ErrorCode, what string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: err = nil; want code %v", what, want)
		return
	}
	var e *secretstore.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: err = %v (%T); want a *secretstore.Error", what, err, err)
		return
	}
	if got := secretstore.Code(err); got != want {
		t.Errorf("%s: code = %v; want %v (err: %v)", what, got, want, err)
	}
}

// noValueIn checks that an error does not show a secret value.
func noValueIn(t *testing.T, err error, value string) {
	t.Helper()
	if err != nil && value != "" && strings.Contains(err.Error(), value) {
		t.Errorf("error %q contains the secret value", err)
	}
}

// sameProps compares the properties of one version as two calls report them.
func sameProps(t *testing.T, what string, got, want secretstore.Properties) {
	t.Helper()
	if got.Name != want.Name || got.Version != want.Version || got.ContentType != want.ContentType ||
		got.Enabled != want.Enabled || !sameTime(got.Expires, want.Expires) || !sameTime(got.NotBefore, want.NotBefore) ||
		!got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) || !maps.Equal(got.Tags, want.Tags) {
		t.Errorf("%s = %+v; want %+v", what, got, want)
	}
	if got.Tags == nil {
		t.Errorf("%s: Tags is nil; want a non-nil map", what)
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "<nil>"
	}
	return t.UTC().Format(time.RFC3339)
}

func versionsOf(list []secretstore.Properties) []string {
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.Version
	}
	return out
}

// enabledOf returns the Enabled of each of versions as list has it, in
// the order of versions (false for one not listed).
func enabledOf(list, versions []secretstore.Properties) []bool {
	out := make([]bool, len(versions))
	for i, v := range versions {
		for _, p := range list {
			if p.Version == v.Version {
				out[i] = p.Enabled
			}
		}
	}
	return out
}
