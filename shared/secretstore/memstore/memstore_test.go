package memstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/drivertest"
)

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, drivertest.Harness{
		NewOrderedStore: func(t *testing.T, order driver.ListOrder) *secretstore.Store {
			return Open(&Options{ListOrder: order, ListSeed: 1})
		},
	})
}

func TestClock(t *testing.T) {
	ctx := t.Context()
	clock := fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("X", 3600)))
	s := Open(&Options{Now: clock.Now})
	defer s.Close()

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
	clock.Advance(time.Hour)
	exp := clock.Now().Add(1500 * time.Millisecond)
	up, err := s.UpdateProperties(ctx, "svc-a", "", secretstore.Update{Expires: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if !up.Created.Equal(wantCreated) || !up.Updated.Equal(wantCreated.Add(time.Hour)) {
		t.Errorf("after update: Created, Updated = %v, %v; want %v, %v", up.Created, up.Updated, wantCreated, wantCreated.Add(time.Hour))
	}
	if want := exp.Truncate(time.Second); up.Expires == nil || !up.Expires.Equal(want) {
		t.Errorf("Expires = %v; want %v (whole seconds)", up.Expires, want)
	}
}

func TestErrorCode(t *testing.T) {
	d := open(nil)
	tests := []struct {
		name string
		err  error
		want driver.ErrorCode
	}{
		{"not found", fmt.Errorf("memstore: get x: %w", driver.ErrNotFound), driver.NotFound},
		{"disabled", fmt.Errorf("memstore: get x: %w", driver.ErrDisabled), driver.Disabled},
		{"invalid", fmt.Errorf("memstore: get x: %w", driver.ErrInvalidArgument), driver.InvalidArgument},
		{"closed", driver.ErrClosed, driver.Unavailable},
		{"injected", fmt.Errorf("memstore: get x: %w", &Error{Code: driver.Throttled}), driver.Throttled},
		{"injected with a cause", &Error{Code: driver.PermissionDenied, Err: driver.ErrNotFound}, driver.PermissionDenied},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), driver.Unknown},
		{"other", errors.New("boom"), driver.Unknown},
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
// driver refuses malformed names, a canceled context and a closed store.
func TestRawDriver(t *testing.T) {
	ctx := t.Context()
	d := open(nil)
	for _, name := range []string{"", "../escape", "UPPER", "a/b", ".", strings.Repeat("a", 128)} {
		_, err := d.SetSecret(ctx, name, driver.SetParams{Value: "v", Enabled: true})
		if !errors.Is(err, driver.ErrInvalidArgument) {
			t.Errorf("SetSecret(%q) = %v; want driver.ErrInvalidArgument", name, err)
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
	// What a call returns shares nothing with the store.
	p.Tags["mine"] = "changed"
	if sec, _ := d.GetSecret(ctx, "ok", ""); len(sec.Tags) != 0 {
		t.Errorf("changing returned tags changed the store: %v", sec.Tags)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.GetSecret(canceled, "ok", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("GetSecret(canceled) = %v; want context.Canceled", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"SetSecret":        func() error { _, err := d.SetSecret(ctx, "ok", driver.SetParams{Value: "v"}); return err },
		"GetSecret":        func() error { _, err := d.GetSecret(ctx, "ok", ""); return err },
		"ListVersions":     func() error { _, err := d.ListVersions(ctx, "ok"); return err },
		"UpdateProperties": func() error { _, err := d.UpdateProperties(ctx, "ok", "", driver.Update{}); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, driver.ErrClosed) {
			t.Errorf("%s after Close = %v; want driver.ErrClosed", name, err)
		}
	}
}

type call struct{ op, name string }

// TestBeforeFn checks the hook: it sees every call with its context,
// operation and lower-case name; its error fails the call, which changes
// nothing; an *Error's code and Retry-After reach the portable store.
func TestBeforeFn(t *testing.T) {
	type ctxKey struct{}
	var (
		mu    sync.Mutex
		calls []call
		fail  error
	)
	s := Open(&Options{BeforeFn: func(ctx context.Context, op, name string) error {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Value(ctxKey{}) == nil {
			return errors.New("the hook did not get the call's context")
		}
		calls = append(calls, call{op, name})
		return fail
	}})
	defer s.Close()
	setFail := func(err error) { mu.Lock(); fail = err; mu.Unlock() }
	ctx := context.WithValue(t.Context(), ctxKey{}, true)

	p, err := s.SetSecret(ctx, "Svc-A", secretstore.SetParams{Value: "v1", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecret(ctx, "SVC-A", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListVersions(ctx, "svc-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateProperties(ctx, "svc-a", p.Version, secretstore.Update{Tags: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	// An invalid name never reaches the driver, nor the hook.
	s.GetSecret(ctx, "not_valid", "")
	want := []call{{OpSet, "svc-a"}, {OpGet, "svc-a"}, {OpList, "svc-a"}, {OpUpdate, "svc-a"}}
	if !slices.Equal(calls, want) {
		t.Errorf("the hook saw %v; want %v", calls, want)
	}

	errDown := errors.New("store down")
	tests := []struct {
		name       string
		err        error
		want       secretstore.ErrorCode
		retryAfter time.Duration
	}{
		{"unavailable", &Error{Code: secretstore.Unavailable, Err: errDown}, secretstore.Unavailable, 0},
		{"throttled", &Error{Code: secretstore.Throttled, RetryAfter: 10 * time.Second}, secretstore.Throttled, 10 * time.Second},
		{"retry-after only when throttled", &Error{Code: secretstore.Unavailable, RetryAfter: 10 * time.Second}, secretstore.Unavailable, 0},
		{"a plain error", errDown, secretstore.Unknown, 0},
	}
	newTags := map[string]string{"changed": "yes"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setFail(tt.err)
			defer setFail(nil)
			calls := map[string]func() error{
				"SetSecret": func() error {
					_, err := s.SetSecret(ctx, "svc-a", secretstore.SetParams{Value: "v2", Enabled: true})
					return err
				},
				"GetSecret":    func() error { _, err := s.GetSecret(ctx, "svc-a", ""); return err },
				"ListVersions": func() error { _, err := s.ListVersions(ctx, "svc-a"); return err },
				"UpdateProperties": func() error {
					_, err := s.UpdateProperties(ctx, "svc-a", "", secretstore.Update{Tags: newTags})
					return err
				},
			}
			for name, call := range calls {
				err := call()
				if got := secretstore.Code(err); got != tt.want {
					t.Errorf("%s: code %v; want %v (err: %v)", name, got, tt.want, err)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("%s: %v does not wrap the hook's error", name, err)
				}
				if errors.Is(tt.err, errDown) && !errors.Is(err, errDown) {
					t.Errorf("%s: %v does not wrap the cause", name, err)
				}
				var se *secretstore.Error
				if errors.As(err, &se) && se.RetryAfter != tt.retryAfter {
					t.Errorf("%s: RetryAfter = %v; want %v", name, se.RetryAfter, tt.retryAfter)
				}
			}
		})
	}
	// The failed calls changed nothing.
	list, err := s.ListVersions(ctx, "svc-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Version != p.Version || list[0].Tags["k"] != "v" || len(list[0].Tags) != 1 {
		t.Errorf("after failed calls, ListVersions = %+v; want the one version, tags k=v", list)
	}
}

// TestBeforeFnMayCallTheStore: the hook runs with no lock held.
func TestBeforeFnMayCallTheStore(t *testing.T) {
	var s *secretstore.Store
	type inner struct{}
	s = Open(&Options{BeforeFn: func(ctx context.Context, op, name string) error {
		if ctx.Value(inner{}) != nil {
			return nil
		}
		_, err := s.ListVersions(context.WithValue(ctx, inner{}, true), name)
		if op != OpSet && err != nil {
			return err
		}
		return nil
	}})
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := s.SetSecret(t.Context(), "a", secretstore.SetParams{Value: "v", Enabled: true})
		if err == nil {
			_, err = s.GetSecret(t.Context(), "a", "")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a hook that calls the store deadlocked")
	}
}

// TestBeforeFnMayBlock: a hook that blocks one caller does not block
// another.
func TestBeforeFnMayBlock(t *testing.T) {
	release := make(chan struct{})
	s := Open(&Options{BeforeFn: func(ctx context.Context, op, name string) error {
		if name == "slow" {
			<-release
		}
		return nil
	}})
	defer s.Close()
	slow := make(chan error, 1)
	go func() {
		_, err := s.SetSecret(t.Context(), "slow", secretstore.SetParams{Value: "v", Enabled: true})
		slow <- err
	}()
	if _, err := s.SetSecret(t.Context(), "fast", secretstore.SetParams{Value: "v", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecret(t.Context(), "fast", ""); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// TestListOrder: ListVersions lists in the order set, every version once.
func TestListOrder(t *testing.T) {
	for _, order := range driver.ListOrders {
		t.Run(order.String(), func(t *testing.T) {
			s := Open(&Options{ListOrder: order, ListSeed: 5})
			defer s.Close()
			var written []string
			for range 6 {
				p, err := s.SetSecret(t.Context(), "listed", secretstore.SetParams{Value: "v", Enabled: true})
				if err != nil {
					t.Fatal(err)
				}
				written = append(written, p.Version)
			}
			list, err := s.ListVersions(t.Context(), "listed")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range list {
				got = append(got, p.Version)
			}
			want := slices.Clone(written)
			switch order {
			case driver.NewestFirst:
				slices.Reverse(want)
			case driver.VersionIDOrder:
				slices.Sort(want)
			case driver.RandomOrder:
				got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %v; want %v", got, want)
			}
		})
	}
}
