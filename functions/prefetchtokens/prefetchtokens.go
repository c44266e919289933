// Package prefetchtokens is the prefetchtokens timer function
// (docs/design.md section 2): on PREFETCH_SCHEDULE it refreshes every configured
// consumer's token in the secret store before its refreshAfter (package
// prefetch). The host invokes it with the invocation envelope at
// /prefetchtokens.
package prefetchtokens

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/prefetch"
)

// Binding is the timer trigger binding's name in function.json.
const Binding = "timer"

// Function serves the prefetchtokens function.
type Function struct {
	Prefetcher *prefetch.Prefetcher
	Log        *slog.Logger
}

// Handler returns the function's invocation handler.
func (f *Function) Handler() http.Handler {
	return azfunc.TimerHandler(Binding, f.Run, f.Log)
}

// Run refreshes the tokens that are due. Each consumer's outcome goes to
// the invocation's Logs; failures are returned joined (each was logged as
// prefetch_failed already).
func (f *Function) Run(ctx context.Context, t azfunc.TimerInfo) error {
	res, err := f.Prefetcher.Run(ctx)
	for _, r := range res {
		azfunc.Logf(ctx, "prefetchtokens: %s: %s, refresh after %s", r.Consumer, r.Outcome, r.RefreshAfter.UTC().Format(time.RFC3339))
	}
	if err != nil {
		azfunc.Logf(ctx, "prefetchtokens: %v", err)
	}
	f.Log.Info("prefetchtokens_run", "consumers", len(res), "failed", err != nil, "pastDue", t.IsPastDue)
	return err
}
