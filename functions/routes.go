package functions

// This file holds the custom handler's routes and its router.

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/modelauth/modelauth/functions/jwks"
	"github.com/modelauth/modelauth/functions/keys"
	"github.com/modelauth/modelauth/functions/keyvaultevents"
	"github.com/modelauth/modelauth/functions/prefetchtokens"
	"github.com/modelauth/modelauth/functions/score"
	"github.com/modelauth/modelauth/functions/signingkeys"
	"github.com/modelauth/modelauth/functions/snapshot"
	"github.com/modelauth/modelauth/functions/token"
	"github.com/modelauth/modelauth/functions/validate"
	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/azfunc"
)

// Handler returns the custom handler's routes: the readiness probe, every
// HTTP function at its forwarded /api path, and the timer and Event Grid
// functions at /<name>, where the host posts their invocation envelope.
func (a *App) Handler() http.Handler {
	services := a.Services()
	callers := &authn.Callers{Keys: a.Keys, AdminKeyDisabled: !a.Settings.AdminKeyEnabled, Audiences: a.Settings.OIDCAudiences}
	if a.OIDC != nil {
		callers.OIDC = a.OIDC
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", azfunc.Ready())

	v := &validate.Function{Services: services, Log: a.Log}
	mux.Handle(RoutePrefix+"/services/{service}/validate", v)
	mux.Handle(RoutePrefix+"/services/{service}/validate/{rest...}", v)

	sc := score.New(services, score.Limits{Timeout: a.Settings.ScoreTimeout, MaxBodyBytes: a.Settings.ScoreMaxBodyBytes}, a.Log, nil)
	mux.Handle(RoutePrefix+"/services/{service}/score", sc)
	mux.Handle(RoutePrefix+"/services/{service}/score/{rest...}", sc)

	k := &keys.Function{Config: a.Config, Keys: a.Keys, Callers: callers, Log: a.Log, Rotator: a.Rotator}
	if a.Endpoints != nil {
		k.Endpoints = a.Endpoints
	}
	mux.Handle(RoutePrefix+"/services/{service}/keys", k)
	mux.Handle(RoutePrefix+"/services/{service}/keys/{$}", k) // {action?} empty
	mux.Handle(RoutePrefix+"/services/{service}/keys/{action}", k)

	mux.Handle(RoutePrefix+"/services/{service}/token", &token.Function{Config: a.Config, Callers: callers, Tokens: a.Tokens, Log: a.Log})
	mux.Handle(RoutePrefix+"/.well-known/{document}", &jwks.Function{Issuer: a.Settings.Issuer, Alg: a.Settings.TokenSigningAlg, Keys: a.SigningKeys, Log: a.Log,
		Ready: func() error { return a.init.ready("signing_key") }})
	mux.Handle(RoutePrefix+"/signing-keys/{action}", &signingkeys.Function{Callers: callers, Keys: a.SigningKeys, Log: a.Log})

	// Non-HTTP functions: the handlers answer other methods with 405.
	rk := a.rotateKeys()
	mux.Handle("/rotatekeys", rk.Handler())
	pf := &prefetchtokens.Function{Prefetcher: a.Prefetcher, Log: a.Log}
	mux.Handle("/prefetchtokens", pf.Handler())
	kv := &keyvaultevents.Function{Config: a.Config, Rotator: a.Rotator, SigningKeys: rk.SigningKeys, Journal: a.Journal, Log: a.Log}
	if a.Endpoints != nil {
		kv.Endpoints = a.Endpoints
	}
	mux.Handle("/keyvaultevents", kv.Handler())
	sn := &snapshot.Function{Journal: a.Journal, Log: a.Log}
	mux.Handle("/snapshot", sn.Handler())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, nil, apierror.New(apierror.NotFound, "no function answers this path"))
	}))
	return &router{mux: mux, validate: v, score: sc}
}

// router sends the validate route, the hot path that every gateway call
// takes, straight to its function, and every other request through the mux.
// It takes only paths that the mux would route to validate as they are, so
// both give the same answer; the mux's pattern matching costs about as much
// as checking the key.
//
// It also sends to score the score requests whose path holds dot segments,
// which the mux would redirect to the cleaned path: score refuses them
// (score.Tail), as it refuses their encoded spellings.
type router struct {
	mux      *http.ServeMux
	validate *validate.Function
	score    *score.Function
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if service, ok := validateRoute(r); ok {
		rt.validate.Serve(w, r, service)
		return
	}
	if service, ok := uncleanScoreRoute(r); ok {
		rt.score.Serve(w, r, service)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// uncleanScoreRoute returns the service of a request for
// /api/services/{service}/score/{*rest} whose path the mux would redirect
// to its cleaned form.
func uncleanScoreRoute(r *http.Request) (string, bool) {
	const prefix = RoutePrefix + "/services/"
	p := r.URL.EscapedPath()
	if r.Method == http.MethodConnect || !strings.HasPrefix(p, prefix) || path.Clean(r.URL.Path) == r.URL.Path {
		return "", false
	}
	escService, tail, _ := strings.Cut(p[len(prefix):], "/")
	service, err := url.PathUnescape(escService)
	if err != nil || service == "" || (tail != "score" && !strings.HasPrefix(tail, "score/")) {
		return "", false
	}
	return service, true
}

// validateRoute returns the service of a request for
// /api/services/{service}/validate/{*rest} whose path the mux would not
// clean, unescape or redirect.
func validateRoute(r *http.Request) (string, bool) {
	const prefix = RoutePrefix + "/services/"
	p := r.URL.Path
	if r.Method == http.MethodConnect || r.URL.RawPath != "" || !strings.HasPrefix(p, prefix) {
		return "", false
	}
	service, tail, found := strings.Cut(p[len(prefix):], "/")
	if !found || service == "" || (tail != "validate" && !strings.HasPrefix(tail, "validate/")) {
		return "", false
	}
	if !isClean(p) {
		return "", false
	}
	return service, true
}

// isClean reports whether path.Clean leaves p, a rooted path, as it is but
// for a trailing slash: no empty segment but the last, and no "." or ".."
// segment. It is path.Clean's test without building the cleaned path,
// which took 7% of validate's time with a key (in process).
func isClean(p string) bool {
	for rest := p[1:]; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}
