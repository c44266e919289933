package authn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/bearer"
)

func TestFromHeader(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		wantErr error
	}{
		{"key", []string{"Bearer abc"}, nil},
		{"scheme case", []string{"bEARER a.b.c"}, nil},
		{"none", nil, bearer.ErrMissing},
		{"empty", []string{""}, bearer.ErrMissing},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, bearer.ErrMissing},
		{"two tokens", []string{"Bearer a b"}, bearer.ErrMalformed},
		{"two headers", []string{"Bearer a", "Bearer a"}, bearer.ErrMalformed},
		{"two empty headers", []string{"", ""}, bearer.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromHeader(tt.values).Err(); got != tt.wantErr {
				t.Errorf("FromHeader(%q).Err() = %v; want %v", tt.values, got, tt.wantErr)
			}
		})
	}
	if got := (Credential{}).Err(); got != bearer.ErrMissing {
		t.Errorf("Credential{}.Err() = %v; want %v", got, bearer.ErrMissing)
	}
}

// TestCredentialHidden: no way of printing or logging a credential shows it.
func TestCredentialHidden(t *testing.T) {
	const secret = "s3cr3tKeyValue"
	for _, values := range [][]string{{"Bearer " + secret}, {"Bearer " + secret + " x"}, {"Bearer " + secret, "Bearer " + secret}} {
		c := FromHeader(values)
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cred", c)
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cred", c)
		out := fmt.Sprintf("%v %+v %#v %s", c, c, c, c) + logs.String()
		if strings.Contains(out, secret) {
			t.Errorf("FromHeader(%q) printed as %s", values, out)
		}
	}
	if got := FromHeader([]string{"Bearer " + secret}).String(); got != "Bearer [redacted]" {
		t.Errorf("String() = %q", got)
	}
}

// TestFailureIsChallenger: apierror answers a Failure, even wrapped, with
// its challenge, and one without a challenge with none.
func TestFailureIsChallenger(t *testing.T) {
	s, _, _, _ := setup(t)
	_, f := s.Authenticate(context.Background(), "iris", FromHeader(nil))
	if f == nil {
		t.Fatal("Authenticate without credentials succeeded")
	}
	for name, err := range map[string]error{"failure": f, "wrapped": fmt.Errorf("validate: %w", f)} {
		rec := httptest.NewRecorder()
		apierror.Write(rec, nil, err)
		if got := rec.Header().Get("WWW-Authenticate"); rec.Code != http.StatusUnauthorized || got != `Bearer realm="iris"` {
			t.Errorf("%s: answered %d with WWW-Authenticate %q; want 401 %q", name, rec.Code, got, `Bearer realm="iris"`)
		}
	}
	_, f = s.Authenticate(context.Background(), "nosuch", FromHeader(nil))
	rec := httptest.NewRecorder()
	f.Write(rec, nil)
	if _, ok := rec.Header()["Www-Authenticate"]; ok || rec.Code != http.StatusNotFound {
		t.Errorf("unknown service: answered %d with %v; want 404 without a challenge", rec.Code, rec.Header())
	}
	if !errors.As(error(f), new(apierror.Challenger)) {
		t.Error("a Failure is not an apierror.Challenger")
	}
}

// An HTTP function reads the credential from its request, a Lambda
// authorizer from its event; both hand authn the same Credential.
func ExampleFromHeader() {
	r := httptest.NewRequest("GET", "/api/services/iris/validate", nil)
	r.Header.Add("Authorization", "Bearer k3y")
	fmt.Println(FromHeader(r.Header["Authorization"]), FromHeader(r.Header["Authorization"]).Err())

	r.Header.Add("Authorization", "Bearer k3y")
	fmt.Println(FromHeader(r.Header["Authorization"]))

	event := map[string]string{} // no Authorization header
	fmt.Println(FromHeader([]string{event["authorization"]}))
	// Output:
	// Bearer [redacted] <nil>
	// malformed
	// missing
}
