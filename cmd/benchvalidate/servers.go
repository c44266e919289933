package main

import (
	"cmp"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/jwk"
)

// identity is what validate answers for one of the benchmark's
// credentials; the bare and peer servers answer it too. Its JSON is
// authn.Identity's.
type identity struct {
	Service  string `json:"service"`
	Subject  string `json:"subject"`
	AuthType string `json:"authType"`
	KeyType  string `json:"keyType,omitempty"`
}

// The benchmark's services and the identities validate answers for them.
const (
	keyService   = "bench"
	tokenService = "bench-token"
)

var identities = map[string]identity{
	// The service's primary key.
	"key": {Service: keyService, Subject: "key:Primary", AuthType: authn.TypeKey, KeyType: "Primary"},
	// A token issued to the administrator key.
	"token": {Service: tokenService, Subject: authn.AdminSubject, AuthType: authn.TypeToken},
}

// inHeaders is id as its headers tell it: every one is sent, with
// authn.NotApplicable for a value id lacks.
func (id identity) inHeaders() identity {
	id.KeyType = cmp.Or(id.KeyType, authn.NotApplicable)
	return id
}

func (id identity) body() string {
	b, _ := json.Marshal(id) // cannot fail: strings only
	return string(b) + "\n"
}

// write answers id as validate does, the cheapest way: canonical header
// names set directly, no checks.
func (id identity) write(w http.ResponseWriter, body string) {
	h := w.Header()
	h["Cache-Control"] = []string{"no-store"}
	h["X-Modelauth-Service"] = []string{id.Service}
	h["X-Modelauth-Subject"] = []string{id.Subject}
	h["X-Modelauth-Auth-Type"] = []string{id.AuthType}
	h["X-Modelauth-Key-Type"] = []string{id.inHeaders().KeyType}
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, body)
}

// serve runs h on addr with the custom handler's server settings: only
// the handler differs.
func serve(addr string, h http.Handler) error {
	srv := functions.NewServer(h, slog.New(slog.DiscardHandler))
	srv.Addr = addr
	return srv.ListenAndServe()
}

// bareServer answers identities[kind] on addr without checking anything.
// Arguments: addr kind.
func bareServer(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: bare-server addr key|token")
	}
	id, ok := identities[args[1]]
	if !ok {
		return fmt.Errorf("bare-server: no identity %q", args[1])
	}
	return serve(args[0], bareHandler(id))
}

// bareHandler answers id to every request, as validate answers it.
func bareHandler(id identity) http.Handler {
	body := id.body()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id.write(w, body)
	})
}

// peerServer is the peer of validate for tokens: a plain net/http server
// that verifies the bearer token of every request with golang-jwt, caching
// nothing, and answers the token identity with the token's subject.
// Arguments: addr jwks-url issuer audience.
func peerServer(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: peer-server addr jwks-url issuer audience")
	}
	v, err := newPeerVerifier(args[1], args[2], args[3])
	if err != nil {
		return err
	}
	audience := args[3]
	return serve(args[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		sub, err := v.verify(raw)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		id := identity{Service: audience, Subject: sub, AuthType: authn.TypeToken}
		id.write(w, id.body())
	}))
}

// peerVerifier verifies tokens as a plain golang-jwt user would: one
// parser with the algorithm pinned and iss, aud and exp required, and the
// RSA keys of the handler's JWKS by kid.
type peerVerifier struct {
	parser *jwt.Parser
	keys   map[string]*rsa.PublicKey
}

func newPeerVerifier(jwksURL, issuer, audience string) (*peerVerifier, error) {
	resp, err := http.Get(jwksURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the JWKS: status %d: %v", resp.StatusCode, err)
	}
	set, err := jwk.ParseSet(data)
	if err != nil {
		return nil, err
	}
	v := &peerVerifier{
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
		),
		keys: map[string]*rsa.PublicKey{},
	}
	for _, k := range set {
		if pub, err := k.PublicKey(); err == nil {
			if rk, ok := pub.(*rsa.PublicKey); ok {
				v.keys[k.Kid] = rk
			}
		}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("the JWKS has no RSA key")
	}
	return v, nil
}

func (v *peerVerifier) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, errors.New("unknown kid")
}

// verify returns the subject of raw, a valid token.
func (v *peerVerifier) verify(raw string) (string, error) {
	var c jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(raw, &c, v.key); err != nil {
		return "", err
	}
	return c.Subject, nil
}

// modelBody is what the model server answers.
const modelBody = `{"predictions":[6]}` + "\n"

// modelServer is the gateway group's model, as fast as it can be: it
// answers GET /score with modelBody, and tells in X-Model-Saw-Service the
// X-ModelAuth-Service nginx sent it, for the checks. Arguments: addr.
func modelServer(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: model-server addr")
	}
	return serve(args[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/score" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		if s, ok := r.Header["X-Modelauth-Service"]; ok {
			h["X-Model-Saw-Service"] = s
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, modelBody)
	}))
}
