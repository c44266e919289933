package rotatekeys

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/rotation"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) RotateIfDue(_ context.Context, service string) (rotation.Result, error) {
	r.add("rotate " + service)
	return rotation.Result{Outcome: rotation.NotDue}, nil
}

// TestRunSpreadsTheStarts: the key-mode services' runs start Spread apart,
// in the configuration's order, and services in other modes are skipped.
func TestRunSpreadsTheStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "modelauth.json")
	os.WriteFile(path, []byte(`{"services":[{"name":"a"},{"name":"t","authMode":"token"},{"name":"b"},{"name":"c"}]}`), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	f := &Function{Config: cfg, Rotator: rec, Spread: 3 * time.Second, Log: slog.New(slog.DiscardHandler),
		Sleep: func(_ context.Context, d time.Duration) error {
			time.Sleep(10 * time.Millisecond) // let the started run record itself first
			rec.add("sleep " + d.String())
			return nil
		}}
	if err := f.Run(context.Background(), azfunc.TimerInfo{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"rotate a", "sleep 3s", "rotate b", "sleep 3s", "rotate c"}
	if !slices.Equal(rec.events, want) {
		t.Fatalf("events %v; want %v", rec.events, want)
	}
}
