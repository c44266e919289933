// Package keyring keeps the keys that callers present, as hashes, for the
// validators: each service's Primary and Secondary keys and the
// administrator key, read from the secret store and created there on first
// need.
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
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/apikey"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// KeyType names one of a service's two keys.
type KeyType string

// Key types, spelled as Azure ML spells them.
const (
	Primary   KeyType = "Primary"
	Secondary KeyType = "Secondary"
)

// ParseKeyType accepts "Primary" or "Secondary" in any case.
func ParseKeyType(s string) (KeyType, bool) {
	switch {
	case strings.EqualFold(s, string(Primary)):
		return Primary, true
	case strings.EqualFold(s, string(Secondary)):
		return Secondary, true
	}
	return "", false
}

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
	// ErrKeyInUse: a user-supplied key is already some key (of any service,
	// or the administrator key).
	ErrKeyInUse = errors.New("keyring: that key value is already in use")
	// ErrWritten: the new key was written, and took effect on this instance,
	// but the keys could not be read back.
	ErrWritten = errors.New("keyring: key written, but the keys could not be read back")
)

// Secret names of design.md section 4.
const AdminKeySecret = "admin-key"

// ActiveSecret returns the name of the secret holding a copy of a service's
// active key: what clients read. Its tag "slot" names the key it copies.
func ActiveSecret(service string) string { return "svc-" + service + "-active" }

// Tags on key secrets (design.md section 4).
const (
	TagState     = "state"     // "current" or "staged"
	TagRotation  = "rotation"  // the id of the rotation that staged a version
	TagActivated = "activated" // Unix seconds when a version became current
	TagSlot      = "slot"      // on the active copy: "primary" or "secondary"
	StateCurrent = "current"
	StateStaged  = "staged"
)

// ServiceTags returns the tags of a new current version of a service key.
func ServiceTags(service string) map[string]string {
	return map[string]string{"managed-by": "modelauth", "kind": "service-key", "service": service, TagState: StateCurrent}
}

// ActiveTags returns the tags of the active copy of kt's key.
func ActiveTags(service string, kt KeyType) map[string]string {
	return map[string]string{"managed-by": "modelauth", "kind": "active-key", "service": service, TagSlot: strings.ToLower(string(kt))}
}

// KeyTypeOfSlot reads an active copy's slot tag.
func KeyTypeOfSlot(tags map[string]string) KeyType {
	if strings.EqualFold(tags[TagSlot], string(Secondary)) {
		return Secondary
	}
	return Primary
}

// KeySecret returns the secret name of one of a service's keys.
func KeySecret(service string, kt KeyType) string {
	if kt == Secondary {
		return "svc-" + service + "-secondary"
	}
	return "svc-" + service + "-primary"
}

// Options tune a Ring. They are used as given: 0 means none, not a
// default (see [DefaultOptions]).
type Options struct {
	TTL                time.Duration    // how long read keys are trusted; at least 1ns
	RefreshMinInterval time.Duration    // least time between refreshes on unknown keys, and after a failure
	MaxStale           time.Duration    // how long past the TTL cached keys serve while the store fails
	Now                func() time.Time // nil: time.Now
	Logger             *slog.Logger     // nil: discard
	// Expiry, if set, gives the exp of a service key version whose period
	// counts from since: its due time plus 30 days, so that Key Vault's
	// SecretNearExpiry arrives when the rotation is due.
	Expiry func(service string, since time.Time) time.Time
}

// DefaultOptions returns the defaults: TTL 30s, RefreshMinInterval 1s,
// MaxStale 5m.
func DefaultOptions() Options {
	return Options{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute}
}

// Keys is what get_keys returns.
type Keys struct {
	PrimaryKey    string  `json:"primaryKey"`
	SecondaryKey  string  `json:"secondaryKey"`
	ActiveKeyType KeyType `json:"activeKeyType"`
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
	for _, s := range services {
		r.sets[s] = r.newKeySet(s, s, []slot{
			{label: string(Primary), secret: KeySecret(s, Primary), tags: ServiceTags(s)},
			{label: string(Secondary), secret: KeySecret(s, Secondary), tags: ServiceTags(s)},
			{secret: ActiveSecret(s), active: true}, // labelled by its slot tag
		})
	}
	r.sets[adminSetID] = r.newKeySet("admin", "", []slot{
		{label: "admin", secret: AdminKeySecret, tags: map[string]string{"managed-by": "modelauth", "kind": "admin-key"}},
	})
	return r
}

// Validate checks a key presented for service and returns which key it is.
func (r *Ring) Validate(ctx context.Context, service, key string) (KeyType, error) {
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
func (k ServiceKeys) Validate(ctx context.Context, key string) (KeyType, error) {
	label, err := k.ks.match(ctx, key)
	return KeyType(label), err
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
	kt := KeyTypeOfSlot(vals[2].tags)
	k := Keys{PrimaryKey: vals[0].value, SecondaryKey: vals[1].value, ActiveKeyType: kt}
	if kt == Secondary {
		k.SecondaryKey = vals[2].value
	} else {
		k.PrimaryKey = vals[2].value
	}
	return k
}

// Regenerate replaces one of a service's keys with value, or with a new
// random key when value is "". The old value stops working on this instance
// at once and on others within the TTL. It returns the keys as the store
// has them afterwards.
func (r *Ring) Regenerate(ctx context.Context, service string, kt KeyType, value string) (Keys, error) {
	ks, ok := r.sets[service]
	if !ok || service == adminSetID {
		return Keys{}, ErrUnknownService
	}
	if value == "" {
		var err error
		if value, err = apikey.Generate(); err != nil {
			return Keys{}, err
		}
	} else if err := apikey.Check(value); err != nil {
		return Keys{}, err
	} else if r.inUse(ctx, value) {
		return Keys{}, ErrKeyInUse
	}
	i := 0
	if kt == Secondary {
		i = 1
	}
	sl := ks.slots[i]
	// The new version keeps the slot's place in rotation: current, with
	// the same activation time.
	tags := maps.Clone(sl.tags)
	versions, err := r.store.ListVersions(ctx, sl.secret)
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return Keys{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, v := range versions { // newest first: the slot's current version
		if v.Tags[TagState] == StateStaged {
			continue
		}
		if a := v.Tags[TagActivated]; a != "" {
			tags[TagActivated] = a
		}
		break
	}
	since := r.opts.Now()
	if a, err := strconv.ParseInt(tags[TagActivated], 10, 64); err == nil {
		since = time.Unix(a, 0)
	}
	if _, err := r.store.SetSecret(ctx, sl.secret, secretstore.SetParams{
		Value: value, Enabled: true, Tags: tags, Expires: r.expiry(service, sl, since),
	}); err != nil {
		return Keys{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The old value stops working here at once, even if a write or the
	// read below fails (the active copy of it too: same label).
	ks.replace(sl.label, value)
	// Read the copy after the write: a rotation activating this key at the
	// same moment has then either written the copy already (and it is
	// fixed here) or will see this write above its value and stand down.
	active, err := r.store.GetSecret(ctx, ActiveSecret(service), "")
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return Keys{}, fmt.Errorf("%w: reading %s: %w", ErrWritten, ActiveSecret(service), err)
	}
	if err == nil && KeyTypeOfSlot(active.Tags) == kt {
		// Replacing the active key: its copy must follow, or validators
		// would keep accepting the old value through it.
		copyTags := ActiveTags(service, kt)
		if a := tags[TagActivated]; a != "" {
			copyTags[TagActivated] = a
		}
		if _, err := r.store.SetSecret(ctx, ActiveSecret(service), secretstore.SetParams{
			Value: value, Enabled: true, Tags: copyTags,
		}); err != nil {
			return Keys{}, fmt.Errorf("%w: updating %s: %w", ErrWritten, ActiveSecret(service), err)
		}
	}
	keys, err := r.Get(ctx, service)
	if err != nil {
		return Keys{}, fmt.Errorf("%w: %w", ErrWritten, err)
	}
	return keys, nil
}

// expiry is the exp of a new version of sl whose period counts from since;
// nil for the active copy, the administrator key, or without Options.Expiry.
func (r *Ring) expiry(service string, sl slot, since time.Time) *time.Time {
	if r.opts.Expiry == nil || sl.active || service == "" {
		return nil
	}
	e := r.opts.Expiry(service, since)
	return &e
}

// inUse reports whether value is already the administrator key or one of
// any service's keys, as far as the cached keys tell.
func (r *Ring) inUse(ctx context.Context, value string) bool {
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
	// active marks a service's active copy: created from the Primary,
	// labelled with the key type its slot tag names.
	active  bool
	initial string // the value to create the secret with; "" for a new key
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
		TTL: o.TTL, RefreshMinInterval: o.RefreshMinInterval, MaxStale: o.MaxStale, Now: o.Now,
		// A throttled store's Retry-After, capped at the TTL: a long one
		// must not keep a recovered store unread past the staleness bound.
		Backoff: func(err error) time.Duration { return secretstore.Backoff(err, o.RefreshMinInterval, o.TTL) },
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
		return "", err
	}
	if label, ok := snap.Value.set.Match(key); ok {
		return label, nil
	}
	if snap, err = ks.cache.Miss(ctx, snap); err != nil {
		return "", err
	}
	if label, ok := snap.Value.set.Match(key); ok {
		return label, nil
	}
	return "", ErrNoMatch
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

// load reads every slot's newest version, creating missing secrets. A slot
// whose newest version is disabled gets the value "" and accepts nothing.
// The cache serialises calls.
func (ks *keySet) load(ctx context.Context) (*snapshot, error) {
	vals := make([]read, len(ks.slots))
	var set apikey.Set
	disabled := map[string]bool{}
	for i, sl := range ks.slots {
		if sl.active {
			// Created, when missing, as a copy of the Primary.
			sl.tags = ActiveTags(ks.service, Primary)
			sl.initial = vals[0].value
		}
		sec, err := ks.readOrCreate(ctx, sl)
		switch {
		case errors.Is(err, ErrDisabled):
			disabled[sl.label] = true
			continue
		case err != nil:
			return nil, err
		}
		label := sl.label
		if sl.active {
			label = string(KeyTypeOfSlot(sec.Tags))
			if sec, err = ks.converge(ctx, sec, vals); err != nil {
				return nil, err
			}
			if disabled[label] {
				// An operator disabled that key: its copy goes with it.
				vals[i] = read{"", sec.Tags}
				continue
			}
		}
		vals[i] = read{sec.Value, sec.Tags}
		set = set.Add(label, sec.Value)
	}
	return &snapshot{set: set, vals: vals}, nil
}

// converge settles a race between instances creating a service's first
// keys: until the first rotation, the active copy must hold its key's
// newest version, the one every instance converges on. After a rotation the
// copy is the rotation's to move (shared/rotation). vals holds the keys
// just read.
func (ks *keySet) converge(ctx context.Context, copySec secretstore.Secret, vals []read) (secretstore.Secret, error) {
	if copySec.Tags[TagActivated] != "" || copySec.Tags[TagRotation] != "" {
		return copySec, nil
	}
	kt := KeyTypeOfSlot(copySec.Tags)
	key := vals[0]
	if kt == Secondary {
		key = vals[1]
	}
	if key.value == "" || key.value == copySec.Value || key.tags[TagActivated] != "" || key.tags[TagState] == StateStaged {
		return copySec, nil
	}
	if _, err := ks.ring.store.SetSecret(ctx, ActiveSecret(ks.service), secretstore.SetParams{
		Value: key.value, Enabled: true, Tags: ActiveTags(ks.service, kt),
	}); err != nil {
		return copySec, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	copySec.Value = key.value
	return copySec, nil
}

// replace puts value in the cache as the key of the slot labelled label,
// keeping the snapshot's age.
func (ks *keySet) replace(label, value string) {
	ks.cache.Update(func(cur *snapshot) *snapshot {
		return &snapshot{set: cur.set.Replace(label, value), vals: cur.vals}
	})
}

func (ks *keySet) readOrCreate(ctx context.Context, sl slot) (secretstore.Secret, error) {
	store := ks.ring.store
	sec, err := store.GetSecret(ctx, sl.secret, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err == nil {
			return sec, nil
		}
	case secretstore.NotFound:
		v := sl.initial
		if v == "" {
			var gerr error
			if v, gerr = apikey.Generate(); gerr != nil {
				return sec, gerr
			}
		}
		if _, err := store.SetSecret(ctx, sl.secret, secretstore.SetParams{
			Value: v, Enabled: true, Tags: sl.tags, Expires: ks.ring.expiry(ks.service, sl, ks.ring.opts.Now()),
		}); err != nil {
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
