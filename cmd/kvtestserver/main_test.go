package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeTempCA()
	os.Exit(code)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	caFile, envFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "kv.env")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-ca-file", caFile, "-env-file", envFile, "-tenant-id", "my-tenant"}, pw)
		pw.Close()
	}()

	// Read the env lines among the JSON log lines.
	env := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(10 * time.Second)
	for len(env) < 6 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("output ended; run: %v", <-errc)
			}
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "{") {
				env[k] = v
			}
		case <-timeout:
			t.Fatalf("no env lines; got %v", env)
		}
	}
	go func() {
		for range lines { // drain the request log
		}
	}()
	if env["SSL_CERT_FILE"] != caFile || env["AZURE_TENANT_ID"] != "my-tenant" || !strings.HasPrefix(env["KEYVAULT_URL"], "https://127.0.0.1:") || env["AZURE_AUTHORITY_HOST"] != env["KEYVAULT_URL"] {
		t.Errorf("env %v", env)
	}
	saved, err := os.ReadFile(envFile)
	if err != nil || strings.Count(string(saved), "\n") != 6 || !strings.Contains(string(saved), "AZURE_CLIENT_SECRET="+env["AZURE_CLIENT_SECRET"]) {
		t.Errorf("env file %q, %v", saved, err)
	}

	// The server is reachable with the CA file.
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("the CA file holds no certificate")
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(env["AZURE_AUTHORITY_HOST"] + "/my-tenant/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	err = json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	if err != nil || cfg["token_endpoint"] != env["AZURE_AUTHORITY_HOST"]+"/my-tenant/oauth2/v2.0/token" {
		t.Errorf("openid-configuration %v, %v", cfg, err)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the context ended")
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-addr", "0.0.0.0:0"}, {"-page-size", "100"}, {"extra"}, {"-nope"}} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded; want an error", args)
		}
	}
}

// TestRunNamedVault: -named-vault serves the vault as vault.localhost.
func TestRunNamedVault(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "kv.env")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-named-vault", "-env-file", envFile}, io.Discard) }()
	var saved []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if saved, err = os.ReadFile(envFile); err == nil && strings.Count(string(saved), "\n") == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no env file: %q", saved)
		}
	}
	if !strings.Contains(string(saved), "KEYVAULT_URL=https://vault.localhost:") || !strings.Contains(string(saved), "AZURE_AUTHORITY_HOST=https://127.0.0.1:") {
		t.Errorf("env file %q; want the vault on vault.localhost, the authority on 127.0.0.1", saved)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("run: %v", err)
	}
}
