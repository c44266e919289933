// Command kvtestserver runs the Key Vault test server of
// shared/keyvaulttest (an in-memory Key Vault and Entra token endpoint on
// one 127.0.0.1 TLS port) until SIGINT or SIGTERM, for running the handler
// (cmd/funchost) against "Key Vault" on one machine.
//
// It prints the environment that points modelauth at it, one KEY=value
// line each: KEYVAULT_URL, SSL_CERT_FILE, AZURE_AUTHORITY_HOST,
// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a test
// credential, valid only for this server), then logs one JSON line per
// request to stdout (never a secret value or token). Secrets live in
// memory and are lost when it stops.
//
// Usage:
//
//	kvtestserver [-addr 127.0.0.1:8443] [-ca-file kv-ca.pem] [-env-file kv.env]
//	             [-tenant-id T] [-client-id C] [-client-secret S] [-page-size N]
//	             [-named-vault]
//
// With -named-vault the vault is https://vault.localhost:<port> and its
// challenge resource https://localhost:<port>, which SDKs that parse the
// resource as a WHATWG URL (the Azure SDK for JavaScript) accept; the
// client must resolve vault.localhost to 127.0.0.1 itself (see
// keyvaulttest.Options.NamedVault).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	removeTempCA()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvtestserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kvtestserver", flag.ContinueOnError)
	addr := fs.String("addr", keyvaulttest.DefaultAddr, "listen address; the host must be 127.0.0.1, port 0 picks a free port")
	caFile := fs.String("ca-file", "", "write the test CA certificate (PEM) to this file and name it in SSL_CERT_FILE (default: a temporary file)")
	envFile := fs.String("env-file", "", "also write the KEY=value lines to this file (mode 0600)")
	tenantID := fs.String("tenant-id", "", "the tenant ID (default: random)")
	clientID := fs.String("client-id", "", "the client ID (default: random)")
	clientSecret := fs.String("client-secret", "", "the client secret (default: random)")
	pageSize := fs.Int("page-size", keyvaulttest.DefaultPageSize, "versions per page of a listing without maxresults")
	namedVault := fs.Bool("named-vault", false, "serve the vault as https://"+keyvaulttest.LocalhostVault+":<port> (challenge resource https://localhost:<port>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	log := slog.New(slog.NewJSONHandler(stdout, nil))
	srv, err := keyvaulttest.Start(&keyvaulttest.Options{
		Addr:         *addr,
		TenantID:     *tenantID,
		ClientID:     *clientID,
		ClientSecret: *clientSecret,
		PageSize:     *pageSize,
		NamedVault:   *namedVault,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	env := srv.Env()
	if *caFile != "" {
		if err := copyCA(*caFile); err != nil {
			return err
		}
		for i, line := range env {
			if strings.HasPrefix(line, "SSL_CERT_FILE=") {
				env[i] = "SSL_CERT_FILE=" + *caFile
			}
		}
	}
	lines := strings.Join(env, "\n") + "\n"
	if *envFile != "" {
		if err := os.WriteFile(*envFile, []byte(lines), 0o600); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(stdout, lines); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// copyCA writes the process's test CA certificate to path.
func copyCA(path string) error {
	src, err := keyvaulttest.CertFile()
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem, 0o644)
}

// removeTempCA removes the temporary directory of the test CA's file, at
// the end of the process: every server of the process uses that file.
func removeTempCA() {
	if f, err := keyvaulttest.CertFile(); err == nil {
		if dir := filepath.Dir(f); strings.HasPrefix(filepath.Base(dir), "keyvaulttest-ca-") {
			os.RemoveAll(dir)
		}
	}
}
