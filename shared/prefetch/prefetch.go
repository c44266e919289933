// Package prefetch keeps consumers' tokens fresh in the secret store, ahead
// of their refreshAfter: what the prefetchtokens timer function runs.
//
// Each consumer's token is the secret tok-<consumer>: the raw token as the
// value, content type application/jwt, the token's exp as the secret's
// expiry, and tags refreshAfter and expiryOn (Unix seconds). Consumers read
// it (client.NewStoreSource, or a Key Vault reference) instead of asking
// the issuer themselves.
//
// A run replaces a token that is missing, expired, or within the lead of
// its refreshAfter, minus a per-consumer jitter so that consumers written
// at once do not all come due on the same tick. A failure keeps the stored
// token (it stays valid until its exp: that margin is what carries
// consumers through an issuer outage), is logged as prefetch_failed with
// the time the stored token has left, and is tried again on the next run;
// when the stored token will be expired by then, an error-level
// token_expiring event says so.
//
// # Errors
//
// Run returns the failures of all consumers joined; each names its
// consumer and never contains a token.
package prefetch

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// ErrFailed is wrapped by every failure of a consumer's prefetch.
var ErrFailed = errors.New("prefetch failed")

// Consumer is one token to keep fresh.
type Consumer struct {
	Name string
	// Service is the service the tokens are for, for the secret's tags
	// ("" when the source is not a modelauth app).
	Service string
	Source  client.TokenSource
}

// Options tune a [Prefetcher]; nil means [DefaultOptions]. Fields are used
// as given; a nil Now or Logger takes its default.
type Options struct {
	// Lead is how long before refreshAfter a token is replaced; 0: at
	// refreshAfter.
	Lead time.Duration
	// Period is the time to the next run: a stored token that expires
	// before it gets the token_expiring event; 0: only one already
	// expired.
	Period time.Duration
	// FetchTimeout bounds one fetch; 0: only the run's context does.
	FetchTimeout time.Duration
	Now          func() time.Time // nil: time.Now
	Logger       *slog.Logger     // nil: discard
}

// Defaults.
const (
	// DefaultPeriod is the period of the default schedule, every 5 minutes.
	DefaultPeriod       = 5 * time.Minute
	DefaultFetchTimeout = 30 * time.Second
)

// LeadFor is the default lead for runs period apart: two periods, and at
// least 5 minutes, so that a failed run has a second chance before
// refreshAfter.
func LeadFor(period time.Duration) time.Duration { return max(2*period, 5*time.Minute) }

// DefaultOptions returns the defaults: Period [DefaultPeriod], Lead
// LeadFor(DefaultPeriod), FetchTimeout [DefaultFetchTimeout].
func DefaultOptions() Options {
	return Options{Lead: LeadFor(DefaultPeriod), Period: DefaultPeriod, FetchTimeout: DefaultFetchTimeout}
}

// Prefetcher refreshes a fixed set of consumers' tokens. It is safe for
// concurrent use, though runs are meant to come one at a time from a timer.
type Prefetcher struct {
	store     *secretstore.Store
	consumers []Consumer
	opts      Options
}

// New returns a Prefetcher writing to store.
func New(store *secretstore.Store, consumers []Consumer, opts *Options) *Prefetcher {
	p := &Prefetcher{store: store, consumers: consumers, opts: DefaultOptions()}
	if opts != nil {
		p.opts = *opts
	}

	if p.opts.Now == nil {
		p.opts.Now = time.Now
	}
	if p.opts.Logger == nil {
		p.opts.Logger = slog.New(slog.DiscardHandler)
	}
	return p
}

// Outcome is what a run did for one consumer.
type Outcome string

// Outcomes.
const (
	// Fetched: a new token was written.
	Fetched Outcome = "fetched"
	// Fresh: the stored token is not due yet.
	Fresh Outcome = "fresh"
)

// Result is one consumer's outcome.
type Result struct {
	Consumer string
	Outcome  Outcome
	// ExpiresOn and RefreshAfter are the stored token's after the run.
	ExpiresOn, RefreshAfter time.Time
}

// Run refreshes every consumer that is due, all at once, and returns what
// it did for each (failed ones left out) and the failures joined.
func (p *Prefetcher) Run(ctx context.Context) ([]Result, error) {
	var (
		mu   sync.Mutex
		res  []Result
		errs []error
		wg   sync.WaitGroup
	)
	for _, c := range p.consumers {
		wg.Go(func() {
			r, err := p.RunOne(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			res = append(res, r)
		})
	}
	wg.Wait()
	return res, errors.Join(errs...)
}

// Jitter returns how much earlier than the lead the named consumer comes
// due: a fixed part of span from a hash of the name, so that consumers
// spread over the runs and each always gets the same. Give a span of
// several timer periods for the spread to cross runs.
func Jitter(name string, span time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(name))
	if span <= 0 {
		return 0
	}
	return time.Duration(h.Sum64() % uint64(span))
}

// jitterSpan is the range of the consumers' jitter: half the lead, but at
// least four timer periods, so that consumers written on one run come due
// on different runs.
func (p *Prefetcher) jitterSpan() time.Duration {
	return max(p.opts.Lead/2, 4*p.opts.Period)
}

// Due reports whether a stored token (nil when there is none) must be
// replaced at now: it is missing or expired, or its refreshAfter is within
// lead plus jitter.
func Due(stored *client.Token, now time.Time, lead, jitter time.Duration) bool {
	if !stored.Valid(now) {
		return true
	}
	return !now.Before(stored.RefreshAfter.Add(-lead - jitter))
}

// RunOne refreshes one consumer's token if it is due.
func (p *Prefetcher) RunOne(ctx context.Context, c Consumer) (Result, error) {
	now := p.opts.Now()
	stored, err := p.read(ctx, c.Name)
	if err != nil {
		p.opts.Logger.Error("prefetch_failed", "consumer", c.Name, "stage", "read", "error", err.Error())
		return Result{}, fmt.Errorf("%w: %s: reading the stored token: %w", ErrFailed, c.Name, err)
	}
	if !Due(stored, now, p.opts.Lead, Jitter(c.Name, p.jitterSpan())) {
		return Result{Consumer: c.Name, Outcome: Fresh, ExpiresOn: stored.ExpiresOn, RefreshAfter: stored.RefreshAfter}, nil
	}
	tok, err := p.fetch(ctx, c)
	if err == nil {
		err = p.write(ctx, c, tok)
	}
	if err != nil {
		p.failed(c, stored, now, err)
		return Result{}, fmt.Errorf("%w: %s: %w", ErrFailed, c.Name, err)
	}
	p.opts.Logger.Info("token_prefetched", "consumer", c.Name, "service", c.Service,
		"expiryOn", tok.ExpiresOn.Unix(), "refreshAfter", tok.RefreshAfter.Unix())
	return Result{Consumer: c.Name, Outcome: Fetched, ExpiresOn: tok.ExpiresOn, RefreshAfter: tok.RefreshAfter}, nil
}

func (p *Prefetcher) fetch(ctx context.Context, c Consumer) (*client.Token, error) {
	if t := p.opts.FetchTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	tok, err := c.Source.Token(ctx)
	if err != nil {
		return nil, err
	}
	now := p.opts.Now()
	switch {
	case !tok.Valid(now):
		return nil, errors.New("the source answered an expired token")
	case tok.RefreshAfter.Unix() <= 0 || tok.RefreshAfter.After(tok.ExpiresOn):
		tok.RefreshAfter = now.Add(tok.ExpiresOn.Sub(now) / 2)
	}
	return tok, nil
}

// failed logs a failure with the time the stored token has left, and an
// error-level token_expiring when it will be expired by the next run.
func (p *Prefetcher) failed(c Consumer, stored *client.Token, now time.Time, err error) {
	left := time.Duration(0)
	if stored.Valid(now) {
		left = stored.ExpiresOn.Sub(now)
	}
	p.opts.Logger.Warn("prefetch_failed", "consumer", c.Name, "service", c.Service,
		"expiresIn", left.Round(time.Second).String(), "error", err.Error())
	if left < p.opts.Period {
		p.opts.Logger.Error("token_expiring", "consumer", c.Name, "service", c.Service,
			"expiresIn", left.Round(time.Second).String(), "nextAttemptIn", p.opts.Period.String())
	}
}

// read returns the stored token, or nil when there is none usable.
func (p *Prefetcher) read(ctx context.Context, name string) (*client.Token, error) {
	sec, err := p.store.GetSecret(ctx, client.TokenSecret(name), "")
	switch code := secretstore.Code(err); {
	case err == nil:
	case code == secretstore.NotFound || code == secretstore.Disabled:
		return nil, nil
	default:
		return nil, err
	}
	tok, err := client.StoredToken(sec)
	if err != nil {
		p.opts.Logger.Warn("prefetch_stored_token_unreadable", "consumer", name, "error", err.Error())
		return nil, nil // replaced by this run
	}
	return tok, nil
}

func (p *Prefetcher) write(ctx context.Context, c Consumer, tok *client.Token) error {
	exp := tok.ExpiresOn
	tags := keysecret.Managed(keysecret.KindToken)
	tags[keysecret.TagRefreshAfter] = strconv.FormatInt(tok.RefreshAfter.Unix(), 10)
	tags[keysecret.TagExpiryOn] = strconv.FormatInt(tok.ExpiresOn.Unix(), 10)
	if c.Service != "" {
		tags[keysecret.TagService] = c.Service
	}
	_, err := p.store.SetSecret(ctx, keysecret.TokenSecret(c.Name), secretstore.SetParams{
		Value: tok.AccessToken, ContentType: keysecret.TokenContentType, Enabled: true, Expires: &exp, Tags: tags,
	})
	if err != nil {
		return fmt.Errorf("writing the token: %w", err)
	}
	return nil
}
