package keyvaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// caValidity bounds the test CA and its server certificate: long enough for
// a kvtestserver left running, short enough to be obviously disposable.
const caValidity = 30 * 24 * time.Hour

// processCA is the one test CA of the process and the server certificate
// it issued. Go reads SSL_CERT_FILE once per process, when it first loads
// the system roots, so every server of the process must be trusted through
// the same CA file.
var processCA struct {
	once     sync.Once
	certFile string
	leaf     tls.Certificate
	err      error
}

// CertFile returns the path of a PEM file holding the certificate of the
// process's test CA, which issued the certificate of every [Server] in the
// process (for 127.0.0.1, ::1, localhost and vault.localhost). The CA and the file are
// created on the first call; the file is in a new directory of its own in
// the system's temporary directory, filepath.Dir(file), which the program
// may remove when it no longer starts servers (a TestMain after m.Run).
//
// Clients trust the servers by setting SSL_CERT_FILE to this path before
// the process makes its first TLS connection (Go reads SSL_CERT_FILE once),
// typically in TestMain. [Server.Env] includes it.
//
// CertFile is safe for concurrent use.
func CertFile() (string, error) {
	loadCA()
	return processCA.certFile, processCA.err
}

// ServerCertificate returns the certificate (with its private key) that
// the process's test CA ([CertFile]) issued for 127.0.0.1, ::1, localhost
// and vault.localhost: the certificate of every [Server], for another test
// server of the process (such as package amltest's) that clients must
// trust through the same SSL_CERT_FILE.
func ServerCertificate() (tls.Certificate, error) { return serverCertificate() }

func serverCertificate() (tls.Certificate, error) {
	loadCA()
	return processCA.leaf, processCA.err
}

func loadCA() {
	processCA.once.Do(func() {
		processCA.certFile, processCA.leaf, processCA.err = newCA()
		if processCA.err != nil {
			processCA.err = fmt.Errorf("keyvaulttest: test CA: %w", processCA.err)
		}
	})
}

// newCA makes a CA, a server certificate issued by it, and writes the CA
// certificate to a new temporary file.
func newCA() (string, tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "modelauth keyvaulttest CA", Organization: []string{"modelauth test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", tls.Certificate{}, err
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1", Organization: []string{"modelauth test"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(caValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost", LocalhostVault},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	leaf := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}

	dir, err := os.MkdirTemp("", "keyvaulttest-ca-")
	if err != nil {
		return "", tls.Certificate{}, err
	}
	file := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(file, pemBytes, 0o644); err != nil {
		return "", tls.Certificate{}, err
	}
	return file, leaf, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// RunTests runs a test binary's tests trusting this process's test CA:
// it sets SSL_CERT_FILE before any TLS connection (Go reads it once),
// runs m, removes the CA's folder, and returns the exit code. Call it from
// TestMain: os.Exit(keyvaulttest.RunTests(m)).
func RunTests(m interface{ Run() int }) int {
	f, err := CertFile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyvaulttest:", err)
		return 1
	}
	os.Setenv("SSL_CERT_FILE", f)
	defer os.RemoveAll(filepath.Dir(f))
	return m.Run()
}
