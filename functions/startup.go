package functions

// This file runs the store-dependent part of the start: the administrator
// key and, with token-mode services, the first signing key. They are
// written while the handler already serves, and retried in the background
// while the store cannot be reached, so that a vault that is down (or a
// credential that fails) at start costs 503s, not a crash loop.

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/apierror"
)

// Bounds of the background retries of the start's store writes.
const (
	// startWait is how long NewApp waits for the first attempt before it
	// returns, so that a start against a store that answers is as
	// complete as before (the administrator key exists when the handler
	// listens) while one that hangs does not delay readiness.
	startWait = 2 * time.Second
	// initFirstDelay is the delay before the first retry; it doubles up
	// to initMaxDelay, with jitter (a random part of up to a quarter).
	initFirstDelay = time.Second
	initMaxDelay   = 30 * time.Second
)

// initStep is one store-dependent step of the start.
type initStep struct {
	name string // for the log: admin_key, signing_key
	run  func(context.Context) error
}

// storeInit runs the start's steps until each has succeeded once.
type storeInit struct {
	log    *slog.Logger
	steps  []initStep
	cancel context.CancelFunc
	first  chan struct{} // closed after the first attempt
	done   chan struct{} // closed once every step has succeeded
	exited chan struct{} // closed when the goroutine has returned

	mu      sync.Mutex
	pending map[string]bool // steps not yet done
	next    time.Time       // when the next attempt starts, once one failed
}

// startStoreInit starts running steps in the background until each has
// succeeded, then returns without waiting.
func startStoreInit(log *slog.Logger, steps []initStep) *storeInit {
	ctx, cancel := context.WithCancel(context.Background())
	si := &storeInit{
		log: log, steps: steps, cancel: cancel,
		first: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
		pending: make(map[string]bool, len(steps)),
	}
	for _, s := range steps {
		si.pending[s.name] = true
	}
	go si.loop(ctx)
	return si
}

func (si *storeInit) loop(ctx context.Context) {
	defer close(si.exited)
	start := time.Now()
	delay := initFirstDelay
	for attempt := 1; ; attempt++ {
		wait := delay + rand.N(delay/4+1)
		ok := si.attempt(ctx, attempt, wait)
		if ok {
			if attempt > 1 {
				si.log.Info("store_init_completed", "attempts", attempt, "elapsed", time.Since(start).Round(time.Millisecond).String())
			}
			close(si.done)
		}
		if attempt == 1 {
			close(si.first)
		}
		if ok {
			return
		}
		si.mu.Lock()
		si.next = time.Now().Add(wait)
		si.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, initMaxDelay)
	}
}

// attempt runs each step not yet done, in order, and reports whether all
// are done; a failure is logged with the wait before the next attempt.
func (si *storeInit) attempt(ctx context.Context, attempt int, wait time.Duration) bool {
	all := true
	for _, s := range si.steps {
		si.mu.Lock()
		pending := si.pending[s.name]
		si.mu.Unlock()
		if !pending {
			continue
		}
		err := s.run(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			// Store errors never hold a secret (package secretstore).
			si.log.Warn("store_init_failed", "step", s.name, "attempt", attempt,
				"retry_in", wait.Round(time.Millisecond).String(), "cause", err.Error())
			all = false
			continue
		}
		si.mu.Lock()
		delete(si.pending, s.name)
		si.mu.Unlock()
	}
	return all
}

// ready returns nil once step has succeeded, else the 503 to answer with,
// whose Retry-After is the time until the next attempt.
func (si *storeInit) ready(step string) error {
	if si == nil {
		return nil
	}
	si.mu.Lock()
	defer si.mu.Unlock()
	if !si.pending[step] {
		return nil
	}
	return &apierror.Error{Code: apierror.Unavailable,
		Message:    "the app is starting and cannot reach its secret store yet",
		RetryAfter: max(time.Until(si.next), time.Second)}
}

// stop ends the retries and waits for a running attempt to return.
func (si *storeInit) stop() {
	if si == nil {
		return
	}
	si.cancel()
	<-si.exited
}

// storeReady reports whether the start's store writes have succeeded.
func (a *App) storeReady() bool {
	select {
	case <-a.init.done:
		return true
	default:
		return false
	}
}

// StoreReady is closed once the start's store writes (the administrator
// key, the first signing key) have succeeded: at once when the store
// answered at start, later when it had to be retried.
func (a *App) StoreReady() <-chan struct{} { return a.init.done }
