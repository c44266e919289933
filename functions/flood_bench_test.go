package functions

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
)

// Flood parameters (issue 14 item 5).
const (
	floodServices = 100
	floodWindow   = 10 * time.Second
	floodWorkers  = 4
	// floodTarget is the most reads beyond the TTL's the flood may cost:
	// one per KEY_REFRESH_MIN_INTERVAL (1s) for the instance over 10s.
	floodTarget = 10
)

var (
	floodPageSize = flag.Int("flood-page-size", keyvaulttest.MaxPageSize,
		"items per listing page of BenchmarkWrongKeyFlood's Key Vault test server (Key Vault's: 25)")
	floodSettled = flag.Bool("flood-settled", false,
		"BenchmarkWrongKeyFlood waits (up to a slot) until the slot holding the provisioning records has closed")
)

// vaultReads counts the vault reads the App's Key Vault client makes, by
// wrapping its transport: GET /secrets/{name}[/{version}] (gets) and GET
// /secrets/{name}/versions with its next pages (list pages; a page without
// $skiptoken starts a listing), split into the journal's secrets and the
// others. Challenges (401 before a token) are not reads and are not
// counted; the server's own Stats are reported beside as a cross-check.
type vaultReads struct {
	next http.RoundTripper

	journalGets, journalPages, journalListings atomic.Int64
	otherGets, otherPages, otherListings       atomic.Int64
}

type readCounts struct {
	journalGets, journalPages, journalListings int64
	otherGets, otherPages, otherListings       int64
}

func (c readCounts) journal() int64 { return c.journalGets + c.journalPages }
func (c readCounts) other() int64   { return c.otherGets + c.otherPages }

func (c *vaultReads) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode == http.StatusUnauthorized {
		return resp, err
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/secrets/")
	if !ok {
		return resp, err
	}
	parts := strings.Split(rest, "/")
	isJournal := strings.HasPrefix(strings.ToLower(parts[0]), journal.Prefix)
	switch {
	case len(parts) == 2 && parts[1] == "versions":
		first := req.URL.Query().Get("$skiptoken") == ""
		if isJournal {
			c.journalPages.Add(1)
			if first {
				c.journalListings.Add(1)
			}
		} else {
			c.otherPages.Add(1)
			if first {
				c.otherListings.Add(1)
			}
		}
	case len(parts) <= 2:
		if isJournal {
			c.journalGets.Add(1)
		} else {
			c.otherGets.Add(1)
		}
	}
	return resp, err
}

func (c *vaultReads) snapshot() readCounts {
	return readCounts{
		journalGets: c.journalGets.Load(), journalPages: c.journalPages.Load(), journalListings: c.journalListings.Load(),
		otherGets: c.otherGets.Load(), otherPages: c.otherPages.Load(), otherListings: c.otherListings.Load(),
	}
}

func (c readCounts) sub(d readCounts) readCounts {
	return readCounts{
		journalGets: c.journalGets - d.journalGets, journalPages: c.journalPages - d.journalPages, journalListings: c.journalListings - d.journalListings,
		otherGets: c.otherGets - d.otherGets, otherPages: c.otherPages - d.otherPages, otherListings: c.otherListings - d.otherListings,
	}
}

// trustingClient is an HTTP client that trusts the test server's CA, so
// that the benchmark need not set SSL_CERT_FILE before the process's
// first TLS connection (the functions tests have no TestMain).
func trustingClient(b *testing.B) *http.Client {
	b.Helper()
	f, err := keyvaulttest.CertFile()
	if err != nil {
		b.Fatal(err)
	}
	pem, err := os.ReadFile(f)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		b.Fatalf("no certificate in %s", f)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 64
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// BenchmarkWrongKeyFlood is issue 14 item 5: one handler over 100
// key-mode services on the Key Vault test server, random wrong keys over
// random services for 10s of real time. It reports the vault reads in
// that window against what the TTL alone costs (one journal slot listing
// per slot); the target is beyond-ttl <= 10, one read per
// KEY_REFRESH_MIN_INTERVAL for the instance. Run it with -benchtime=1x.
func BenchmarkWrongKeyFlood(b *testing.B) {
	kv := keyvaulttest.NewServer(b, &keyvaulttest.Options{PageSize: *floodPageSize})
	client := trustingClient(b)
	reads := &vaultReads{next: client.Transport}

	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost},
				Transport: client,
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		b.Fatal(err)
	}
	kvOpts := azurekeyvault.DefaultOptions()
	kvOpts.Transport = &http.Client{Transport: reads}
	store, err := azurekeyvault.Open(kv.VaultURL, cred, &kvOpts)
	if err != nil {
		b.Fatal(err)
	}

	dir := b.TempDir()
	names := make([]string, floodServices)
	svcs := make([]string, floodServices)
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
		svcs[i] = fmt.Sprintf(`{"name":%q}`, names[i])
	}
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(`{"services":[`+strings.Join(svcs, ",")+`]}`), 0o600); err != nil {
		b.Fatal(err)
	}
	s := config.DefaultSettings() // KEY_CACHE_TTL 30s, KEY_REFRESH_MIN_INTERVAL 1s
	s.ConfigPath, s.DataDir, s.KeyVaultURL, s.AuthorityHost = cfgPath, filepath.Join(dir, "data"), kv.VaultURL, kv.AuthorityHost
	a, err := NewAppWithStore(b.Context(), s, store, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	select {
	case <-a.StoreReady():
	case <-time.After(30 * time.Second):
		b.Fatal("the store did not become ready in 30s")
	}

	srv := httptest.NewServer(a.Handler())
	b.Cleanup(srv.Close)
	hc := srv.Client()
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * floodWorkers

	// Ready: every service's keys provisioned, and each answers its own
	// key 200, outside the measured window.
	for _, name := range names {
		keys, err := a.Keys.Get(b.Context(), name)
		if err != nil {
			b.Fatalf("keys of %s: %v", name, err)
		}
		if code := floodGet(b, hc, srv.URL, name, keys.PrimaryKey); code != http.StatusOK {
			b.Fatalf("%s with its primary key answered %d", name, code)
		}
	}

	slot := journal.SlotFor(s.KeyCacheTTL)
	if *floodSettled {
		// Provisioning wrote its records (300 of them) into the open
		// slot: wait until that slot has closed and been polled, so that
		// the window's open slot holds none of them.
		ms := slot.Milliseconds()
		end := time.UnixMilli((time.Now().UnixMilli()/ms + 1) * ms)
		wait := time.Until(end.Add(journal.Grace(slot) + time.Second))
		b.Logf("waiting %v for the provisioning slot to close", wait.Round(time.Millisecond))
		time.Sleep(wait)
		if _, err := a.Journal.Reload(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	ttlBaseline := float64(floodWindow) / float64(slot)

	for b.Loop() {
		r0, st0 := reads.snapshot(), kv.Stats()
		var (
			sent    atomic.Int64
			wrong   atomic.Int64
			wg      sync.WaitGroup
			failMu  sync.Mutex
			failure string
		)
		start := time.Now()
		deadline := start.Add(floodWindow)
		for range floodWorkers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					code := floodGet(b, hc, srv.URL, names[mrand.IntN(len(names))], randomKey())
					sent.Add(1)
					if code != http.StatusUnauthorized {
						wrong.Add(1)
						failMu.Lock()
						if failure == "" {
							failure = fmt.Sprintf("a wrong key answered %d, not 401", code)
						}
						failMu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		r, st1 := reads.snapshot().sub(r0), kv.Stats()
		if failure != "" {
			b.Fatalf("%s (%d of %d requests)", failure, wrong.Load(), sent.Load())
		}

		total := float64(r.journal() + r.other())
		b.ReportMetric(total, "vault-reads")
		b.ReportMetric(float64(r.journal()), "journal-reads")
		b.ReportMetric(float64(r.other()), "other-reads")
		b.ReportMetric(float64(r.journalListings+r.otherListings), "listings")
		b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "requests/s")
		b.ReportMetric(ttlBaseline, "ttl-reads")
		b.ReportMetric(total-ttlBaseline, "beyond-ttl")
		// The server's own counters (every page, every get), as a cross-check.
		b.ReportMetric(float64((st1.Get+st1.List)-(st0.Get+st0.List)), "kv-get+list")
		b.Logf("page size %d, settled %v: %d wrong keys in %v (%d workers): %v vault reads "+
			"(journal: %d gets, %d pages in %d listings; other: %d gets, %d pages in %d listings); "+
			"TTL alone %.2f (slot %v), beyond TTL %.2f (target <= %d)",
			*floodPageSize, *floodSettled, sent.Load(), elapsed.Round(time.Millisecond), floodWorkers, total,
			r.journalGets, r.journalPages, r.journalListings, r.otherGets, r.otherPages, r.otherListings,
			ttlBaseline, slot, total-ttlBaseline, floodTarget)
	}
}

// floodGet sends one validation of service with key and returns the
// status; a transport failure fails the benchmark.
func floodGet(b *testing.B, hc *http.Client, base, service, key string) int {
	req, err := http.NewRequest(http.MethodGet, base+RoutePrefix+"/services/"+service+"/validate", nil)
	if err != nil {
		b.Error(err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// randomKey is a random 43-character key (32 bytes, base64url), the shape
// of a real one, that matches no service's.
func randomKey() string {
	var raw [32]byte
	rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}
