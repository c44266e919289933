package client_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

// putToken writes a consumer's token as the prefetchtokens function does.
func putToken(t *testing.T, st *secretstore.Store, consumer, value string, refreshAfter, exp time.Time) {
	t.Helper()
	_, err := st.SetSecret(context.Background(), client.TokenSecret(consumer), secretstore.SetParams{
		Value: value, ContentType: client.TokenContentType, Enabled: true, Expires: &exp,
		Tags: map[string]string{
			"managed-by": "modelauth", "kind": "token", "service": "iris",
			client.TagRefreshAfter: strconv.FormatInt(refreshAfter.Unix(), 10),
			client.TagExpiryOn:     strconv.FormatInt(exp.Unix(), 10),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openStore opens a file store on the bubble's clock.
func openStore(t *testing.T) *secretstore.Store {
	t.Helper()
	st, err := filestore.Open(t.TempDir(), &filestore.Options{Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestTokenSecret(t *testing.T) {
	if got := client.TokenSecret("batch"); got != "tok-batch" {
		t.Errorf(`TokenSecret("batch") = %q; want "tok-batch"`, got)
	}
}

// TestStoreSourceReadsCachesRereads: the source serves what it read until
// its refreshAfter, then reads the store again in the background.
func TestStoreSourceReadsCachesRereads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t)
		ctx := context.Background()
		now := time.Now()
		putToken(t, st, "batch", "eyJ.one.sig", now.Add(30*time.Minute), now.Add(time.Hour))
		src := client.NewStoreSource(st, "batch")
		get := func(want string) {
			t.Helper()
			tok, err := src.Token(ctx)
			if err != nil || tok.AccessToken != want {
				t.Fatalf("at %v: Token() = %v, %v; want %q", time.Since(now), tok, err, want)
			}
			if !tok.ExpiresOn.Equal(now.Add(time.Hour).Truncate(time.Second)) && want == "eyJ.one.sig" {
				t.Fatalf("ExpiresOn = %v", tok.ExpiresOn)
			}
		}
		get("eyJ.one.sig")
		// The prefetch writes the next token; until refreshAfter the source
		// keeps the one it read without reading the store.
		later := now.Add(20 * time.Minute)
		putToken(t, st, "batch", "eyJ.two.sig", later.Add(30*time.Minute), later.Add(time.Hour))
		time.Sleep(29 * time.Minute)
		get("eyJ.one.sig")
		synctest.Wait()
		get("eyJ.one.sig")
		// Past refreshAfter: the first call still gets the cached token and
		// starts the read; the next gets the new one.
		time.Sleep(time.Minute)
		get("eyJ.one.sig")
		synctest.Wait()
		get("eyJ.two.sig")
	})
}

// TestStoreSourceLatePrefetch: past refreshAfter with no new token in the
// store, the source keeps serving the valid one, and once the prefetch
// writes the new one the source has it within MinRetry.
func TestStoreSourceLatePrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t)
		ctx := context.Background()
		now := time.Now()
		putToken(t, st, "batch", "eyJ.one.sig", now.Add(30*time.Minute), now.Add(time.Hour))
		src := client.NewStoreSource(st, "batch", &client.RefreshOptions{MinRetry: time.Minute})
		src.Token(ctx)
		time.Sleep(40 * time.Minute)
		for range 60 {
			if tok, err := src.Token(ctx); err != nil || tok.AccessToken != "eyJ.one.sig" {
				t.Fatalf("Token() = %v, %v; want the valid stored token", tok, err)
			}
			time.Sleep(time.Second)
		}
		written := time.Now()
		putToken(t, st, "batch", "eyJ.two.sig", written.Add(30*time.Minute), written.Add(time.Hour))
		for {
			tok, err := src.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "eyJ.two.sig" {
				break
			}
			time.Sleep(time.Second)
		}
		if d := time.Since(written); d > time.Minute+time.Second {
			t.Errorf("the new token was served %v after it was written; want within MinRetry (1m)", d)
		}
	})
}

// TestStoreSourceErrors: a missing, expired or malformed stored token is
// an error wrapping ErrNoValidToken and the matching sentinel.
func TestStoreSourceErrors(t *testing.T) {
	tests := []struct {
		name    string
		put     func(t *testing.T, st *secretstore.Store)
		wantErr error
	}{
		{"missing", func(*testing.T, *secretstore.Store) {}, client.ErrNoToken},
		{"expired", func(t *testing.T, st *secretstore.Store) {
			now := time.Now()
			putToken(t, st, "batch", "eyJ.old.sig", now.Add(-time.Hour), now.Add(-time.Minute))
		}, client.ErrTokenExpired},
		{"bad tag", func(t *testing.T, st *secretstore.Store) {
			exp := time.Now().Add(time.Hour)
			st.SetSecret(context.Background(), "tok-batch", secretstore.SetParams{Value: "eyJ.x.sig", Enabled: true, Expires: &exp,
				Tags: map[string]string{client.TagRefreshAfter: "soon"}})
		}, client.ErrBadStoredToken},
		{"disabled", func(t *testing.T, st *secretstore.Store) {
			now := time.Now()
			putToken(t, st, "batch", "eyJ.x.sig", now.Add(30*time.Minute), now.Add(time.Hour))
			off := false
			if _, err := st.UpdateProperties(context.Background(), "tok-batch", "", secretstore.Update{Enabled: &off}); err != nil {
				t.Fatal(err)
			}
		}, client.ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := openStore(t)
				tt.put(t, st)
				tok, err := client.NewStoreSource(st, "batch").Token(context.Background())
				if tok != nil || !errors.Is(err, tt.wantErr) || !errors.Is(err, client.ErrNoValidToken) {
					t.Fatalf("Token() = %v, %v; want ErrNoValidToken and %v", tok, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "eyJ.") {
					t.Errorf("the error holds the token: %v", err)
				}
				if !strings.Contains(err.Error(), "tok-batch") {
					t.Errorf("the error does not name the secret: %v", err)
				}
			})
		})
	}
}

// TestStoreSourceStoreDown: while the store fails, the still-valid token
// read before is served; once it has expired, the store's error.
func TestStoreSourceStoreDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		st, err := filestore.Open(dir, &filestore.Options{Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		now := time.Now()
		putToken(t, st, "batch", "eyJ.one.sig", now.Add(30*time.Minute), now.Add(time.Hour))
		log, buf := logtest.New()
		src := client.NewStoreSource(st, "batch", &client.RefreshOptions{Logger: log})
		if _, err := src.Token(ctx); err != nil {
			t.Fatal(err)
		}
		st.Close() // every read fails from now on
		time.Sleep(31 * time.Minute)
		for range 20 {
			if tok, err := src.Token(ctx); err != nil || tok.AccessToken != "eyJ.one.sig" {
				t.Fatalf("store down, token valid: %v, %v; want the cached token", tok, err)
			}
			synctest.Wait()
			time.Sleep(time.Minute)
		}
		if n := strings.Count(buf.String(), "token_refresh_failed"); n < 10 || n > 20 {
			t.Errorf("%d failed reads logged in 20 minutes; want one per MinRetry-spaced try", n)
		}
		time.Sleep(10 * time.Minute) // expired
		tok, err := src.Token(ctx)
		if tok != nil || !errors.Is(err, client.ErrNoValidToken) || secretstore.Code(err) != secretstore.Unavailable {
			t.Fatalf("store down, token expired: %v, %v; want ErrNoValidToken with the store's Unavailable", tok, err)
		}
		if strings.Contains(buf.String(), "eyJ.") {
			t.Error("the log holds the token")
		}
	})
}

func TestStoredToken(t *testing.T) {
	exp := time.Unix(1_900_003_600, 0)
	tests := []struct {
		name             string
		sec              secretstore.Secret
		wantExp, wantRef time.Time
		wantErr          error
	}{
		{"tags", secretstore.Secret{Value: "v", Properties: secretstore.Properties{Tags: map[string]string{
			client.TagRefreshAfter: "1900001800", client.TagExpiryOn: "1900003600"}}}, exp, time.Unix(1_900_001_800, 0), nil},
		{"expiry from the version", secretstore.Secret{Value: "v", Properties: secretstore.Properties{Expires: &exp}}, exp, time.Time{}, nil},
		{"tag over the version", secretstore.Secret{Value: "v", Properties: secretstore.Properties{Expires: new(exp.Add(time.Hour)),
			Tags: map[string]string{client.TagExpiryOn: "1900003600"}}}, exp, time.Time{}, nil},
		{"empty", secretstore.Secret{Properties: secretstore.Properties{Expires: &exp}}, time.Time{}, time.Time{}, client.ErrBadStoredToken},
		{"no expiry", secretstore.Secret{Value: "v"}, time.Time{}, time.Time{}, client.ErrBadStoredToken},
		{"bad expiryOn", secretstore.Secret{Value: "v", Properties: secretstore.Properties{Tags: map[string]string{client.TagExpiryOn: "2030-01-01"}}}, time.Time{}, time.Time{}, client.ErrBadStoredToken},
		{"bad refreshAfter", secretstore.Secret{Value: "v", Properties: secretstore.Properties{Expires: &exp, Tags: map[string]string{client.TagRefreshAfter: "-5"}}}, time.Time{}, time.Time{}, client.ErrBadStoredToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.StoredToken(tt.sec)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("StoredToken() error = %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.AccessToken != "v" || got.TokenType != "Bearer" || !got.ExpiresOn.Equal(tt.wantExp) || !got.RefreshAfter.Equal(tt.wantRef) {
				t.Errorf("StoredToken() = %+v; want expiry %v, refreshAfter %v", got, tt.wantExp, tt.wantRef)
			}
		})
	}
}
