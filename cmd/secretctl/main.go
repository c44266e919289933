// Command secretctl reads a secret from the store the function app uses,
// with the same settings (KEYVAULT_URL, else MODELAUTH_DATA_DIR): for
// example the administrator key that the app creates at its first start:
//
//	MODELAUTH_DATA_DIR=.modelauth secretctl get admin-key
//
// It prints only the value, on stdout. With Key Vault in Azure the Azure
// CLI does the same: az keyvault secret show --vault-name <vault> --name admin-key.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "secretctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "get" {
		return errors.New("usage: secretctl get <secret-name>")
	}
	s, err := config.LoadSettings(getenv)
	if err != nil {
		return err
	}
	if _, err := os.Stat(s.DataDir); s.KeyVaultURL == "" && err != nil {
		return fmt.Errorf("no file store at %s (set MODELAUTH_DATA_DIR; `make run` creates it): %w", s.DataDir, err)
	}
	store, err := functions.OpenStore(s)
	if err != nil {
		return err
	}
	defer store.Close()
	sec, err := store.GetSecret(ctx, args[1], "")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, sec.Value)
	return err
}
