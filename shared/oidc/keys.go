package oidc

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/jwk"
)

// verifyKey is one usable key of an issuer's JWKS.
type verifyKey struct {
	alg string // the JWK's "alg", or "" for any that suits its type
	pub crypto.PublicKey
}

// issuer holds the discovery result and cached keys of one issuer.
type issuer struct {
	iss string
	v   *Verifier

	mu       sync.Mutex
	jwksURI  string                 // from discovery; "" until discovered or after a failure
	keys     map[string][]verifyKey // by kid; nil until a JWKS was fetched
	expires  time.Time              // when keys go stale
	failedAt time.Time              // when the last fetch failed; zero after a success
	lastErr  error                  // why it failed
	missAt   time.Time              // when the last refresh for an unknown kid started
	inflight chan struct{}          // non-nil while a fetch runs; closed when it ends
}

// lookup returns the keys with kid, fetching the JWKS when it is missing,
// expired, or lacks kid, within the limits described in the package
// documentation. At most one fetch per issuer runs at a time; callers that
// need one while it runs wait for it and do not start another.
func (s *issuer) lookup(ctx context.Context, kid string) ([]verifyKey, error) {
	fetched := false // this call started or waited for a fetch
	s.mu.Lock()
	for {
		if ch := s.inflight; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %s: waiting for keys: %w", ErrUnavailable, s.iss, ctx.Err())
			}
			fetched = true
			s.mu.Lock()
			continue
		}
		now := s.v.now()
		reason := ""
		if !fetched {
			reason = s.fetchReason(now, kid)
		}
		if reason == "" {
			keys, err := s.cached(now, kid)
			s.mu.Unlock()
			return keys, err
		}

		ch := make(chan struct{})
		s.inflight = ch
		if reason == reasonUnknownKid {
			s.missAt = now
		}
		uri := s.jwksURI
		s.mu.Unlock()

		uri, keys, maxAge, err := s.fetch(ctx, uri)

		s.mu.Lock()
		s.finish(reason, uri, keys, maxAge, err)
		s.inflight = nil
		close(ch)
		fetched = true
	}
}

// Reasons for a fetch, as logged.
const (
	reasonFirstUse   = "first use"
	reasonExpired    = "keys expired"
	reasonUnknownKid = "unknown kid"
)

// fetchReason says why a fetch should start now, or "" if none should.
// s.mu is held.
func (s *issuer) fetchReason(now time.Time, kid string) string {
	if !s.failedAt.IsZero() && now.Sub(s.failedAt) < s.v.retry {
		return ""
	}
	switch {
	case s.keys == nil:
		return reasonFirstUse
	case !now.Before(s.expires):
		return reasonExpired
	}
	if _, ok := s.keys[kid]; !ok && (s.missAt.IsZero() || now.Sub(s.missAt) >= s.v.minRefr) {
		return reasonUnknownKid
	}
	return ""
}

// cached returns the cached keys with kid. s.mu is held.
func (s *issuer) cached(now time.Time, kid string) ([]verifyKey, error) {
	cause := s.lastErr
	if cause == nil {
		cause = errors.New("no fetch attempted")
	}
	if s.keys == nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, s.iss, cause)
	}
	if !now.Before(s.expires.Add(maxStale)) {
		return nil, fmt.Errorf("%w: %s: keys expired %v ago and could not be refreshed: %w",
			ErrUnavailable, s.iss, now.Sub(s.expires).Round(time.Second), cause)
	}
	keys, ok := s.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: no key with the token's kid in the JWKS of %s", ErrUnknownKey, s.iss)
	}
	return keys, nil
}

// finish records the outcome of a fetch. s.mu is held.
func (s *issuer) finish(reason, uri string, keys map[string][]verifyKey, maxAge time.Duration, err error) {
	now := s.v.now()
	if err != nil {
		s.failedAt, s.lastErr, s.jwksURI = now, err, ""
		s.v.log.Warn("oidc: fetching issuer keys failed",
			"issuer", s.iss,
			"reason", reason,
			"err", err,
			"cached_keys", len(s.keys),
			"cached_keys_usable_until", s.expires.Add(maxStale))
		return
	}
	s.jwksURI, s.keys, s.expires = uri, keys, now.Add(maxAge)
	s.failedAt, s.lastErr = time.Time{}, nil
	s.v.log.Debug("oidc: fetched issuer keys",
		"issuer", s.iss, "reason", reason, "keys", len(keys), "max_age", maxAge)
}

// fetch discovers the JWKS URI unless uri is already known, and fetches
// the JWKS. It runs without s.mu held. The fetch outlives ctx's
// cancellation, up to fetchTimeout, because other callers may be waiting
// for it.
func (s *issuer) fetch(ctx context.Context, uri string) (string, map[string][]verifyKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if uri == "" {
		var err error
		if uri, err = s.discover(ctx); err != nil {
			return "", nil, 0, err
		}
	}
	keys, maxAge, err := s.fetchJWKS(ctx, uri)
	if err != nil {
		return "", nil, 0, err
	}
	return uri, keys, maxAge, nil
}

// entraV1 matches Microsoft Entra ID's v1 issuer, https://sts.windows.net/{tenant}/.
var entraV1 = regexp.MustCompile(`^https://sts\.windows\.net/([0-9A-Za-z.-]+)/$`)

// DiscoveryURL returns where the discovery document of issuer iss is:
// iss + "/.well-known/openid-configuration" (OpenID Connect Discovery 1.0
// section 4), except for Microsoft Entra ID's v1 issuer
// https://sts.windows.net/{tenant}/, whose document Microsoft publishes at
// https://login.microsoftonline.com/{tenant}/.well-known/openid-configuration
// (it names the v1 issuer, so the issuer check still holds).
func DiscoveryURL(iss string) string {
	if m := entraV1.FindStringSubmatch(iss); m != nil {
		return "https://login.microsoftonline.com/" + m[1] + "/.well-known/openid-configuration"
	}
	return strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration"
}

// discover fetches the issuer's discovery document and returns its
// jwks_uri.
func (s *issuer) discover(ctx context.Context) (string, error) {
	u := DiscoveryURL(s.iss)
	body, _, err := s.get(ctx, u, maxDiscoveryBytes)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: decoding %s: %w", u, err)
	}
	if doc.Issuer != s.iss {
		return "", fmt.Errorf("discovery: document at %s names issuer %s, not the configured one", u, short(doc.Issuer))
	}
	if err := checkURL(doc.JWKSURI, true); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri %s: %w", short(doc.JWKSURI), err)
	}
	return doc.JWKSURI, nil
}

// fetchJWKS fetches and parses a JWKS and returns its keys by kid and how
// long to cache them.
func (s *issuer) fetchJWKS(ctx context.Context, uri string) (map[string][]verifyKey, time.Duration, error) {
	body, h, err := s.get(ctx, uri, jwk.MaxSetBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("JWKS: %w", err)
	}
	set, err := jwk.ParseSet(body)
	if err != nil {
		return nil, 0, fmt.Errorf("JWKS at %s: %w", uri, err)
	}
	keys := make(map[string][]verifyKey, len(set))
	for _, k := range set {
		pub, err := k.PublicKey()
		if err != nil || k.Kid == "" {
			continue // ParseSet returns only keys PublicKey accepts; a key without kid is never picked
		}
		keys[k.Kid] = append(keys[k.Kid], verifyKey{alg: k.Alg, pub: pub})
	}
	if len(keys) == 0 {
		return nil, 0, fmt.Errorf("JWKS at %s has no usable signature key with a kid", uri)
	}
	return keys, cacheLife(h, s.v.defMaxAge), nil
}

// get fetches u and returns its body, of at most limit bytes, and headers.
// Only 200 OK is accepted. Errors name the URL and status, never the body.
func (s *issuer) get(ctx context.Context, u string, limit int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("request for %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.v.client.Do(req)
	if err != nil {
		return nil, nil, err // *url.Error names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading body: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("GET %s: body larger than %d bytes", u, limit)
	}
	return body, resp.Header, nil
}

// cacheLife returns how long to cache a response with header h: its
// Cache-Control max-age bounded to [minMaxAge, maxMaxAge], or def when
// there is no max-age, it does not parse, or caching is forbidden
// (no-store, no-cache).
func cacheLife(h http.Header, def time.Duration) time.Duration {
	age := time.Duration(-1)
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return def
			case "max-age":
				// A value too large to parse counts as very large (RFC 9111
				// section 1.2.2); ParseInt then returns the largest int64.
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err != nil && !errors.Is(err, strconv.ErrRange) || n < 0 {
					return def
				}
				if n > int64(maxMaxAge/time.Second) {
					n = int64(maxMaxAge / time.Second)
				}
				age = time.Duration(n) * time.Second
			}
		}
	}
	if age < 0 {
		return def
	}
	return min(max(age, minMaxAge), maxMaxAge)
}
