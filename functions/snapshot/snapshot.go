// Package snapshot is the snapshot timer function (docs/design.md sections
// 2 and 14): every minute it writes the change journal's snapshot, so that
// an instance's cold start reads a few secrets instead of every one, and
// resyncs a batch of the secrets validators need, recording what the
// journal does not say of them (a version disabled, or written from outside
// the app with no event). The host invokes it with the invocation envelope
// at /snapshot.
package snapshot

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/modelauth/modelauth/shared/azfunc"
)

// Binding is the timer trigger binding's name in function.json.
const Binding = "timer"

// Journal is the instance's change journal: [journal.Journal].
type Journal interface {
	WriteSnapshot(ctx context.Context) error
	Resync(ctx context.Context) error
}

// Function serves the snapshot function.
type Function struct {
	Journal Journal
	Log     *slog.Logger
}

// Handler returns the function's invocation handler.
func (f *Function) Handler() http.Handler {
	return azfunc.TimerHandler(Binding, f.Run, f.Log)
}

// Run writes the snapshot and resyncs a batch; both run, and their
// failures are returned joined.
func (f *Function) Run(ctx context.Context, t azfunc.TimerInfo) error {
	serr := f.Journal.WriteSnapshot(ctx)
	rerr := f.Journal.Resync(ctx)
	err := errors.Join(serr, rerr)
	if err != nil {
		azfunc.Logf(ctx, "snapshot: %v", err)
	}
	f.Log.Info("snapshot_run", "failed", err != nil, "pastDue", t.IsPastDue)
	return err
}
