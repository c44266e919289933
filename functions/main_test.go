package functions

import (
	"os"
	"testing"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestMain trusts the test servers' CA (SSL_CERT_FILE) before the first
// TLS connection: the app reaches the Key Vault and Azure ML test servers
// with the clients it builds itself, as in production.
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }
