package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/oidc"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

func setup(t *testing.T) (*Services, *Callers, keyring.Keys, *secretstore.Store) {
	t.Helper()
	cfg, err := config.Parse([]byte(`{"services":[
		{"name":"iris"},{"name":"open","authMode":"none"},{"name":"tok","authMode":"token"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	store, err := filestore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// The keys exist, as the rotator creates them.
	rot := &rotation.Rotator{Store: store, Policy: func(string) rotation.Policy { return rotation.Policy{Period: rotation.DefaultPeriod} }}
	if err := rot.Provision(context.Background(), "iris"); err != nil {
		t.Fatal(err)
	}
	ring := keyring.New(store, []string{"iris"}, nil)
	keys, err := ring.Get(context.Background(), "iris")
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.EnsureAdminKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &Services{Config: cfg, Keys: ring}, &Callers{Keys: ring}, keys, store
}

func TestAuthenticate(t *testing.T) {
	s, _, keys, _ := setup(t)
	tests := []struct {
		name      string
		service   string
		auth      []string
		want      Identity
		code      apierror.Code
		challenge string
	}{
		{"primary", "iris", []string{"Bearer " + keys.PrimaryKey}, Identity{Service: "iris", Subject: "key:Primary", AuthType: TypeKey, KeyType: "Primary"}, "", ""},
		{"secondary", "iris", []string{"bearer " + keys.SecondaryKey}, Identity{Service: "iris", Subject: "key:Secondary", AuthType: TypeKey, KeyType: "Secondary"}, "", ""},
		{"none mode without credentials", "open", nil, Identity{Service: "open", Subject: "anonymous", AuthType: TypeNone}, "", ""},
		{"none mode ignores garbage", "open", []string{"Bearer a b"}, Identity{Service: "open", Subject: "anonymous", AuthType: TypeNone}, "", ""},
		{"missing", "iris", nil, Identity{}, apierror.Unauthorized, `Bearer realm="iris"`},
		{"basic", "iris", []string{"Basic Zm9vOmJhcg=="}, Identity{}, apierror.Unauthorized, `Bearer realm="iris"`},
		{"wrong", "iris", []string{"Bearer " + strings.Repeat("A", 43)}, Identity{}, apierror.Unauthorized, `Bearer realm="iris", error="invalid_token", error_description="the key is not valid"`},
		{"jwt-shaped", "iris", []string{"Bearer " + keys.PrimaryKey + ".x"}, Identity{}, apierror.Unauthorized, `Bearer realm="iris", error="invalid_token", error_description="this service takes keys, not tokens"`},
		{"malformed", "iris", []string{"Bearer " + keys.PrimaryKey + " extra"}, Identity{}, apierror.BadRequest, `Bearer realm="iris", error="invalid_request", error_description="malformed Authorization header"`},
		{"two headers", "iris", []string{"Bearer " + keys.PrimaryKey, "Bearer " + keys.PrimaryKey}, Identity{}, apierror.BadRequest, `error="invalid_request"`},
		{"token mode refuses a key", "tok", []string{"Bearer " + keys.PrimaryKey}, Identity{}, apierror.Unauthorized, `error="invalid_token"`},
		{"token mode missing", "tok", nil, Identity{}, apierror.Unauthorized, `Bearer realm="tok"`},
		{"unknown service", "nosuch", []string{"Bearer " + keys.PrimaryKey}, Identity{}, apierror.NotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f := s.Authenticate(context.Background(), tt.service, FromHeader(tt.auth))
			if tt.code == "" {
				if f != nil || got.Service != tt.want.Service || got.Subject != tt.want.Subject ||
					got.AuthType != tt.want.AuthType || got.KeyType != tt.want.KeyType {
					t.Fatalf("Authenticate = %+v, %v; want %+v", got, f, tt.want)
				}
				return
			}
			if f == nil {
				t.Fatalf("Authenticate = %+v; want a %s failure", got, tt.code)
			}
			if f.Err.Code != tt.code || !strings.Contains(f.Challenge, tt.challenge) {
				t.Errorf("failure = %s %q; want %s %q", f.Err.Code, f.Challenge, tt.code, tt.challenge)
			}
			if tt.challenge == `Bearer realm="iris"` && strings.Contains(f.Challenge, "error=") {
				t.Errorf("challenge without credentials carries an error: %q", f.Challenge)
			}
			if strings.Contains(f.Error()+f.Challenge, keys.PrimaryKey) {
				t.Errorf("the failure repeats the key")
			}
		})
	}
}

func TestStoreDownIsUnavailable(t *testing.T) {
	s, _, keys, store := setup(t)
	fresh := &Services{Config: s.Config, Keys: keyring.New(store, []string{"iris"}, nil)}
	store.Close()
	_, f := fresh.Authenticate(context.Background(), "iris", FromHeader([]string{"Bearer " + keys.PrimaryKey}))
	if f == nil || f.Err.Code != apierror.Unavailable || f.Challenge != "" {
		t.Fatalf("with the store down: %+v; want Unavailable without a challenge", f)
	}
	if !errors.Is(f, keyring.ErrUnavailable) {
		t.Errorf("the cause is lost: %v", f)
	}
	rec := httptest.NewRecorder()
	f.Write(rec, nil)
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "secretstore") {
		t.Errorf("written as %d %s", rec.Code, rec.Body)
	}
}

func TestAdmin(t *testing.T) {
	s, admin, keys, store := setup(t)
	sec, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, f := admin.Authenticate(context.Background(), FromHeader([]string{"Bearer " + sec.Value})); f != nil || c.Subject != "admin" {
		t.Fatalf("admin key: %+v, %v", c, f)
	}
	for _, auth := range [][]string{nil, {"Bearer " + keys.PrimaryKey}, {"Bearer x y"}} {
		if _, f := admin.Authenticate(context.Background(), FromHeader(auth)); f == nil {
			t.Errorf("admin accepted %q", auth)
		}
	}
	// The admin key is not a service key.
	if _, f := s.Authenticate(context.Background(), "iris", FromHeader([]string{"Bearer " + sec.Value})); f == nil {
		t.Error("the admin key passed as a service key")
	}
}

func TestSetHeadersReplaces(t *testing.T) {
	h := http.Header{}
	h.Set("X-ModelAuth-Subject", "forged")
	h.Set("X-ModelAuth-Key-Type", "forged")
	SetHeaders(h, Identity{Service: "s", Subject: "anonymous", AuthType: TypeNone})
	if got := h.Values(HeaderSubject); len(got) != 1 || got[0] != "anonymous" {
		t.Errorf("Subject = %q", got)
	}
	if got := h.Values(HeaderKeyType); len(got) != 1 || got[0] != NotApplicable {
		t.Errorf("Key-Type = %q; want %q alone (sent, not dropped)", got, NotApplicable)
	}
	SetHeaders(h, Identity{Service: "s", Subject: "key:Primary", AuthType: TypeKey, KeyType: "Primary"})
	if h.Get(HeaderKeyType) != "Primary" || h.Get(HeaderService) != "s" || h.Get(HeaderAuthType) != "key" {
		t.Errorf("headers = %v", h)
	}
}

// FuzzIdentityJSON: AppendJSON writes exactly what encoding/json writes.
func FuzzIdentityJSON(f *testing.F) {
	f.Add("iris", "key:Primary", "key", "Primary")
	f.Add("s", "user <a@b> & \"c\"", "token", "")
	f.Add("s", "\x00\u2028é", "none", "\\")
	f.Fuzz(func(t *testing.T, service, subject, authType, keyType string) {
		id := Identity{Service: service, Subject: subject, AuthType: authType, KeyType: keyType}
		want, err := json.Marshal(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := id.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON = %s; want %s", got, want)
		}
		if got := newEncoded(id).json; string(got) != string(want)+"\n" {
			t.Fatalf("prepared body = %s; want %s and a newline", got, want)
		}
		if got := (Identity{Service: service, Subject: subject, AuthType: authType, KeyType: keyType, enc: newEncoded(id)}).AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON of a prepared identity = %s; want %s", got, want)
		}
		if got := id.Body(); string(got) != string(want)+"\n" {
			t.Fatalf("Body = %s; want %s and a newline", got, want)
		}
	})
}

// countingVerifier is an ExternalVerifier that accepts every token, as
// the subject its text names, and counts its calls.
type countingVerifier struct{ calls int }

func (v *countingVerifier) Verify(_ context.Context, raw string, _ []string) (*oidc.Claims, error) {
	v.calls++
	return &oidc.Claims{Subject: raw[:strings.IndexByte(raw, '.')], Expiry: time.Now().Add(time.Hour)}, nil
}

// TestTokensRememberedFromTheSecondUse: a token is verified on its first
// and second use and answered from the cache after (tokencache.Offer); a
// stream of tokens each used once leaves the cache empty.
func TestTokensRememberedFromTheSecondUse(t *testing.T) {
	cfg, err := config.Parse([]byte(`{"services":[{"name":"ent","authMode":"entra","audience":"api://ent"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	v := &countingVerifier{}
	s := &Services{Config: cfg, Entra: v}
	use := func(tok string) {
		t.Helper()
		id, f := s.Authenticate(t.Context(), "ent", FromHeader([]string{"Bearer " + tok}))
		if f != nil || id.Subject != tok[:strings.IndexByte(tok, '.')] {
			t.Fatalf("Authenticate(%s) = %+v, %v", tok, id, f)
		}
	}
	for i := range 5 {
		use("alice.b.c")
		if want := min(i+1, 2); v.calls != want {
			t.Fatalf("after %d uses: %d verifications; want %d", i+1, v.calls, want)
		}
	}
	for i := range 1000 {
		use(fmt.Sprintf("once%d.b.c", i))
	}
	if n := s.tokens.Len(); n != 1 {
		t.Fatalf("the cache holds %d tokens after tokens used once; want 1 (alice's)", n)
	}
}
