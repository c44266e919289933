package signingkey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// SecretName is the secret whose versions are the signing keys.
const SecretName = keysecret.SigningKeySecret

// Algorithms.
const (
	RS256 = "RS256" // RSA 2048, PKCS #1 v1.5 with SHA-256
	ES256 = "ES256" // ECDSA P-256 with SHA-256
)

// JWKSMaxAge is the Cache-Control max-age of the served JWKS.
const JWKSMaxAge = time.Hour

// Tag names and values on signing-key versions.
const (
	TagKid       = keysecret.TagKid
	TagAlg       = keysecret.TagAlg
	TagActivated = keysecret.TagActivated
	TagState     = keysecret.TagState
	kindValue    = keysecret.KindSigningKey
)

// Errors.
var (
	// ErrNoSigner: no key signs (every key was revoked, and no new one
	// could be written).
	ErrNoSigner = errors.New("signingkey: no key signs")
	// ErrUnknownKey: the kid is not among the published keys.
	ErrUnknownKey = errors.New("signingkey: unknown key")
	// ErrKeyFormat: a stored version is not a key this package wrote.
	ErrKeyFormat = errors.New("signingkey: malformed stored key")
)

// kidRE is the form of the kids this package writes (RFC 7638 thumbprints);
// a token's kid is compared with it before any lookup.
var kidRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// ValidKid reports whether kid has the form of the kids this package
// writes: anything else (a path, a URL) is refused before any lookup.
func ValidKid(kid string) bool { return kidRE.MatchString(kid) }

// Key is one signing key.
type Key struct {
	Kid       string
	Alg       string
	Public    crypto.PublicKey
	Activated time.Time
	// signer is the private key, kept in memory to sign.
	signer crypto.Signer
}

// Signer returns the private key, for signing tokens.
func (k *Key) Signer() crypto.Signer { return k.signer }

// Options tune a [Set]; nil means [DefaultOptions]. Fields are used as
// given; a nil Now or Logger takes its default.
type Options struct {
	// Bounds are the cache's, as the service keys' ([cache.Bounds]).
	cache.Bounds
	// Gate is the back-off shared by every cache over the store (one per
	// store on an instance, the service keys' too; see [cache.Gate]).
	// nil: the set makes its own, over Bounds and
	// [secretstore.IsThrottled].
	Gate   *cache.Gate
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
}

// DefaultOptions returns the defaults: [cache.DefaultBounds].
func DefaultOptions() Options { return Options{Bounds: cache.DefaultBounds()} }

// DefaultPeriod is how long a signing key signs by default
// (SIGNING_KEY_ROTATION_PERIOD).
const DefaultPeriod = 30 * 24 * time.Hour

// Set is the signing keys of the app, read from the store and cached. It
// is safe for concurrent use.
type Set struct {
	store  *secretstore.Store
	policy Policy
	opts   Options
	cache  *cache.Value[*snapshot]

	mu     sync.Mutex
	parsed map[string]*Key // by version ID: versions never change
	// onRemove is told the kids that left the published set.
	onRemove []func(kids []string)

	// writeMu serialises writes of keys that sign at once, so that
	// concurrent requests on an instance write one, not one each.
	writeMu   sync.Mutex
	writeFail time.Time // of the last failed such write
	writeErr  error
}

// snapshot is what one read of the store gives.
type snapshot struct {
	versions []Version
	keys     map[string]*Key // by kid: every enabled version of the policy's alg
	byID     map[string]*Key // by version ID
	// until is when a retired key leaves the published set, by kid, as
	// the read placed it; absent for next and current keys.
	until map[string]time.Time
}

// New returns the signing-key set kept in store, on the schedule policy.
func New(store *secretstore.Store, policy Policy, o *Options) *Set {
	opts := DefaultOptions()
	if o != nil {
		opts = *o
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Gate == nil {
		opts.Gate = cache.NewGate(opts.Bounds, secretstore.IsThrottled)
	}
	s := &Set{store: store, policy: policy, opts: opts, parsed: map[string]*Key{}}
	s.cache = cache.New(s.load, cache.Options[*snapshot]{
		Bounds: opts.Bounds, Now: opts.Now,
		// A throttled store backs off the whole instance (the Gate); other
		// failures this set alone, for RefreshMinInterval.
		Gate: opts.Gate,
		OnStale: func(age time.Duration, err error) {
			opts.Logger.Warn("key_store_unavailable", "keys", SecretName, "cache_age", age.Round(time.Second).String(), "error", err.Error())
		},
		// Told after the new read is cached: a token verified against the
		// old read and remembered after the purge is caught by the
		// remembering side (see authn).
		OnStore: s.notifyRemoved,
	})
	return s
}

// OnRemove registers fn to be told, after a read of the store, the kids
// that were published before it and are not now (revoked, or retired past
// their retention). fn must not call back into s.
func (s *Set) OnRemove(fn func(kids []string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRemove = append(s.onRemove, fn)
}

// Sync reads the store again if the cached read is older than the TTL, so
// that the kids that left (revoked on another instance) are reported to
// OnRemove. It costs nothing while the read is fresh.
func (s *Set) Sync(ctx context.Context) error {
	_, err := s.cache.Get(ctx)
	return err
}

// Timeline returns the keys' standing now, from the cached read.
func (s *Set) Timeline(ctx context.Context) (Timeline, error) {
	snap, err := s.cache.Get(ctx)
	if err != nil {
		return Timeline{}, err
	}
	return Plan(snap.Value.versions, s.opts.Now(), s.policy), nil
}

// Published returns the keys of the JWKS now: next, current and retired.
func (s *Set) Published(ctx context.Context) ([]*Key, error) {
	snap, err := s.cache.Get(ctx)
	if err != nil {
		return nil, err
	}
	return snap.Value.published(s.opts.Now(), s.policy), nil
}

func (sn *snapshot) published(now time.Time, p Policy) []*Key {
	var out []*Key
	for _, e := range Plan(sn.versions, now, p).Entries {
		if e.Published() {
			if k := sn.byID[e.ID]; k != nil {
				out = append(out, k)
			}
		}
	}
	return out
}

// Lookup returns the published key kid, to verify a token. An unknown kid
// reads the store again (at most once per RefreshMinInterval): another
// instance may have written it.
func (s *Set) Lookup(ctx context.Context, kid string) (*Key, error) {
	if !ValidKid(kid) {
		return nil, ErrUnknownKey
	}
	snap, err := s.cache.Get(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := s.published(snap.Value, kid); ok {
		return k, nil
	}
	if snap, err = s.cache.Miss(ctx, snap); err != nil {
		return nil, err
	}
	if k, ok := s.published(snap.Value, kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (s *Set) published(sn *snapshot, kid string) (*Key, bool) {
	k, ok := sn.keys[kid]
	if !ok {
		return nil, false
	}
	// A retired key past its retention verifies nothing. (Its tokens are
	// expired by then anyway; this keeps the JWKS and verification equal.)
	// A key superseded since the read keeps no bound until the next read,
	// at most a TTL on: later, never earlier.
	if until := sn.until[kid]; !until.IsZero() && !s.opts.Now().Before(until) {
		return nil, false
	}
	return k, true
}

// Signer returns the key that signs now. When none does (no key was ever
// written, or the signer was revoked and its successor not yet written), it
// writes one that signs at once: one per instance at a time, and after a
// failed write none for RefreshMinInterval (at least a second).
func (s *Set) Signer(ctx context.Context) (*Key, error) {
	snap, err := s.cache.Get(ctx)
	if err != nil {
		return nil, err
	}
	if k := s.signer(snap.Value); k != nil {
		return k, nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if snap, err = s.cache.Reload(ctx); err != nil {
		return nil, err
	}
	if k := s.signer(snap.Value); k != nil {
		return k, nil // written meanwhile, here or elsewhere
	}
	now := s.opts.Now()
	if s.writeErr != nil && now.Sub(s.writeFail) < max(s.opts.RefreshMinInterval, time.Second) {
		return nil, fmt.Errorf("%w: %w", ErrNoSigner, s.writeErr)
	}
	if _, err := s.write(ctx, ImmediateActivation(snap.Value.versions, now), Current); err != nil {
		s.writeErr, s.writeFail = err, now
		return nil, err
	}
	s.writeErr = nil
	if snap, err = s.cache.Reload(ctx); err != nil {
		return nil, err
	}
	if k := s.signer(snap.Value); k != nil {
		return k, nil
	}
	return nil, ErrNoSigner
}

func (s *Set) signer(sn *snapshot) *Key {
	t := Plan(sn.versions, s.opts.Now(), s.policy)
	if t.Signer < 0 {
		return nil
	}
	return sn.byID[t.Entries[t.Signer].ID]
}

// Outcome of a [Set.Rotate] or [Set.Revoke].
type Outcome string

// Outcomes.
const (
	// Rotated: a next key was written; it signs from its activation.
	Rotated Outcome = "rotated"
	// NotDue: the current key's period has time left.
	NotDue Outcome = "not_due"
	// Pending: a next key already waits for its activation.
	Pending Outcome = "pending"
	// Created: no key signed; one was written that signs at once.
	Created Outcome = "created"
	// RevokedOutcome: the signer was revoked and a new key signs at once.
	RevokedOutcome Outcome = "revoked"
)

// Result is what a rotation or revoke did.
type Result struct {
	Outcome Outcome
	// Kid is the key written, if any.
	Kid string
	// Activates is when the key written signs from.
	Activates time.Time
	// RevokedKid is the key revoked, if any.
	RevokedKid string
}

// RotateIfDue writes the next key if one is due (what the timer and Key
// Vault's events run). The next key activates PublishAhead after it is
// written. It reads the store first, not the cache. Concurrent rotations
// may each write a key; that is harmless: every key is published before it
// signs, and the later activation simply takes over later. The outcome is
// logged: signing_key_rotation, or signing_key_rotation_failed.
func (s *Set) RotateIfDue(ctx context.Context) (Result, error) {
	res, err := s.rotate(ctx, false)
	if err != nil {
		s.opts.Logger.Error("signing_key_rotation_failed", "error", err.Error())
		return res, err
	}
	s.opts.Logger.Info("signing_key_rotation", "outcome", string(res.Outcome), "kid", res.Kid)
	return res, nil
}

// RotateNow writes the next key whether due or not, unless one already
// waits (the rotate action, which logs its own audit event).
func (s *Set) RotateNow(ctx context.Context) (Result, error) { return s.rotate(ctx, true) }

func (s *Set) rotate(ctx context.Context, now bool) (Result, error) {
	snap, err := s.cache.Reload(ctx)
	if err != nil {
		return Result{}, err
	}
	at := s.opts.Now()
	t := Plan(snap.Value.versions, at, s.policy)
	switch {
	case t.Signer < 0:
		v, err := s.write(ctx, ImmediateActivation(snap.Value.versions, at), Current)
		if err != nil {
			return Result{}, err
		}
		return s.finish(ctx, Result{Outcome: Created, Kid: v.Kid, Activates: v.Activated})
	case t.Pending:
		return Result{Outcome: Pending}, nil
	case !now && !t.Due(at):
		return Result{Outcome: NotDue}, nil
	}
	v, err := s.write(ctx, at.Add(s.policy.PublishAhead), Next)
	if err != nil {
		return Result{}, err
	}
	return s.finish(ctx, Result{Outcome: Rotated, Kid: v.Kid, Activates: v.Activated})
}

// Revoke disables the current key, so that it leaves the JWKS and its
// tokens are refused (on other instances within one TTL), then writes a
// key that signs at once. The disable comes first: if the write fails, the
// next token issued writes the key.
func (s *Set) Revoke(ctx context.Context) (Result, error) {
	snap, err := s.cache.Reload(ctx)
	if err != nil {
		return Result{}, err
	}
	t := Plan(snap.Value.versions, s.opts.Now(), s.policy)
	var res Result
	if t.Signer >= 0 {
		cur := t.Entries[t.Signer]
		off := false
		tags := s.tags(cur.Kid, cur.Alg, cur.Activated, Revoked)
		if _, err := s.store.UpdateProperties(ctx, SecretName, cur.ID, secretstore.Update{Enabled: &off, Tags: tags}); err != nil {
			return Result{}, fmt.Errorf("signingkey: revoking %s: %w", cur.Kid, err)
		}
		res.RevokedKid = cur.Kid
	}
	v, err := s.write(ctx, ImmediateActivation(snap.Value.versions, s.opts.Now()), Current)
	if err != nil {
		// Revoked, but nothing signs until the next token writes a key.
		if _, rerr := s.cache.Reload(ctx); rerr != nil {
			s.forget(res.RevokedKid)
		}
		return res, fmt.Errorf("signingkey: writing the key after a revoke: %w", err)
	}
	res.Outcome, res.Kid, res.Activates = RevokedOutcome, v.Kid, v.Activated
	return s.finish(ctx, res)
}

// finish reads the store again so that this instance sees the change at
// once. If it cannot, a revoked key is dropped from the cached read, so
// that this instance refuses its tokens all the same.
func (s *Set) finish(ctx context.Context, res Result) (Result, error) {
	if _, err := s.cache.Reload(ctx); err != nil {
		s.opts.Logger.Warn("signing_key_reload_failed", "error", err.Error())
		s.forget(res.RevokedKid)
	}
	return res, nil
}

// forget removes kid from the cached read, as a read after its revoke
// would, and tells OnRemove.
func (s *Set) forget(kid string) {
	if kid == "" {
		return
	}
	var old, cur *snapshot
	s.cache.Update(func(sn *snapshot) *snapshot {
		old = sn
		cur = &snapshot{keys: map[string]*Key{}, byID: map[string]*Key{}, until: sn.until}
		for _, v := range sn.versions {
			if v.Kid == kid {
				v.Enabled = false
			}
			cur.versions = append(cur.versions, v)
		}
		for k, key := range sn.keys {
			if k != kid {
				cur.keys[k] = key
			}
		}
		for id, key := range sn.byID {
			if key.Kid != kid {
				cur.byID[id] = key
			}
		}
		return cur
	})
	if cur != nil {
		s.notifyRemoved(old, cur)
	}
}

func (s *Set) tags(kid, alg string, activated time.Time, state State) map[string]string {
	t := keysecret.Managed(kindValue)
	t[TagKid], t[TagAlg], t[TagActivated], t[TagState] = kid, alg, strconv.FormatInt(activated.Unix(), 10), string(state)
	return t
}

// write generates a key of the policy's algorithm that signs from
// activated, and writes it as the newest version of the signing-key secret.
func (s *Set) write(ctx context.Context, activated time.Time, state State) (Version, error) {
	p := s.policy
	priv, err := generate(p.Alg)
	if err != nil {
		return Version{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Version{}, fmt.Errorf("signingkey: encoding a key: %w", err)
	}
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return Version{}, err
	}
	activated = activated.Truncate(time.Second)
	// Due for its successor when that is written, PublishAhead before
	// this one's period ends.
	exp := keysecret.Expiry(activated.Add(p.Period - p.PublishAhead))
	props, err := s.store.SetSecret(ctx, SecretName, secretstore.SetParams{
		Value:       string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ContentType: "application/x-pem-file",
		Enabled:     true,
		Expires:     &exp,
		Tags:        s.tags(kid, p.Alg, activated, state),
	})
	if err != nil {
		return Version{}, fmt.Errorf("signingkey: writing a key: %w", err)
	}
	s.opts.Logger.Info("signing_key_written", "kid", kid, "alg", p.Alg, "activates", activated.UTC().Format(time.RFC3339), "version", props.Version)
	return Version{ID: props.Version, Kid: kid, Alg: p.Alg, Created: props.Created, Activated: activated, Enabled: true}, nil
}

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("signingkey: unsupported algorithm %q", alg)
}

// load lists the versions and parses the keys of those not parsed before.
func (s *Set) load(ctx context.Context) (*snapshot, error) {
	props, err := s.store.ListVersions(ctx, SecretName)
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return nil, err
	}
	sn := &snapshot{keys: map[string]*Key{}, byID: map[string]*Key{}, until: map[string]time.Time{}}
	for _, p := range props {
		v, ok := versionOf(p)
		if !ok {
			continue
		}
		sn.versions = append(sn.versions, v)
	}
	for _, e := range Plan(sn.versions, s.opts.Now(), s.policy).Entries {
		if e.State == Revoked || e.State == Expired {
			continue
		}
		k, err := s.parse(ctx, e.Version)
		if err != nil {
			return nil, err
		}
		sn.keys[k.Kid], sn.byID[e.ID] = k, k
		if !e.PublishedUntil.IsZero() {
			sn.until[k.Kid] = e.PublishedUntil
		}
	}
	// Private keys of versions no longer needed (revoked, expired) leave
	// memory.
	s.mu.Lock()
	maps.DeleteFunc(s.parsed, func(id string, _ *Key) bool { return sn.byID[id] == nil })
	s.mu.Unlock()
	return sn, nil
}

// notifyRemoved tells OnRemove the kids of prev that cur lacks.
func (s *Set) notifyRemoved(prev, cur *snapshot) {
	if prev == nil {
		return
	}
	var gone []string
	for kid := range prev.keys {
		if _, ok := cur.keys[kid]; !ok {
			gone = append(gone, kid)
		}
	}
	if len(gone) == 0 {
		return
	}
	s.mu.Lock()
	fns := slices.Clone(s.onRemove)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(gone)
	}
}

func versionOf(p secretstore.Properties) (Version, bool) {
	if p.Tags[keysecret.TagKind] != kindValue || !ValidKid(p.Tags[TagKid]) {
		return Version{}, false
	}
	act, err := strconv.ParseInt(p.Tags[TagActivated], 10, 64)
	if err != nil {
		return Version{}, false
	}
	return Version{
		ID: p.Version, Kid: p.Tags[TagKid], Alg: p.Tags[TagAlg],
		Created: p.Created, Activated: time.Unix(act, 0), Enabled: p.Enabled,
	}, true
}

// parse returns the key of v, read from the store the first time.
func (s *Set) parse(ctx context.Context, v Version) (*Key, error) {
	s.mu.Lock()
	k, ok := s.parsed[v.ID]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	sec, err := s.store.GetSecret(ctx, SecretName, v.ID)
	if err != nil {
		return nil, err
	}
	k, err = parseKey(sec.Value, v)
	if err != nil {
		return nil, fmt.Errorf("%w: version %s: %w", ErrKeyFormat, v.ID, err)
	}
	s.mu.Lock()
	s.parsed[v.ID] = k
	s.mu.Unlock()
	return k, nil
}

func parseKey(value string, v Version) (*Key, error) {
	block, _ := pem.Decode([]byte(value))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS #8 key")
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if v.Alg != RS256 || k.N.BitLen() < 2048 {
			return nil, errors.New("an RSA key that is not RS256 or shorter than 2048 bits")
		}
	case *ecdsa.PrivateKey:
		if v.Alg != ES256 || k.Curve != elliptic.P256() {
			return nil, errors.New("an EC key that is not ES256 on P-256")
		}
	default:
		return nil, errors.New("an unsupported key type")
	}
	kid, err := Thumbprint(signer.Public())
	if err != nil || kid != v.Kid {
		return nil, errors.New("the kid tag is not the key's thumbprint")
	}
	return &Key{Kid: v.Kid, Alg: v.Alg, Public: signer.Public(), Activated: v.Activated, signer: signer}, nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub (SHA-256,
// base64url without padding): the kid of a key.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, err := jwk.FromPublic("", "", pub)
	if err != nil {
		return "", fmt.Errorf("signingkey: %w", err)
	}
	var canon string
	switch k.Kty {
	case jwk.KtyRSA:
		canon = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, k.E, k.N)
	case jwk.KtyEC:
		canon = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, k.Crv, k.X, k.Y)
	default:
		return "", fmt.Errorf("signingkey: unsupported key type %s", k.Kty)
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
