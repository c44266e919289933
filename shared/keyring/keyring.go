// Package keyring checks the keys that callers present for the
// validators: each service's Primary and Secondary keys, its active copy,
// and the administrator key. It knows them from the change journal
// (package journal) as digests, never as values, and reads no secret to
// validate: every instance learns of every change for one vault read per
// slot, whatever the number of services (docs/design.md section 14). It
// writes no service key: keys missing at the first need are created by
// package rotation, through Options.Provision. The administrator key it
// creates itself.
//
// # Freshness
//
// A change made through the app is known on the instance that made it at
// once, and on every other instance that can read the vault within
// [journal.Journal.Bound] (two KEY_CACHE_TTL slots). A key that matches
// nothing makes the journal list its open slot, at most once per
// Options.RefreshMinInterval for the whole instance, so a regenerated key
// works everywhere at once while guessing cannot hammer the vault. While
// the vault cannot be read, what is known keeps being served for
// KEY_CACHE_MAX_STALENESS; after that the answer is [ErrUnavailable],
// never a wrong yes or no.
//
// # Errors
//
// Validate returns [ErrNoMatch] for a key that matches nothing and
// [ErrUnavailable] (wrapping the cause) when the keys cannot be known.
// Errors never contain a key.
package keyring

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelauth/modelauth/shared/apikey"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Errors.
var (
	// ErrNoMatch: the presented key is not one of the keys.
	ErrNoMatch = errors.New("keyring: key does not match")
	// ErrUnavailable: the keys could not be known.
	ErrUnavailable = errors.New("keyring: keys unavailable")
	// ErrUnknownService: the service is not one the ring was built for.
	ErrUnknownService = errors.New("keyring: unknown service")
	// ErrDisabled: the newest version of a key's secret is disabled.
	ErrDisabled = errors.New("keyring: the newest version of a key is disabled")
)

// Options tune a Ring. They are used as given: 0 means none, not a
// default (see [DefaultOptions]).
type Options struct {
	// Bounds are the key caches' TTL, refresh interval, staleness bound
	// and read timeout, as [cache.Bounds] documents them: the journal's,
	// when the ring makes its own.
	cache.Bounds
	// Journal is the instance's change journal over the store, whose
	// Hook the store carries. nil: the ring makes one over the store for
	// its own secrets, and sets the store's write hook to it.
	Journal *journal.Journal
	// Gate is the back-off shared by every reader of the store on an
	// instance ([cache.Gate]); get_keys honours it. nil: the ring makes
	// one over Bounds and [secretstore.IsThrottled].
	Gate   *cache.Gate
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
	// Provision, if set, creates a service's missing key secrets and
	// converges its active copy ([rotation.Rotator.Provision]): the ring
	// writes no service key itself. It is called (at most once per
	// RefreshMinInterval for a service) when the journal says a key
	// secret is missing or the copy is behind its key. Without it,
	// missing keys make the service's keys unavailable.
	Provision func(ctx context.Context, service string) error
}

// DefaultOptions returns the defaults: [cache.DefaultBounds].
func DefaultOptions() Options {
	return Options{Bounds: cache.DefaultBounds()}
}

// Keys is what get_keys returns.
type Keys struct {
	PrimaryKey    string            `json:"primaryKey"`
	SecondaryKey  string            `json:"secondaryKey"`
	ActiveKeyType keysecret.KeyType `json:"activeKeyType"`
}

// Ring holds the keys of a fixed set of services and the administrator key.
// It is safe for concurrent use; Validate takes no lock when the journal's
// view is fresh.
type Ring struct {
	store   *secretstore.Store
	journal *journal.Journal
	opts    Options
	sets    map[string]*keySet // by service name; adminSetID for the admin key
}

const adminSetID = "\x00admin"

// Secrets returns the names of the secrets a ring for services reads: what
// its journal must track.
func Secrets(services []string) []string {
	out := []string{keysecret.AdminKeySecret}
	for _, s := range services {
		out = append(out, keysecret.KeySecret(s, keysecret.Primary), keysecret.KeySecret(s, keysecret.Secondary), keysecret.ActiveSecret(s))
	}
	return out
}

// New returns a Ring for the key-mode services named.
func New(store *secretstore.Store, services []string, opts *Options) *Ring {
	r := &Ring{store: store, sets: make(map[string]*keySet, len(services)+1), opts: DefaultOptions()}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	if r.opts.Logger == nil {
		r.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if r.opts.Gate == nil {
		r.opts.Gate = cache.NewGate(r.opts.Bounds, secretstore.IsThrottled)
	}
	r.journal = r.opts.Journal
	if r.journal == nil {
		names := Secrets(services)
		jo := journal.DefaultOptions()
		jo.Bounds, jo.Gate, jo.Now, jo.Logger = r.opts.Bounds, r.opts.Gate, r.opts.Now, r.opts.Logger
		jo.Tracked = keysecret.Tracked
		jo.Names = func() []string { return names }
		r.journal = journal.New(store, &jo)
		store.OnWrite(r.journal.Hook)
	}
	for _, s := range services {
		r.sets[s] = &keySet{ring: r, id: s, service: s, slots: []slot{
			{label: string(keysecret.Primary), secret: keysecret.KeySecret(s, keysecret.Primary)},
			{label: string(keysecret.Secondary), secret: keysecret.KeySecret(s, keysecret.Secondary)},
			{secret: keysecret.ActiveSecret(s), active: true}, // labelled by its slot tag
		}}
	}
	r.sets[adminSetID] = &keySet{ring: r, id: "admin", slots: []slot{{label: "admin", secret: keysecret.AdminKeySecret}}}
	return r
}

// Journal returns the ring's change journal.
func (r *Ring) Journal() *journal.Journal { return r.journal }

// Validate checks a key presented for service and returns which key it is.
func (r *Ring) Validate(ctx context.Context, service, key string) (keysecret.KeyType, error) {
	sk, ok := r.Service(service)
	if !ok {
		return "", ErrUnknownService
	}
	return sk.Validate(ctx, key)
}

// ServiceKeys are one service's keys in a Ring.
type ServiceKeys struct{ ks *keySet }

// Service returns the keys of a service the ring was built for. Callers on a
// hot path look it up once and keep it.
func (r *Ring) Service(service string) (ServiceKeys, bool) {
	ks, ok := r.sets[service]
	if !ok || service == adminSetID {
		return ServiceKeys{}, false
	}
	return ServiceKeys{ks}, true
}

// Validate checks a presented key and returns which key it is.
func (k ServiceKeys) Validate(ctx context.Context, key string) (keysecret.KeyType, error) {
	label, err := k.ks.match(ctx, key)
	return keysecret.KeyType(label), err
}

// ValidateAdmin checks a presented administrator key.
func (r *Ring) ValidateAdmin(ctx context.Context, key string) error {
	_, err := r.sets[adminSetID].match(ctx, key)
	return err
}

// EnsureAdminKey creates the administrator key if the vault has none. The
// journal may not know yet of one created elsewhere: the vault itself is
// asked before a write, so that an instance never replaces it.
func (r *Ring) EnsureAdminKey(ctx context.Context) error {
	v, err := r.journal.View(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if _, s := v.Newest(keysecret.AdminKeySecret); s != journal.Missing {
		return nil
	}
	if d, err := r.opts.Gate.Closed(r.opts.Now()); d > 0 {
		return &cache.HeldError{Err: err, RetryAfter: d}
	}
	switch _, err := r.store.GetSecret(ctx, keysecret.AdminKeySecret, ""); secretstore.Code(err) {
	case secretstore.NotFound:
	case secretstore.Unknown, secretstore.Disabled:
		if err == nil || secretstore.Code(err) == secretstore.Disabled {
			// It exists: the journal learns of it with its record (or
			// the resync, for one written from outside the app).
			_, err = r.journal.Miss(ctx, v)
			return err
		}
		fallthrough
	default:
		r.opts.Gate.Failed(r.opts.Now(), err)
		return fmt.Errorf("%w: reading %s: %w", ErrUnavailable, keysecret.AdminKeySecret, err)
	}
	value, err := apikey.Generate()
	if err != nil {
		return err
	}
	if _, err := r.store.SetSecret(ctx, keysecret.AdminKeySecret, secretstore.SetParams{Value: value, Enabled: true, Tags: keysecret.Managed(keysecret.KindAdminKey)}); err != nil {
		return fmt.Errorf("%w: creating %s: %w", ErrUnavailable, keysecret.AdminKeySecret, err)
	}
	// Instances creating it at once converge on the newest version (the
	// journal resolves same-second versions with a read).
	r.opts.Logger.Info("key_created", "secret", keysecret.AdminKeySecret)
	return nil
}

// Get reads a service's keys from the store (not the journal: get_keys
// returns values), creating them if they do not exist yet.
func (r *Ring) Get(ctx context.Context, service string) (Keys, error) {
	ks, ok := r.sets[service]
	if !ok || service == adminSetID {
		return Keys{}, ErrUnknownService
	}
	if d, err := r.opts.Gate.Closed(r.opts.Now()); d > 0 {
		return Keys{}, &cache.HeldError{Err: err, RetryAfter: d}
	}
	vals, err := ks.readValues(ctx)
	if errors.Is(err, errMissing) && r.opts.Provision != nil {
		if perr := r.opts.Provision(ctx, service); perr != nil {
			return Keys{}, fmt.Errorf("%w: creating the keys of %s: %w", ErrUnavailable, service, perr)
		}
		vals, err = ks.readValues(ctx)
	}
	if err != nil {
		return Keys{}, err
	}
	kt := keysecret.KeyTypeOfSlot(vals[2].Tags)
	k := Keys{PrimaryKey: vals[0].Value, SecondaryKey: vals[1].Value, ActiveKeyType: kt}
	if kt == keysecret.Secondary {
		k.SecondaryKey = vals[2].Value
	} else {
		k.PrimaryKey = vals[2].Value
	}
	return k, nil
}

// InUse reports whether value is already the administrator key or one of
// any service's keys, as far as this instance knows.
func (r *Ring) InUse(ctx context.Context, value string) bool {
	v, err := r.journal.View(ctx)
	if err != nil {
		return false
	}
	for _, ks := range r.sets {
		if _, ok := ks.derived(v).set.Match(value); ok {
			return true
		}
	}
	return false
}

type slot struct {
	label  string
	secret string
	// active marks a service's active copy, labelled with the key type its
	// slot tag names.
	active bool
}

// keySet is one set of secrets: a service's keys, or the administrator
// key.
type keySet struct {
	ring    *Ring
	id      string
	service string // "" for the administrator key
	slots   []slot

	cur atomic.Pointer[derived] // from the last view seen

	provMu        sync.Mutex
	lastProvision time.Time
}

// derived is what one view of the journal says of a set's keys.
type derived struct {
	view *journal.View
	// from are the entries it was made of: a later view with the same
	// ones says the same.
	from [3]fingerprint
	set  apikey.DigestSet
	// missing: a key secret does not exist; lags: the active copy is
	// behind its key (see keysecret.CopyLags).
	missing, lags bool
}

// derived returns what v says of the set, reusing the last result for the
// same view.
func (ks *keySet) derived(v *journal.View) *derived {
	prev := ks.cur.Load()
	if prev != nil && prev.view == v {
		return prev
	}
	var from [3]fingerprint
	for i, sl := range ks.slots {
		from[i] = fingerprintOf(v.Newest(sl.secret))
	}
	if prev != nil && prev.from == from {
		d := *prev
		d.view = v
		ks.cur.Store(&d)
		return &d
	}
	d := &derived{view: v, from: from}
	var entries [3]journal.Entry
	disabled := map[string]bool{}
	for i, sl := range ks.slots {
		e, status := v.Newest(sl.secret)
		switch {
		case status == journal.Missing:
			d.missing = true
			continue
		case status == journal.Unreadable || !e.Enabled:
			disabled[sl.label] = true
			continue
		}
		label := sl.label
		if sl.active {
			kt := keysecret.KeyTypeOfSlot(e.Tags)
			label = string(kt)
			key := entries[0]
			if kt == keysecret.Secondary {
				key = entries[1]
			}
			// Digests under one journal key are equal exactly when the
			// values are.
			if key.KeyVersion == e.KeyVersion {
				d.lags = keysecret.CopyLags(e.Tags, e.Digest, key.Tags, key.Digest)
			}
			if disabled[label] {
				continue // an operator disabled that key: its copy goes with it
			}
		}
		entries[i] = e
		k, ok := v.Key(e.KeyVersion)
		digest, err := base64.RawURLEncoding.DecodeString(e.Digest)
		if !ok || err != nil || len(digest) != len(apikey.Hash{}) {
			ks.ring.opts.Logger.Warn("key_digest_unusable", "secret", sl.secret, "version", e.Version)
			continue
		}
		d.set = d.set.Add(label, k, apikey.Hash(digest))
	}
	ks.cur.Store(d)
	return d
}

// fingerprint identifies what a view says of a secret's newest version:
// all that derived reads of it.
type fingerprint struct {
	status                           journal.Status
	version                          string
	enabled                          bool
	digest, keyVersion               string
	slot, state, activated, rotation string
}

func fingerprintOf(e journal.Entry, s journal.Status) fingerprint {
	t := e.Tags
	return fingerprint{s, e.Version, e.Enabled, e.Digest, e.KeyVersion,
		t[keysecret.TagSlot], t[keysecret.TagState], t[keysecret.TagActivated], t[keysecret.TagRotation]}
}

// match returns the label of the key that key is. An unknown key makes
// the journal list its open slot (at most once per RefreshMinInterval for
// the instance): the keys may have changed on another instance.
func (ks *keySet) match(ctx context.Context, key string) (string, error) {
	v, err := ks.ring.journal.View(ctx)
	if err != nil {
		return "", unavailable(err)
	}
	d := ks.derived(v)
	if d.missing || d.lags {
		if d, err = ks.provision(ctx, d); err != nil {
			return "", err
		}
	}
	if label, ok := d.set.Match(key); ok {
		return label, nil
	}
	if v2, err := ks.ring.journal.Miss(ctx, d.view); err == nil && v2 != d.view {
		if label, ok := ks.derived(v2).set.Match(key); ok {
			return label, nil
		}
	}
	return "", ErrNoMatch
}

// provision asks for missing keys (and a lagging copy) to be written, at
// most once per RefreshMinInterval for the set, and returns what the
// journal says after it.
func (ks *keySet) provision(ctx context.Context, d *derived) (*derived, error) {
	r := ks.ring
	now := r.opts.Now()
	if hold, err := r.opts.Gate.Closed(now); hold > 0 {
		if d.missing {
			return nil, &cache.HeldError{Err: fmt.Errorf("%w: the keys of %s are not known: %w", ErrUnavailable, ks.id, err), RetryAfter: hold}
		}
		return d, nil // a lagging copy waits for the store
	}
	ks.provMu.Lock()
	due := ks.lastProvision.IsZero() || now.Sub(ks.lastProvision) >= r.opts.RefreshMinInterval
	if due {
		ks.lastProvision = now
	}
	ks.provMu.Unlock()
	if due {
		// A validation waits for the store at most ReadTimeout.
		pctx := ctx
		if t := r.opts.ReadTimeout; t > 0 {
			var cancel context.CancelFunc
			pctx, cancel = context.WithTimeout(ctx, t)
			defer cancel()
		}
		var err error
		switch {
		case ks.service == "":
			err = r.EnsureAdminKey(pctx)
		case r.opts.Provision != nil:
			err = r.opts.Provision(pctx, ks.service)
		}
		if err != nil {
			r.opts.Logger.Warn("key_provision_failed", "keys", ks.id, "error", err.Error())
		}
	}
	v := r.journal.Peek()
	if v == nil {
		return d, nil
	}
	d = ks.derived(v)
	if d.missing {
		// Created elsewhere (Provision found them and wrote nothing):
		// their records are in the slots this instance has not listed.
		if v2, err := r.journal.Miss(ctx, v); err == nil {
			d = ks.derived(v2)
		}
	}
	if d.missing {
		return nil, fmt.Errorf("%w: the keys of %s do not exist", ErrUnavailable, ks.id)
	}
	return d, nil
}

// unavailable is a failure to know the keys as ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDisabled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// errMissing: a service's key secret does not exist.
var errMissing = errors.New("keyring: missing")

// readValues reads the set's secrets' newest versions from the store:
// errMissing for a missing one, ErrDisabled for a disabled one.
func (ks *keySet) readValues(ctx context.Context) ([]secretstore.Secret, error) {
	out := make([]secretstore.Secret, len(ks.slots))
	for i, sl := range ks.slots {
		sec, err := ks.ring.store.GetSecret(ctx, sl.secret, "")
		switch secretstore.Code(err) {
		case secretstore.Unknown:
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			out[i] = sec
		case secretstore.NotFound:
			return nil, errMissing
		case secretstore.Disabled:
			return nil, fmt.Errorf("%w: %s", ErrDisabled, sl.secret)
		default:
			ks.ring.opts.Gate.Failed(ks.ring.opts.Now(), err)
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return out, nil
}
