package main

import (
	"context"
	"time"

	"github.com/modelauth/modelauth/shared/client"
)

// Watch timing.
const (
	// watchRetry is the wait after a failed refresh (azcore's back-off).
	watchRetry = 30 * time.Second
	// watchMinInterval is the least time between two fetches, so that a
	// refreshAfter already past (a clock behind the app's) cannot make a
	// busy loop. It is the refreshing source's MinRetry.
	watchMinInterval = time.Second
	// watchPoll is how often the source is asked for the new token while
	// a refresh is due or running.
	watchPoll = 200 * time.Millisecond
)

// watch hands emit a token from src, then each new one, until ctx ends.
// The tokens come through a [client.RefreshingSource] over src, which
// refreshes each token at its RefreshAfter, in the background, while the
// current one is still served. watch asks it at the current token's
// RefreshAfter and then every watchPoll until the new token arrives.
// When a refresh fails, watch calls warn and asks again watchRetry later
// (the source keeps the still-valid token meanwhile).
//
// It returns nil when ctx ends, the first fetch's error if that fails
// (wrapping [client.ErrNoValidToken]), and emit's error if it fails.
// timeout bounds each fetch. Timers follow the runtime's clock, so
// testing/synctest controls them.
func watch(ctx context.Context, src client.TokenSource, timeout time.Duration, emit func(*client.Token) error, warn func(err error, retry time.Duration)) error {
	rs := client.NewRefreshingSource(src, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.MinRetry = watchMinInterval; o.FetchTimeout = timeout }))
	var (
		last     string // the token emitted last
		reported error  // the refresh error warned about last
	)
	for {
		t, err := rs.Token(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case err != nil && last == "":
			return err
		case err != nil:
			// No valid token left, and the fetch failed.
			warn(err, watchRetry)
			wait = watchRetry
		default:
			if t.AccessToken != last {
				if err := emit(t); err != nil {
					return err
				}
				last, reported = t.AccessToken, nil
			}
			if e := rs.LastError(); e != nil && e != reported {
				// A refresh failed; the current token is still served.
				warn(e, watchRetry)
				reported, wait = e, watchRetry
			} else {
				wait = max(time.Until(t.RefreshAfter), watchPoll)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}
