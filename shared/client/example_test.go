package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

// A Client calls a modelauth app: here an httptest server standing in for
// one, answering get_token for the token-mode service "iris" and refusing
// the key-mode service "svc" with 409, as modelauth does.
func ExampleClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin-key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/services/iris/token":
			now := time.Now().Unix()
			json.NewEncoder(w).Encode(map[string]any{"accessToken": "eyJ.example.sig", "tokenType": "Bearer",
				"expiryOn": now + 3600, "refreshAfter": now + 1800})
		default:
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"Conflict","message":"service svc uses key auth, not tokens"}}`))
		}
	}))
	defer srv.Close()

	c := &client.Client{BaseURL: srv.URL + "/api", Credential: client.Static("admin-key")}
	ctx := context.Background()
	tok, err := c.GetToken(ctx, "iris")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, "token, refresh after", tok.RefreshAfter.Sub(tok.ExpiresOn.Add(-time.Hour)), "of", time.Hour)

	_, err = c.GetToken(ctx, "svc")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
	}
	// Output:
	// Bearer token, refresh after 30m0s of 1h0m0s
	// 409 Conflict
}

// NewRefreshingSource serves the cached token and fetches the next one in
// the background once RefreshAfter has come; the callers never wait for it.
func ExampleNewRefreshingSource() {
	clk := fakeclock.New(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	n := 0
	issuer := client.TokenSourceFunc(func(context.Context) (*client.Token, error) {
		n++ // one fetch at a time: no lock needed
		now := clk.Now()
		return &client.Token{AccessToken: fmt.Sprintf("token-%d", n), TokenType: "Bearer",
			ExpiresOn: now.Add(time.Hour), RefreshAfter: now.Add(30 * time.Minute)}, nil
	})
	src := client.NewRefreshingSource(issuer, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.Now = clk.Now }))
	ctx := context.Background()

	tok, _ := src.Token(ctx) // the first call waits for a fetch
	fmt.Println(tok.AccessToken)
	clk.Advance(20 * time.Minute)
	tok, _ = src.Token(ctx) // cached
	fmt.Println(tok.AccessToken)
	clk.Advance(10 * time.Minute)
	tok, _ = src.Token(ctx) // due: still the cached one, while token-2 is fetched
	fmt.Println(tok.AccessToken)
	for tok.AccessToken == "token-1" {
		time.Sleep(time.Millisecond)
		tok, _ = src.Token(ctx)
	}
	fmt.Println(tok.AccessToken)
	// Output:
	// token-1
	// token-1
	// token-1
	// token-2
}

// NewStoreSource reads the token that the prefetchtokens function keeps
// fresh in the secret store (here the embedded file store; in Azure, Key
// Vault through azurekeyvault.Open).
func ExampleNewStoreSource() {
	dir, err := os.MkdirTemp("", "modelauth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := filestore.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()

	// What prefetchtokens writes for the consumer "batch".
	now := time.Now()
	exp := now.Add(time.Hour)
	store.SetSecret(ctx, client.TokenSecret("batch"), secretstore.SetParams{
		Value: "eyJ.prefetched.sig", ContentType: client.TokenContentType, Enabled: true, Expires: &exp,
		Tags: map[string]string{
			"managed-by": "modelauth", "kind": "token", "service": "iris",
			client.TagRefreshAfter: strconv.FormatInt(now.Add(30*time.Minute).Unix(), 10),
			client.TagExpiryOn:     strconv.FormatInt(exp.Unix(), 10),
		},
	})

	src := client.NewStoreSource(store, "batch")
	tok, err := src.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.AccessToken)

	_, err = client.NewStoreSource(store, "nightly").Token(ctx)
	fmt.Println(errors.Is(err, client.ErrNoToken))
	// Output:
	// eyJ.prefetched.sig
	// true
}
