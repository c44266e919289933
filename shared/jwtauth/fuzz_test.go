package jwtauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// FuzzVerify: Verify never panics, refuses with one of its sentinels (the
// keys can always be read here) without the token in the error, and
// accepts only a token for the service asked for that has not expired.
func FuzzVerify(f *testing.F) {
	// One authority for every execution: ES256 keys are quick to make, and
	// the clock stands still, so an unknown kid reads the store at most
	// once per worker (RefreshMinInterval).
	e := newEnv(f, signingkey.ES256)
	tok, _ := e.issue(f, service)
	valid := tok.AccessToken
	parts := strings.Split(valid, ".")

	f.Add(service, valid)
	f.Add("other-svc", valid)
	f.Add("", valid)
	// Mutations of the valid token.
	for _, m := range []string{
		valid[:len(valid)-1],
		valid + "A",
		valid + ".",
		"." + valid,
		strings.ToUpper(valid),
		parts[0] + "." + parts[1],
		parts[1] + "." + parts[0] + "." + parts[2],
		parts[0] + "." + parts[0] + "." + parts[2],
		parts[0] + ".." + parts[2],
		".." + parts[2],
		parts[0] + "." + parts[1] + ".",
		parts[0] + "=." + parts[1] + "." + parts[2],
		strings.ReplaceAll(valid, "-", "+"),
		strings.Replace(valid, ".", " .", 1),
	} {
		f.Add(service, m)
	}
	// The hostile tokens of the security table.
	for _, c := range securityCases() {
		svc := c.service
		if svc == "" {
			svc = service
		}
		f.Add(svc, c.token(f, e))
	}

	sentinels := []error{jwtauth.ErrTooLarge, jwtauth.ErrMalformed, jwtauth.ErrUnknownKey, jwtauth.ErrInvalid}
	kid := e.signer(f).Kid
	f.Fuzz(func(t *testing.T, svc, raw string) {
		c, err := e.auth.Verify(context.Background(), svc, raw)
		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("Verify(%q, %q) err = %v; want one of %v", svc, raw, err, sentinels)
			}
			if len(raw) >= 32 && strings.Contains(err.Error(), raw) {
				t.Fatalf("Verify(%q, %q): the error contains the token: %v", svc, raw, err)
			}
			if c != (jwtauth.Claims{}) {
				t.Fatalf("Verify(%q, %q) refused (%v) but returned claims %+v", svc, raw, err, c)
			}
			return
		}
		if c.Service != svc {
			t.Fatalf("Verify(%q, %q) accepted a token for service %q", svc, raw, c.Service)
		}
		if floor := e.clk.Now().Add(-leeway); !c.Expiry.After(floor) {
			t.Fatalf("Verify(%q, %q) accepted a token that expired at %v (now minus leeway %v)", svc, raw, c.Expiry, floor)
		}
		if c.Subject == "" || c.Kid != kid {
			t.Fatalf("Verify(%q, %q) accepted claims %+v; want a subject and kid %s", svc, raw, c, kid)
		}
	})
}
