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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/journal"
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
	// signer is the private key, kept in memory to sign; nil in the keys
	// that verify.
	signer crypto.Signer
}

// Signer returns the private key, for signing tokens: set only in the key
// [Set.Signer] returns (the keys of Lookup and Published verify; they
// carry no private key).
func (k *Key) Signer() crypto.Signer { return k.signer }

// Options tune a [Set]; nil means [DefaultOptions]. Fields are used as
// given; a nil Now or Logger takes its default.
type Options struct {
	// Bounds are the journal's, when the set makes its own, as the service
	// keys' ([cache.Bounds]).
	cache.Bounds
	// Journal is the instance's change journal over the store, whose Hook
	// the store carries, and whose Options.Public is [PublicOf] for
	// [SecretName]. nil: the set makes one over the store for its own
	// secret, and sets the store's write hook to it.
	Journal *journal.Journal
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

// Set is the signing keys of the app, known from the change journal. It is
// safe for concurrent use.
type Set struct {
	store   *secretstore.Store
	journal *journal.Journal
	policy  Policy
	opts    Options

	// cur is what the last view of the journal seen says of the keys.
	cur      atomic.Pointer[snapshot]
	deriveMu sync.Mutex // serialises deriving, storing and telling OnRemove

	mu sync.Mutex
	// parsed holds the private keys read to sign, by version ID
	// (versions never change): only those still published.
	parsed map[string]*Key
	// onRemove is told the kids that left the published set.
	onRemove []func(kids []string)
	// loadMu serialises the reads of private keys, so that concurrent
	// tokens read a signing version once.
	loadMu sync.Mutex

	// writeMu serialises writes of keys that sign at once, so that
	// concurrent requests on an instance write one, not one each.
	writeMu   sync.Mutex
	writeFail time.Time // of the last failed such write
	writeErr  error
}

// snapshot is what one view of the journal says of the keys.
type snapshot struct {
	view     *journal.View
	versions []Version
	keys     map[string]*Key // by kid: every usable version not revoked or expired
	byID     map[string]*Key // by version ID
	// until is when a retired key leaves the published set, by kid, as
	// the view placed it; absent for next and current keys.
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
	s := &Set{store: store, policy: policy, opts: opts, parsed: map[string]*Key{}, journal: opts.Journal}
	if s.journal == nil {
		jo := journal.DefaultOptions()
		jo.Bounds, jo.Gate, jo.Now, jo.Logger = opts.Bounds, opts.Gate, opts.Now, opts.Logger
		jo.Tracked, jo.AllVersions = keysecret.Tracked, keysecret.AllVersions
		jo.Private = func(n string) bool { return strings.EqualFold(n, SecretName) }
		jo.Public = PublicOf
		jo.Names = func() []string { return []string{SecretName} }
		s.journal = journal.New(store, &jo)
		store.OnWrite(s.journal.Hook)
	}
	return s
}

// Journal returns the set's change journal.
func (s *Set) Journal() *journal.Journal { return s.journal }

// OnRemove registers fn to be told, when the journal's view changes, the
// kids that were published before and are not now (revoked, or retired
// past their retention). fn must not call back into s.
func (s *Set) OnRemove(fn func(kids []string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRemove = append(s.onRemove, fn)
}

// Sync polls the journal if a poll is due, so that the kids that left
// (revoked on another instance) are reported to OnRemove. It costs nothing
// between polls.
func (s *Set) Sync(ctx context.Context) error {
	_, err := s.snapshot(ctx)
	return err
}

// Timeline returns the keys' standing now, as the journal tells them.
func (s *Set) Timeline(ctx context.Context) (Timeline, error) {
	sn, err := s.snapshot(ctx)
	if err != nil {
		return Timeline{}, err
	}
	return Plan(sn.versions, s.opts.Now(), s.policy), nil
}

// Published returns the keys of the JWKS now: next, current and retired.
func (s *Set) Published(ctx context.Context) ([]*Key, error) {
	sn, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return sn.published(s.opts.Now(), s.policy), nil
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

// Lookup returns the published key kid, to verify a token. It reads no
// key: an unknown kid makes the journal list its open slot (at most once
// per RefreshMinInterval for the instance), since another instance may
// have written it.
func (s *Set) Lookup(ctx context.Context, kid string) (*Key, error) {
	if !ValidKid(kid) {
		return nil, ErrUnknownKey
	}
	sn, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := s.published(sn, kid); ok {
		return k, nil
	}
	if v, err := s.journal.Miss(ctx, sn.view); err == nil && v != nil && v != sn.view {
		if k, ok := s.published(s.derived(v), kid); ok {
			return k, nil
		}
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
	// A key superseded since the view keeps no bound until the next one,
	// at most a poll on: later, never earlier.
	if until := sn.until[kid]; !until.IsZero() && !s.opts.Now().Before(until) {
		return nil, false
	}
	return k, true
}

// Signer returns the key that signs now, with its private key, read from
// the store once per version. When none signs (no key was ever written,
// or the signer was revoked and its successor not yet written), it writes
// one that signs at once, deciding from the store's versions: one per
// instance at a time, and after a failed write none for
// RefreshMinInterval (at least a second).
func (s *Set) Signer(ctx context.Context) (*Key, error) {
	sn, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	k, err := s.signerOf(ctx, sn)
	if k != nil || (err != nil && !gone(err)) {
		return k, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if v := s.journal.Peek(); v != nil && v != sn.view {
		// Written meanwhile on this instance (the write hook puts writes
		// in the view at once), or a poll.
		if k, err := s.signerOf(ctx, s.derived(v)); k != nil || (err != nil && !gone(err)) {
			return k, err
		}
	}
	versions, err := s.storedVersions(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	if t := Plan(versions, now, s.policy); t.Signer >= 0 {
		// A key signs that this instance's view does not know yet
		// (written on another instance within the journal's bound): its
		// private key, read now, proves its kid.
		return s.withSigner(ctx, t.Entries[t.Signer].Version)
	}
	if s.writeErr != nil && now.Sub(s.writeFail) < max(s.opts.RefreshMinInterval, time.Second) {
		return nil, fmt.Errorf("%w: %w", ErrNoSigner, s.writeErr)
	}
	written, err := s.write(ctx, ImmediateActivation(versions, now), Current)
	if err != nil {
		s.writeErr, s.writeFail = err, now
		return nil, err
	}
	s.writeErr = nil
	if v := s.journal.Peek(); v != nil {
		if k, err := s.signerOf(ctx, s.derived(v)); k != nil {
			return k, nil
		} else if err != nil && !gone(err) {
			return nil, err
		}
	}
	// The view does not show it (a concurrent write took over, or the
	// journal lags): it signs all the same, as the store says.
	return written, nil
}

// gone reports whether err says a version is no longer readable: disabled
// (revoked on another instance) or deleted.
func gone(err error) bool {
	c := secretstore.Code(err)
	return c == secretstore.Disabled || c == secretstore.NotFound
}

// signerOf returns the key that signs as sn tells, with its private key;
// nil, nil when sn names no usable signer.
func (s *Set) signerOf(ctx context.Context, sn *snapshot) (*Key, error) {
	t := Plan(sn.versions, s.opts.Now(), s.policy)
	if t.Signer < 0 || sn.byID[t.Entries[t.Signer].ID] == nil {
		return nil, nil
	}
	return s.withSigner(ctx, t.Entries[t.Signer].Version)
}

// withSigner returns the key of v with its private key, read from the
// store the first time.
func (s *Set) withSigner(ctx context.Context, v Version) (*Key, error) {
	if k := s.parsedKey(v.ID); k != nil {
		return k, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if k := s.parsedKey(v.ID); k != nil {
		return k, nil // read meanwhile
	}
	sec, err := s.store.GetSecret(ctx, SecretName, v.ID)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(sec.Value, v)
	if err != nil {
		return nil, fmt.Errorf("%w: version %s: %w", ErrKeyFormat, v.ID, err)
	}
	s.keep(v.ID, k)
	return k, nil
}

func (s *Set) parsedKey(id string) *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parsed[id]
}

func (s *Set) keep(id string, k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parsed[id] = k
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
// written. It lists the store's versions, not the journal's. Concurrent rotations
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
	versions, err := s.storedVersions(ctx)
	if err != nil {
		return Result{}, err
	}
	at := s.opts.Now()
	t := Plan(versions, at, s.policy)
	var res Result
	switch {
	case t.Signer < 0:
		k, err := s.write(ctx, ImmediateActivation(versions, at), Current)
		if err != nil {
			return Result{}, err
		}
		res = Result{Outcome: Created, Kid: k.Kid, Activates: k.Activated}
	case t.Pending:
		return Result{Outcome: Pending}, nil
	case !now && !t.Due(at):
		return Result{Outcome: NotDue}, nil
	default:
		k, err := s.write(ctx, at.Add(s.policy.PublishAhead), Next)
		if err != nil {
			return Result{}, err
		}
		res = Result{Outcome: Rotated, Kid: k.Kid, Activates: k.Activated}
	}
	s.refresh()
	return res, nil
}

// Revoke disables the current key, so that it leaves the JWKS and its
// tokens are refused (on this instance at once, on the others within the
// journal's bound), then writes a key that signs at once. Both decide from
// the store's versions, not the journal. The disable comes first: if the
// write fails, the next token issued writes the key.
func (s *Set) Revoke(ctx context.Context) (Result, error) {
	versions, err := s.storedVersions(ctx)
	if err != nil {
		return Result{}, err
	}
	t := Plan(versions, s.opts.Now(), s.policy)
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
	// The write hook put the disable in this instance's view: its tokens
	// are refused here from now on, whatever the write below does.
	k, err := s.write(ctx, ImmediateActivation(versions, s.opts.Now()), Current)
	s.refresh()
	if err != nil {
		// Revoked, but nothing signs until the next token writes a key.
		return res, fmt.Errorf("signingkey: writing the key after a revoke: %w", err)
	}
	res.Outcome, res.Kid, res.Activates = RevokedOutcome, k.Kid, k.Activated
	return res, nil
}

// refresh derives the keys from the journal's view as it is now, without
// reading: after a write, whose hook put it in the view, so that OnRemove
// hears of a revoke at once.
func (s *Set) refresh() {
	if v := s.journal.Peek(); v != nil {
		s.derived(v)
	}
}

// storedVersions lists the versions in the store: what decisions that
// write are made from (the writer's cost).
func (s *Set) storedVersions(ctx context.Context) ([]Version, error) {
	props, err := s.store.ListVersions(ctx, SecretName)
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return nil, err
	}
	var out []Version
	for _, p := range props {
		if v, ok := versionOf(p.Version, p.Created, p.Enabled, p.Tags); ok {
			out = append(out, v)
		}
	}
	return out, nil
}

func (s *Set) tags(kid, alg string, activated time.Time, state State) map[string]string {
	t := keysecret.Managed(kindValue)
	t[TagKid], t[TagAlg], t[TagActivated], t[TagState] = kid, alg, strconv.FormatInt(activated.Unix(), 10), string(state)
	return t
}

// write generates a key of the policy's algorithm that signs from
// activated, and writes it as the newest version of the signing-key
// secret. The key written is kept to sign: it is not read back.
func (s *Set) write(ctx context.Context, activated time.Time, state State) (*Key, error) {
	p := s.policy
	priv, err := generate(p.Alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signingkey: encoding a key: %w", err)
	}
	kid, err := Thumbprint(priv.Public())
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("signingkey: writing a key: %w", err)
	}
	s.opts.Logger.Info("signing_key_written", "kid", kid, "alg", p.Alg, "activates", activated.UTC().Format(time.RFC3339), "version", props.Version)
	k := &Key{Kid: kid, Alg: p.Alg, Public: priv.Public(), Activated: activated, signer: priv}
	s.keep(props.Version, k)
	return k, nil
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

// snapshot returns what the journal's view says of the keys, polling it
// when a poll is due.
func (s *Set) snapshot(ctx context.Context) (*snapshot, error) {
	v, err := s.journal.View(ctx)
	if err != nil {
		return nil, err
	}
	return s.derived(v), nil
}

// derived returns what v says of the keys, reusing the last result for
// the same view. A new result for the journal's current view is kept, and
// OnRemove told the kids it lacks.
func (s *Set) derived(v *journal.View) *snapshot {
	if sn := s.cur.Load(); sn != nil && sn.view == v {
		return sn
	}
	s.deriveMu.Lock()
	defer s.deriveMu.Unlock()
	prev := s.cur.Load()
	if prev != nil && prev.view == v {
		return prev
	}
	sn := s.derive(v)
	if prev != nil && v != s.journal.Peek() {
		return sn // an older view than the journal's: used, not kept
	}
	s.cur.Store(sn)
	// Private keys of versions no longer published (revoked, expired)
	// leave memory.
	s.mu.Lock()
	maps.DeleteFunc(s.parsed, func(id string, _ *Key) bool { return sn.byID[id] == nil })
	s.mu.Unlock()
	s.notifyRemoved(prev, sn)
	return sn
}

// derive builds the keys from v's entries: their tags and public keys, no
// private key and no read.
func (s *Set) derive(v *journal.View) *snapshot {
	sn := &snapshot{view: v, keys: map[string]*Key{}, byID: map[string]*Key{}, until: map[string]time.Time{}}
	public := map[string]string{}
	for _, e := range v.Versions(SecretName) {
		ver, ok := versionOf(e.Version, e.Created, e.Enabled, e.Tags)
		if !ok {
			continue
		}
		sn.versions = append(sn.versions, ver)
		public[e.Version] = e.Public
	}
	for _, e := range Plan(sn.versions, s.opts.Now(), s.policy).Entries {
		if e.State == Revoked || e.State == Expired {
			continue
		}
		k, err := publicKey(public[e.ID], e.Version)
		if err != nil {
			s.opts.Logger.Warn("signing_key_unusable", "version", e.ID, "kid", e.Kid, "error", err.Error())
			continue
		}
		sn.keys[k.Kid], sn.byID[e.ID] = k, k
		if !e.PublishedUntil.IsZero() {
			sn.until[k.Kid] = e.PublishedUntil
		}
	}
	return sn
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
	slices.Sort(gone)
	s.mu.Lock()
	fns := slices.Clone(s.onRemove)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(gone)
	}
}

// versionOf is the version a store's or the journal's tags describe, if
// they are a signing key's.
func versionOf(id string, created time.Time, enabled bool, tags map[string]string) (Version, bool) {
	if tags[keysecret.TagKind] != kindValue || !ValidKid(tags[TagKid]) {
		return Version{}, false
	}
	act, err := strconv.ParseInt(tags[TagActivated], 10, 64)
	if err != nil {
		return Version{}, false
	}
	return Version{
		ID: id, Kid: tags[TagKid], Alg: tags[TagAlg],
		Created: created, Activated: time.Unix(act, 0), Enabled: enabled,
	}, true
}

// PublicOf returns the public key of a signing-key value (a PEM PKCS #8
// private key): base64url, without padding, of its PKIX DER encoding. The
// change journal records it in place of a digest (journal.Options.Public),
// so that verifiers know the keys without reading them.
func PublicOf(value string) (string, bool) {
	signer, err := parsePrivate(value)
	if err != nil {
		return "", false
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return "", false
	}
	return base64.RawURLEncoding.EncodeToString(der), true
}

// publicKey returns the key of v from its journal entry's public key.
func publicKey(public string, v Version) (*Key, error) {
	if public == "" {
		return nil, errors.New("the journal holds no public key")
	}
	der, err := base64.RawURLEncoding.DecodeString(public)
	if err != nil {
		return nil, errors.New("the public key is not base64url")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a PKIX public key")
	}
	if err := check(pub, v); err != nil {
		return nil, err
	}
	return &Key{Kid: v.Kid, Alg: v.Alg, Public: pub, Activated: v.Activated}, nil
}

// parsePrivate parses a signing-key value.
func parsePrivate(value string) (crypto.Signer, error) {
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
	return signer, nil
}

func parseKey(value string, v Version) (*Key, error) {
	signer, err := parsePrivate(value)
	if err != nil {
		return nil, err
	}
	if err := check(signer.Public(), v); err != nil {
		return nil, err
	}
	return &Key{Kid: v.Kid, Alg: v.Alg, Public: signer.Public(), Activated: v.Activated, signer: signer}, nil
}

// check reports whether pub is a key of v's algorithm whose thumbprint is
// v's kid.
func check(pub crypto.PublicKey, v Version) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if v.Alg != RS256 || k.N.BitLen() < 2048 {
			return errors.New("an RSA key that is not RS256 or shorter than 2048 bits")
		}
	case *ecdsa.PublicKey:
		if v.Alg != ES256 || k.Curve != elliptic.P256() {
			return errors.New("an EC key that is not ES256 on P-256")
		}
	default:
		return errors.New("an unsupported key type")
	}
	if kid, err := Thumbprint(pub); err != nil || kid != v.Kid {
		return errors.New("the kid tag is not the key's thumbprint")
	}
	return nil
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
