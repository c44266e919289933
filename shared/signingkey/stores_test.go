package signingkey_test

import (
	"os"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
)

// TestMain trusts the Key Vault test server's CA.
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

// stores are the secret stores the set's tests run on: the file store, and
// Key Vault through the real azsecrets client against the test server.
var stores = []string{"file", "keyvault"}

func openStore(t *testing.T, kind string, clk *fakeclock.Clock) *secretstore.Store {
	t.Helper()
	if kind == "file" {
		return newStore(t, clk)
	}
	// The server keeps real time: its Entra tokens must stay valid for
	// azidentity, which caches them by the real clock. The set's decisions
	// follow its own clock (the activated tags); the store's Created only
	// breaks ties.
	kv := keyvaulttest.NewServer(t, nil)
	st, err := azurekeyvault.Open(kv.VaultURL, kv.Credential(t), &azurekeyvault.Options{MaxRetries: azurekeyvault.DefaultMaxRetries, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: azurekeyvault.DefaultMaxRetryDelay, TryTimeout: azurekeyvault.DefaultTryTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
