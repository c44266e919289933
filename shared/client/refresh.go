package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrNoValidToken is returned by a [RefreshingSource] that holds no valid
// token and could not get one: the error wraps the cause (the fetch's
// error, or the caller's context error).
var ErrNoValidToken = errors.New("modelauth: no valid token")

// errBadFetch: the source answered a token that cannot be served.
var errBadFetch = errors.New("modelauth: the token source answered an empty token, or one expired or about to expire")

// Defaults of [RefreshOptions].
const (
	// DefaultMinRetry is the least time between two fetches of a
	// still-valid token's replacement: azcore's 30 s.
	DefaultMinRetry = 30 * time.Second
	// DefaultRefreshFraction is the part of a token's lifetime after which
	// it is refreshed when it has no RefreshAfter: half, as modelauth's
	// own refreshAfter.
	DefaultRefreshFraction = 0.5
	// DefaultExpiryLeeway is how long before its ExpiresOn a token stops
	// being served (x/oauth2's expiryDelta): it must still be valid when
	// the request that carries it arrives.
	DefaultExpiryLeeway = 10 * time.Second
	// DefaultFetchTimeout bounds one fetch.
	DefaultFetchTimeout = time.Minute
)

// RefreshOptions tune a [RefreshingSource]; nil means
// [DefaultRefreshOptions]. Fields are used as given; a nil Now or Logger
// takes its default.
type RefreshOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MinRetry is the least time between the starts of two fetches while a
	// valid token is cached (after a failure, or when a fetched token is
	// already due); 0: no spacing.
	MinRetry time.Duration
	// RefreshFraction is the part of the lifetime (from the fetch to
	// ExpiresOn) after which a token without RefreshAfter, or with one
	// outside its lifetime, is refreshed, in (0, 1]; anything else counts
	// as 1 (at its expiry).
	RefreshFraction float64
	// Jitter, if positive, moves each token's refresh earlier by a random
	// duration below Jitter, so that many consumers of one issuer do not
	// all ask at once (Vault's calculateGrace). The refresh never moves
	// before the fetch.
	Jitter time.Duration
	// ExpiryLeeway: a token with less than this left is treated as
	// expired; 0: none.
	ExpiryLeeway time.Duration
	// FetchTimeout bounds each fetch; 0: no bound (the fetch outlives its
	// caller's context: set one).
	FetchTimeout time.Duration
	// Logger receives a token_refresh_failed warning for each failed
	// fetch (never the token); nil means none.
	Logger *slog.Logger
}

// RefreshingSource returns a cached token and replaces it ahead of its
// RefreshAfter, in the background, from another [TokenSource]: the refresh
// logic of Azure ML's clients and azcore, in x/oauth2's
// ReuseTokenSourceWithExpiry shape. Create one with [NewRefreshingSource].
//
// It is safe for concurrent use, and it keeps these promises:
//   - One fetch at a time: concurrent callers share it.
//   - While the cached token is valid, Token returns it at once. Once the
//     token's refresh time has come (RefreshAfter, less any jitter), the
//     first call starts a fetch in the background and still returns the
//     cached token; so do the calls while the fetch runs.
//   - A failed fetch is retried by a later call, at least MinRetry after
//     the failed one began, while the still-valid token keeps being served.
//   - A token is never returned expired (or within ExpiryLeeway of it).
//     With none valid, Token waits for a fetch (the first call, or one after
//     the cached token expired) and returns its token, or its error wrapped
//     in [ErrNoValidToken]. Such waiting calls are not spaced by MinRetry:
//     nothing better can be served, and a recovered issuer is used at once.
//
// Fetches run with the context of the call that started them, stripped of
// its cancellation (context.WithoutCancel) and bounded by FetchTimeout: a
// caller that gives up does not fail the fetch the others wait for. A
// fetch goroutine starts only when a fetch is due and ends with it, so an
// idle RefreshingSource holds no goroutine and needs no Close.
type RefreshingSource struct {
	src  TokenSource
	opts RefreshOptions

	mu          sync.Mutex
	tok         *Token    // the newest fetched token, or nil
	refreshAt   time.Time // when tok is due for refresh
	lastAttempt time.Time // when the last fetch began
	lastErr     error     // the last fetch's error, nil after a success
	inflight    *fetchCall
}

var _ TokenSource = (*RefreshingSource)(nil)

// fetchCall is one fetch; done closes when it ends.
type fetchCall struct {
	done chan struct{}
	tok  *Token
	err  error
}

// NewRefreshingSource returns a [RefreshingSource] over src, which it
// calls for every new token (src need not be safe for concurrent use: it
// is called once at a time). opts may be nil.
func NewRefreshingSource(src TokenSource, opts *RefreshOptions) *RefreshingSource {
	o := DefaultRefreshOptions()
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshFraction <= 0 || o.RefreshFraction > 1 {
		o.RefreshFraction = 1
	}
	o.ExpiryLeeway = max(o.ExpiryLeeway, 0)
	return &RefreshingSource{src: src, opts: o}
}

// RefreshOptionsWith returns the defaults changed by edit: the way to set a
// few fields and keep the defaults of the others.
func RefreshOptionsWith(edit func(*RefreshOptions)) *RefreshOptions {
	o := DefaultRefreshOptions()
	edit(&o)
	return &o
}

// DefaultRefreshOptions returns the defaults: [DefaultMinRetry],
// [DefaultRefreshFraction], [DefaultExpiryLeeway], [DefaultFetchTimeout],
// no jitter.
func DefaultRefreshOptions() RefreshOptions {
	return RefreshOptions{MinRetry: DefaultMinRetry, RefreshFraction: DefaultRefreshFraction,
		ExpiryLeeway: DefaultExpiryLeeway, FetchTimeout: DefaultFetchTimeout}
}

// Token returns a valid token: the cached one, or, with none valid, a new
// one it waits for. It returns an error wrapping [ErrNoValidToken] when it
// has no valid token and the fetch failed or ctx ended first. The token
// returned is the caller's copy.
func (s *RefreshingSource) Token(ctx context.Context) (*Token, error) {
	now := s.opts.Now()
	s.mu.Lock()
	if s.usable(s.tok, now) {
		tok := *s.tok
		if !now.Before(s.refreshAt) && s.inflight == nil && !now.Before(s.lastAttempt.Add(s.opts.MinRetry)) {
			s.startLocked(ctx, now)
		}
		s.mu.Unlock()
		return &tok, nil
	}
	c := s.inflight
	if c == nil {
		c = s.startLocked(ctx, now)
	}
	s.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a token: %w", ErrNoValidToken, context.Cause(ctx))
	}
	if c.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoValidToken, c.err)
	}
	// The fetch checked its token against the clock when it ended.
	tok := *c.tok
	return &tok, nil
}

// usable reports whether tok can be served at now.
func (s *RefreshingSource) usable(tok *Token, now time.Time) bool {
	return tok != nil && tok.AccessToken != "" && now.Before(tok.ExpiresOn.Add(-s.opts.ExpiryLeeway))
}

// startLocked starts a fetch in a goroutine of its own; s.mu is held.
func (s *RefreshingSource) startLocked(ctx context.Context, now time.Time) *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	s.inflight, s.lastAttempt = c, now
	go s.fetch(context.WithoutCancel(ctx), c, now)
	return c
}

func (s *RefreshingSource) fetch(ctx context.Context, c *fetchCall, began time.Time) {
	if t := s.opts.FetchTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	tok, err := s.src.Token(ctx)
	now := s.opts.Now()
	if err == nil && !s.usable(tok, now) {
		err = errBadFetch
	}
	if err == nil {
		t := *tok
		tok = &t
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(c.done)
	s.inflight = nil
	if err != nil {
		c.err, s.lastErr = err, err
		if l := s.opts.Logger; l != nil {
			left := time.Duration(0)
			if s.usable(s.tok, now) {
				left = s.tok.ExpiresOn.Sub(now)
			}
			l.Warn("token_refresh_failed", "expiresIn", left.Round(time.Second).String(),
				"nextTryAfter", began.Add(s.opts.MinRetry).Sub(now).Round(time.Second).String(), "error", err.Error())
		}
		return
	}
	c.tok, s.tok, s.lastErr = tok, tok, nil
	s.refreshAt = s.refreshTime(tok, began)
}

// refreshTime is when tok, fetched from began, is due for refresh.
func (s *RefreshingSource) refreshTime(tok *Token, began time.Time) time.Time {
	at := tok.RefreshAfter
	if at.IsZero() || !at.Before(tok.ExpiresOn) {
		at = began.Add(time.Duration(float64(tok.ExpiresOn.Sub(began)) * s.opts.RefreshFraction))
	}
	if j := s.opts.Jitter; j > 0 {
		at = at.Add(-rand.N(j))
	}
	if at.Before(began) {
		at = began
	}
	return at
}

// LastError returns the error of the last fetch, or nil if it succeeded
// (or none ran): what a health check reports while the cached token is
// still served.
func (s *RefreshingSource) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}
