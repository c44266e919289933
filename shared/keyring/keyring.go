// Package keyring keeps the keys that callers present, as hashes, for the
// validators: each service's Primary and Secondary keys, its active copy,
// and the administrator key, read from the secret store. It writes no
// service key: keys missing at the first need are created by package
// rotation, through Options.Provision. The administrator key it creates
// itself.
//
// # Caching
//
// A validator trusts the keys it read for Options.TTL; after that the next
// request reads the store again. A key that matches nothing triggers one
// early re-read, at most once per Options.RefreshMinInterval for each set of
// keys, so a regenerated key works at once on every instance while guessing
// cannot hammer the store. When the store cannot be read, cached keys keep
// being served for Options.MaxStale past their TTL; after that the answer is
// [ErrUnavailable], never a wrong yes or no.
//
// A throttled store (Key Vault's 429) backs off every set of keys of the
// ring, and of every other cache sharing Options.Gate, for its Retry-After
// ([cache.Gate.Hold]); failures meanwhile carry the time left
// ([cache.HeldError]). A validation waits for a read at most
// Options.ReadTimeout; past it the read goes on in the background and the
// answer comes from the cached keys as above.
//
// # Errors
//
// Validate returns [ErrNoMatch] for a key that matches nothing and
// [ErrUnavailable] (wrapping the store's error) when the keys cannot be
// known. Errors never contain a key.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/modelauth/modelauth/shared/apikey"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Errors.
var (
	// ErrNoMatch: the presented key is not one of the keys.
	ErrNoMatch = errors.New("keyring: key does not match")
	// ErrUnavailable: the keys could not be read and no cached copy is
	// recent enough to serve.
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
	// and read timeout, as [cache.Bounds] documents them.
	cache.Bounds
	// Gate is the back-off shared by every cache over the store (one per
	// store on an instance; see [cache.Gate]). nil: the ring makes one
	// for its own sets of keys, over Bounds and
	// [secretstore.IsThrottled].
	Gate   *cache.Gate
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
	// Provision, if set, creates a service's missing key secrets and
	// converges its active copy ([rotation.Rotator.Provision]): the ring
	// writes no service key itself. It is called when a read finds a key
	// secret missing or the copy behind its key, and the keys are read
	// again after it. Without it, missing keys make the service's keys
	// unavailable.
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
// It is safe for concurrent use; Validate takes no lock when the cached keys
// are fresh.
type Ring struct {
	store *secretstore.Store
	opts  Options
	sets  map[string]*keySet // by service name; adminSetID for the admin key
}

const adminSetID = "\x00admin"

// New returns a Ring for the key-mode services named.
func New(store *secretstore.Store, services []string, opts *Options) *Ring {
	r := &Ring{store: store, sets: make(map[string]*keySet, len(services)+1), opts: DefaultOptions()}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.TTL <= 0 {
		r.opts.TTL = time.Nanosecond // every request reads the store
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
	for _, s := range services {
		r.sets[s] = r.newKeySet(s, s, []slot{
			{label: string(keysecret.Primary), secret: keysecret.KeySecret(s, keysecret.Primary), tags: keysecret.ServiceTags(s)},
			{label: string(keysecret.Secondary), secret: keysecret.KeySecret(s, keysecret.Secondary), tags: keysecret.ServiceTags(s)},
			{secret: keysecret.ActiveSecret(s), active: true}, // labelled by its slot tag
		})
	}
	r.sets[adminSetID] = r.newKeySet("admin", "", []slot{
		{label: "admin", secret: keysecret.AdminKeySecret, tags: keysecret.Managed(keysecret.KindAdminKey)},
	})
	return r
}

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

// EnsureAdminKey creates the administrator key if the store has none.
func (r *Ring) EnsureAdminKey(ctx context.Context) error {
	_, err := r.sets[adminSetID].reload(ctx)
	return err
}

// Get reads a service's keys from the store (not the cache), creating them
// if they do not exist yet, and refreshes the cache with them.
func (r *Ring) Get(ctx context.Context, service string) (Keys, error) {
	ks, ok := r.sets[service]
	if !ok || service == adminSetID {
		return Keys{}, ErrUnknownService
	}
	vals, err := ks.reload(ctx)
	if err != nil {
		return Keys{}, err
	}
	return keysOf(vals), nil
}

// keysOf is get_keys from a service's three reads: the active key is the
// active copy, the other key its slot's newest version.
func keysOf(vals []read) Keys {
	kt := keysecret.KeyTypeOfSlot(vals[2].tags)
	k := Keys{PrimaryKey: vals[0].value, SecondaryKey: vals[1].value, ActiveKeyType: kt}
	if kt == keysecret.Secondary {
		k.SecondaryKey = vals[2].value
	} else {
		k.PrimaryKey = vals[2].value
	}
	return k
}

// Replaced puts value in the cache as service's kt key at once, in place of
// the old one (which stops working on this instance), keeping the cached
// read's age: a regenerated key ([rotation.Rotator.Regenerate]).
func (r *Ring) Replaced(service string, kt keysecret.KeyType, value string) {
	if ks, ok := r.sets[service]; ok && service != adminSetID {
		ks.replace(string(kt), value)
	}
}

// InUse reports whether value is already the administrator key or one of
// any service's keys, as far as the cached keys tell.
func (r *Ring) InUse(ctx context.Context, value string) bool {
	for _, ks := range r.sets {
		if _, err := ks.match(ctx, value); err == nil {
			return true
		}
	}
	return false
}

type slot struct {
	label  string
	secret string
	tags   map[string]string
	// active marks a service's active copy, labelled with the key type its
	// slot tag names.
	active bool
}

// read is one slot's newest version as load read it.
type read struct {
	value string
	tags  map[string]string
}

// keySet is the cached hashes of one set of secrets.
type keySet struct {
	ring    *Ring
	id      string
	service string // "" for the administrator key
	slots   []slot

	cache *cache.Value[*snapshot]
}

// snapshot is one read of the set's secrets.
type snapshot struct {
	set  apikey.Set
	vals []read
}

func (r *Ring) newKeySet(id, service string, slots []slot) *keySet {
	ks := &keySet{ring: r, id: id, service: service, slots: slots}
	o := r.opts
	ks.cache = cache.New(ks.load, cache.Options[*snapshot]{
		Bounds: o.Bounds, Now: o.Now,
		// A throttled store backs off the whole instance (the Gate); other
		// failures this set alone, for RefreshMinInterval.
		Gate: o.Gate,
		OnStale: func(age time.Duration, err error) {
			o.Logger.Warn("key_store_unavailable", "keys", id, "cache_age", age.Round(time.Second).String(), "error", err.Error())
		},
	})
	return ks
}

// match returns the label of the key that key is. An unknown key reads the
// store again (at most once per RefreshMinInterval): the keys may have
// changed on another instance.
func (ks *keySet) match(ctx context.Context, key string) (string, error) {
	snap, err := ks.cache.Get(ctx)
	if err != nil {
		return "", unavailable(err)
	}
	if label, ok := snap.Value.set.Match(key); ok {
		return label, nil
	}
	if snap, err = ks.cache.Miss(ctx, snap); err != nil {
		return "", unavailable(err)
	}
	if label, ok := snap.Value.set.Match(key); ok {
		return label, nil
	}
	return "", ErrNoMatch
}

// unavailable is a failure of the cache as ErrUnavailable (a slow store's
// cache.ErrReadTimeout does not wrap it by itself).
func unavailable(err error) error {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDisabled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// reload reads the store now, whatever the cache holds, and returns the
// values read. A slot whose newest version is disabled gives ErrDisabled,
// after the cache was refreshed without it.
func (ks *keySet) reload(ctx context.Context) ([]read, error) {
	snap, err := ks.cache.Reload(ctx)
	if err != nil {
		return nil, err
	}
	vals := snap.Value.vals
	for i, v := range vals {
		if v.value == "" {
			return nil, fmt.Errorf("%w: %s", ErrDisabled, ks.slots[i].secret)
		}
	}
	return vals, nil
}

// load reads every slot's newest version. A slot whose newest version is
// disabled gets the value "" and accepts nothing. A service's missing key
// secrets, or an active copy behind its key, are handed to
// Options.Provision and read again; the administrator key is created here.
// The cache serialises calls.
func (ks *keySet) load(ctx context.Context) (*snapshot, error) {
	snap, provision, err := ks.read(ctx)
	if err != nil || !provision || ks.ring.opts.Provision == nil {
		if err == nil && snap == nil {
			err = fmt.Errorf("%w: the keys of %s do not exist", ErrUnavailable, ks.id)
		}
		return snap, err
	}
	// What Provision could not do (a disabled key it left alone, say)
	// matters only if the keys are still missing.
	perr := ks.ring.opts.Provision(ctx, ks.service)
	if snap, _, err = ks.read(ctx); err == nil && snap == nil {
		err = fmt.Errorf("%w: the keys of %s do not exist", ErrUnavailable, ks.id)
		if perr != nil {
			err = fmt.Errorf("%w: creating them: %w", err, perr)
		}
	}
	return snap, err
}

// read is one read of the set's secrets: nil and provision for a missing
// secret; a snapshot and provision for an active copy behind its key.
func (ks *keySet) read(ctx context.Context) (snap *snapshot, provision bool, err error) {
	vals := make([]read, len(ks.slots))
	var set apikey.Set
	disabled := map[string]bool{}
	missing := false
	for i, sl := range ks.slots {
		sec, err := ks.get(ctx, sl)
		switch {
		case errors.Is(err, ErrDisabled):
			disabled[sl.label] = true
			continue
		case errors.Is(err, errMissing):
			missing = true
			continue
		case err != nil:
			return nil, false, err
		}
		label := sl.label
		if sl.active {
			kt := keysecret.KeyTypeOfSlot(sec.Tags)
			label = string(kt)
			key := vals[0]
			if kt == keysecret.Secondary {
				key = vals[1]
			}
			provision = provision || keysecret.CopyLags(sec.Tags, sec.Value, key.tags, key.value)
			if disabled[label] {
				// An operator disabled that key: its copy goes with it.
				vals[i] = read{"", sec.Tags}
				continue
			}
		}
		vals[i] = read{sec.Value, sec.Tags}
		set = set.Add(label, sec.Value)
	}
	if missing {
		return nil, true, nil
	}
	return &snapshot{set: set, vals: vals}, provision, nil
}

// errMissing: a service's key secret does not exist.
var errMissing = errors.New("keyring: missing")

// replace puts value in the cache as the key of the slot labelled label,
// keeping the snapshot's age.
func (ks *keySet) replace(label, value string) {
	ks.cache.Update(func(cur *snapshot) *snapshot {
		return &snapshot{set: cur.set.Replace(label, value), vals: cur.vals}
	})
}

// get reads a slot's newest version: errMissing for a service's secret
// that does not exist, ErrDisabled for a disabled one. The administrator
// key is created when missing.
func (ks *keySet) get(ctx context.Context, sl slot) (secretstore.Secret, error) {
	store := ks.ring.store
	sec, err := store.GetSecret(ctx, sl.secret, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err == nil {
			return sec, nil
		}
	case secretstore.NotFound:
		if ks.service != "" {
			return sec, errMissing
		}
		v, gerr := apikey.Generate()
		if gerr != nil {
			return sec, gerr
		}
		if _, err := store.SetSecret(ctx, sl.secret, secretstore.SetParams{Value: v, Enabled: true, Tags: sl.tags}); err != nil {
			return sec, fmt.Errorf("%w: creating %s: %w", ErrUnavailable, sl.secret, err)
		}
		ks.ring.opts.Logger.Info("key_created", "secret", sl.secret)
		// Another instance may have created it at the same moment: the
		// newest version is the one every instance converges on.
		sec, err = store.GetSecret(ctx, sl.secret, "")
		if err == nil {
			return sec, nil
		}
	case secretstore.Disabled:
		return sec, fmt.Errorf("%w: %s", ErrDisabled, sl.secret)
	}
	return sec, fmt.Errorf("%w: %w", ErrUnavailable, err)
}
