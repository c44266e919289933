// Package client calls a modelauth function app (deployed, or the local
// host of `make run`): get_keys, regen_key, rotate, get_token and
// validate, and offers token sources that keep a token fresh ahead of its
// refreshAfter.
//
// # Token sources
//
// A [TokenSource] has x/oauth2's shape, with a context. [Client.TokenSource]
// asks the app for a new token on every call; [NewRefreshingSource] wraps any
// source with a cache that is refreshed in the background ahead of
// RefreshAfter, with back-off while the issuer fails; [NewStoreSource]
// reads the token that the prefetchtokens function keeps in the secret store
// (secret [TokenSecret](consumer), tags [TagRefreshAfter] and [TagExpiryOn]),
// which is what most consumers use.
//
// # Errors
//
// A call the app answers with an error returns an *[Error] carrying the
// HTTP status and the app's error code and message; transport failures are
// returned as they are. The refreshing sources return errors wrapping
// [ErrNoValidToken] when they hold no valid token, and the store source
// [ErrNoToken], [ErrTokenExpired] or [ErrBadStoredToken] for the cause. No
// error contains a key or a token.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Keys is get_keys' and regen_key's answer.
type Keys struct {
	PrimaryKey    string `json:"primaryKey"`
	SecondaryKey  string `json:"secondaryKey"`
	ActiveKeyType string `json:"activeKeyType"`
}

// Active returns the key clients should use.
func (k Keys) Active() string {
	if k.ActiveKeyType == "Secondary" {
		return k.SecondaryKey
	}
	return k.PrimaryKey
}

// Rotation is the rotate action's account of the run.
type Rotation struct {
	Outcome string `json:"outcome"`
	ID      string `json:"id,omitempty"`
	KeyType string `json:"keyType,omitempty"`
}

// Rotated is the rotate action's answer.
type Rotated struct {
	Keys
	Rotation Rotation `json:"rotation"`
}

// Token is a bearer token with its expiry and the time after which it
// should be replaced (Azure ML's refresh_by).
type Token struct {
	AccessToken  string
	TokenType    string
	ExpiresOn    time.Time
	RefreshAfter time.Time
}

// Valid reports whether the token can still be presented at now.
func (t *Token) Valid(now time.Time) bool {
	return t != nil && t.AccessToken != "" && now.Before(t.ExpiresOn)
}

// wireToken is get_token's answer: Unix seconds, as Azure ML's v1 API.
type wireToken struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	ExpiryOn     int64  `json:"expiryOn"`
	RefreshAfter int64  `json:"refreshAfter"`
}

// Identity is validate's answer: who a credential is for a service.
type Identity struct {
	Service  string `json:"service"`
	Subject  string `json:"subject"`
	AuthType string `json:"authType"`
	KeyType  string `json:"keyType,omitempty"`
}

// Error is an error answer of the app.
type Error struct {
	Status  int
	Code    string
	Message string
	// Challenge is the WWW-Authenticate header of a 401 or 403.
	Challenge string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("modelauth: HTTP %d", e.Status)
	}
	return fmt.Sprintf("modelauth: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrBadResponse: the app answered 2xx with a body this package cannot
// read.
var ErrBadResponse = errors.New("modelauth: unexpected response")

// Client calls one function app. Its fields must not change once in use;
// it is safe for concurrent use.
type Client struct {
	// BaseURL is the app's URL with its route prefix, such as
	// https://myapp.azurewebsites.net/api or http://localhost:7071/api.
	BaseURL string
	// Credential returns the bearer value for management calls: the
	// administrator key, or an Entra token with the right app role.
	Credential func(ctx context.Context) (string, error)
	// HTTPClient sends the requests; nil means one with a 60 s timeout
	// (rotate waits one key-cache TTL on the server).
	HTTPClient *http.Client
}

// Static returns a Credential that is always value.
func Static(value string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return value, nil }
}

var defaultHTTP = &http.Client{Timeout: 60 * time.Second}

// maxResponse caps the answers read.
const maxResponse = 1 << 20

// GetKeys returns a key-mode service's keys.
func (c *Client) GetKeys(ctx context.Context, service string) (Keys, error) {
	var k Keys
	err := c.call(ctx, http.MethodGet, "services/"+url.PathEscape(service)+"/keys", nil, "", &k)
	return k, err
}

// RegenKey replaces one key ("Primary" or "Secondary") of a service, with
// value if not empty, else a generated one, and returns the keys after it.
func (c *Client) RegenKey(ctx context.Context, service, keyType, value string) (Keys, error) {
	body, _ := json.Marshal(struct {
		KeyType  string `json:"keyType"`
		KeyValue string `json:"keyValue,omitempty"`
	}{keyType, value})
	var k Keys
	err := c.call(ctx, http.MethodPost, "services/"+url.PathEscape(service)+"/keys/regenerate", body, "", &k)
	return k, err
}

// Rotate rotates a service's keys now (it takes one key-cache TTL).
func (c *Client) Rotate(ctx context.Context, service string) (Rotated, error) {
	var r Rotated
	err := c.call(ctx, http.MethodPost, "services/"+url.PathEscape(service)+"/keys/rotate", nil, "", &r)
	return r, err
}

// GetToken returns a new token for a token-mode service.
func (c *Client) GetToken(ctx context.Context, service string) (*Token, error) {
	var w wireToken
	if err := c.call(ctx, http.MethodPost, "services/"+url.PathEscape(service)+"/token", nil, "", &w); err != nil {
		return nil, err
	}
	if w.AccessToken == "" || w.ExpiryOn == 0 {
		return nil, fmt.Errorf("%w: a token answer without accessToken or expiryOn", ErrBadResponse)
	}
	tok := &Token{AccessToken: w.AccessToken, TokenType: w.TokenType, ExpiresOn: time.Unix(w.ExpiryOn, 0)}
	if w.RefreshAfter > 0 { // absent: the zero time, which token sources read as "none"
		tok.RefreshAfter = time.Unix(w.RefreshAfter, 0)
	}
	return tok, nil
}

// Validate checks cred (a key or a token) for service, as a gateway would,
// and returns whom it identifies. A refused credential is an *Error with
// Status 401.
func (c *Client) Validate(ctx context.Context, service, cred string) (Identity, error) {
	var id Identity
	err := c.call(ctx, http.MethodGet, "services/"+url.PathEscape(service)+"/validate", nil, cred, &id)
	return id, err
}

// TokenSource returns a source of new tokens for service from this app.
func (c *Client) TokenSource(service string) TokenSource {
	return tokenSourceFunc(func(ctx context.Context) (*Token, error) { return c.GetToken(ctx, service) })
}

// call sends one request; cred, if set, is the bearer value instead of the
// Credential's.
func (c *Client) call(ctx context.Context, method, path string, body []byte, cred string, out any) error {
	if cred == "" && c.Credential != nil {
		var err error
		if cred, err = c.Credential(ctx); err != nil {
			return fmt.Errorf("modelauth: credential: %w", err)
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+"/"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate")}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, method, path, err)
	}
	return nil
}
