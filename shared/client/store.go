package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// The stored form of a consumer's prefetched token, as the prefetchtokens
// function writes it: the secret [TokenSecret](consumer), whose value is the
// raw token, content type [TokenContentType], expiry the token's exp, and
// tags [TagRefreshAfter] and [TagExpiryOn] in Unix seconds (decimal), beside
// managed-by=modelauth, kind=token and service=<service>.
// The names are package keysecret's, the owner of the stored secrets'
// contract.
const (
	// TagRefreshAfter is the tag holding the token's refreshAfter.
	TagRefreshAfter = keysecret.TagRefreshAfter
	// TagExpiryOn is the tag holding the token's expiryOn (its exp).
	TagExpiryOn = keysecret.TagExpiryOn
	// TokenContentType is the content type of a stored token.
	TokenContentType = keysecret.TokenContentType
)

// TokenSecret returns the name of the secret holding consumer's prefetched
// token: "tok-" + consumer.
func TokenSecret(consumer string) string { return keysecret.TokenSecret(consumer) }

var (
	// ErrNoToken: the store holds no token for the consumer (the secret
	// is missing or disabled): the prefetch has not run for it yet, or the
	// consumer's name is wrong.
	ErrNoToken = errors.New("modelauth: no stored token")
	// ErrTokenExpired: the stored token has expired; the prefetch has not
	// replaced it in time.
	ErrTokenExpired = errors.New("modelauth: the stored token has expired")
	// ErrBadStoredToken: a stored token version lacks its value or has an
	// unreadable expiryOn or refreshAfter.
	ErrBadStoredToken = errors.New("modelauth: malformed stored token")
)

// StoredToken returns the token a version of a tok-<consumer> secret holds:
// the value, ExpiresOn from the expiryOn tag (or the version's expiry when
// the tag is absent) and RefreshAfter from the refreshAfter tag (zero when
// absent). It does not check the time; it returns an error wrapping
// [ErrBadStoredToken] for an empty value, a malformed tag or no expiry at
// all. Errors never contain the token.
func StoredToken(s secretstore.Secret) (*Token, error) {
	if s.Value == "" {
		return nil, fmt.Errorf("%w: the value is empty", ErrBadStoredToken)
	}
	tok := &Token{AccessToken: s.Value, TokenType: "Bearer"}
	exp, err := unixTag(s.Tags, TagExpiryOn)
	switch {
	case err != nil:
		return nil, err
	case !exp.IsZero():
		tok.ExpiresOn = exp
	case s.Expires != nil && !s.Expires.IsZero():
		tok.ExpiresOn = *s.Expires
	default:
		return nil, fmt.Errorf("%w: neither a %s tag nor an expiry", ErrBadStoredToken, TagExpiryOn)
	}
	if tok.RefreshAfter, err = unixTag(s.Tags, TagRefreshAfter); err != nil {
		return nil, err
	}
	return tok, nil
}

// unixTag reads a tag of Unix seconds; an absent tag is the zero time.
func unixTag(tags map[string]string, name string) (time.Time, error) {
	v, ok := tags[name]
	if !ok {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("%w: the %s tag is not a positive number of Unix seconds", ErrBadStoredToken, name)
	}
	return time.Unix(n, 0), nil
}

// NewStoreSource returns a [TokenSource] of consumer's prefetched token,
// the secret [TokenSecret](consumer) in store: what most consumers use,
// since the prefetchtokens function keeps that token fresh.
//
// It is a [RefreshingSource] over a reader of the secret: it serves the
// token it read until the token's refreshAfter, then reads the secret again
// in the background, at most once per MinRetry (so a prefetch that is late
// costs one store read per MinRetry, not one per call), and keeps serving
// the still-valid token it holds while the store fails. It never returns
// an expired token. Without a valid token, Token reads the store and
// returns an error wrapping [ErrNoValidToken] and, for a missing or
// disabled secret, [ErrNoToken]; for an expired stored token,
// [ErrTokenExpired]; for a malformed one, [ErrBadStoredToken]; else the
// store's error (see secretstore.Code).
//
// opts, at most one, tunes the caching as for [NewRefreshingSource]; none
// or nil means the defaults (Now is also the clock that judges the stored
// token's expiry). It is safe for concurrent use.
func NewStoreSource(store *secretstore.Store, consumer string, opts ...*RefreshOptions) TokenSource {
	var o *RefreshOptions
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	now := time.Now
	if o != nil && o.Now != nil {
		now = o.Now
	}
	return NewRefreshingSource(&storeReader{store: store, name: TokenSecret(consumer), now: now}, o)
}

// storeReader reads the stored token on every call.
type storeReader struct {
	store *secretstore.Store
	name  string
	now   func() time.Time
}

func (r *storeReader) Token(ctx context.Context) (*Token, error) {
	sec, err := r.store.GetSecret(ctx, r.name, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", r.name, err)
		}
	case secretstore.NotFound, secretstore.Disabled:
		return nil, fmt.Errorf("%w: %s: %w", ErrNoToken, r.name, err)
	default:
		return nil, fmt.Errorf("reading %s: %w", r.name, err)
	}
	tok, err := StoredToken(sec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	if !tok.Valid(r.now()) {
		return nil, fmt.Errorf("%w: %s expired at %s", ErrTokenExpired, r.name, tok.ExpiresOn.UTC().Format(time.RFC3339))
	}
	return tok, nil
}
