// Command benchvalidate measures what key validation costs a request: it
// loads the validate function with wrk, straight on the custom handler's
// port and through the local host, against a bare net/http server that
// answers the same body and headers without checking anything.
//
// The servers are pinned to CPU 0 and wrk to CPU 1 (taskset); runs of the
// bare server and of validate are interleaved, each repeated, and the
// medians reported with their ratio. It needs wrk and taskset
// (apt-get install wrk util-linux) and is run by `make bench`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-server" {
		if err := bareServer(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchvalidate:", err)
		os.Exit(1)
	}
}

// identityBody is what validate answers for the benchmark's key; the bare
// server answers it too.
const identityBody = `{"service":"bench","subject":"key:Primary","authType":"key","keyType":"Primary"}` + "\n"

func bareServer(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The cheapest way to set them: canonical names, no checks.
		h["Cache-Control"] = []string{"no-store"}
		h["X-Modelauth-Service"] = []string{"bench"}
		h["X-Modelauth-Subject"] = []string{"key:Primary"}
		h["X-Modelauth-Auth-Type"] = []string{"key"}
		h["X-Modelauth-Key-Type"] = []string{"Primary"}
		h["Content-Type"] = []string{"application/json; charset=utf-8"}
		h["X-Content-Type-Options"] = []string{"nosniff"}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, identityBody)
	})
	// The same server settings as the custom handler's: only the handler
	// differs.
	srv := functions.NewServer(h, slog.New(slog.DiscardHandler))
	srv.Addr = addr
	return srv.ListenAndServe()
}

type result struct {
	rps float64
	p99 time.Duration
}

func run() error {
	duration := flag.Duration("duration", 5*time.Second, "length of each wrk run")
	repeats := flag.Int("repeats", 3, "runs of each target")
	conns := flag.Int("connections", 64, "wrk connections (keep-alive)")
	flag.Parse()
	for _, tool := range []string{"wrk", "taskset", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install it (apt-get install wrk util-linux make)", tool)
		}
	}
	tmp, err := os.MkdirTemp("", "benchvalidate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	appDir := filepath.Join(tmp, "app")
	goos, goarch := goEnv("GOOS"), goEnv("GOARCH")
	if out, err := exec.Command("make", "--no-print-directory", "stage", "APP="+appDir,
		"HANDLER_GOOS="+goos, "HANDLER_GOARCH="+goarch).CombinedOutput(); err != nil {
		return fmt.Errorf("make stage: %v\n%s", err, out)
	}
	host := filepath.Join(tmp, "funchost")
	if out, err := exec.Command("go", "build", "-o", host, "./cmd/funchost").CombinedOutput(); err != nil {
		return fmt.Errorf("building funchost: %v\n%s", err, out)
	}
	self, _ := os.Executable()
	if err := os.WriteFile(filepath.Join(appDir, "modelauth.json"), []byte(`{"services":[{"name":"bench"}]}`), 0o600); err != nil {
		return err
	}
	dataDir := filepath.Join(tmp, "data")
	env := append(os.Environ(), "MODELAUTH_DATA_DIR="+dataDir, "MODELAUTH_CONFIG="+filepath.Join(appDir, "modelauth.json"), "LOG_LEVEL=warn")

	handlerAddr, bareAddr := freeAddr(), freeAddr()
	_, port, _ := net.SplitHostPort(handlerAddr)
	stopHandler, err := start(append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+port), "taskset", "-c", "0", filepath.Join(appDir, "handler"))
	if err != nil {
		return err
	}
	defer stopHandler()
	stopBare, err := start(nil, "taskset", "-c", "0", self, "bare-server", bareAddr)
	if err != nil {
		return err
	}
	defer stopBare()
	hostURL, stopHost, err := startHost(env, host, appDir)
	if err != nil {
		return err
	}
	defer stopHost()
	for _, addr := range []string{bareAddr, handlerAddr} {
		if err := waitHTTP("http://" + addr + "/"); err != nil {
			return err
		}
	}
	key, err := primaryKey(hostURL, dataDir)
	if err != nil {
		return err
	}
	direct := "http://" + handlerAddr
	targets := []struct{ name, url string }{
		{"bare", "http://" + bareAddr + "/api/services/bench/validate"},
		{"validate", direct + "/api/services/bench/validate"},
		{"validate via local host", hostURL + "/api/services/bench/validate"},
	}
	// Warm up each target once.
	for _, tg := range targets {
		if _, err := wrk(tg.url, key, *conns, time.Second); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	results := make([][]result, len(targets))
	for rep := 0; rep < *repeats; rep++ {
		for i, tg := range targets {
			r, err := wrk(tg.url, key, *conns, *duration)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.name, err)
			}
			results[i] = append(results[i], r)
			fmt.Printf("run %d %-24s %10.0f req/s  p99 %v\n", rep+1, tg.name, r.rps, r.p99)
		}
	}
	med := make([]result, len(targets))
	fmt.Printf("\nmedians of %d runs, %d connections, server on CPU 0, wrk on CPU 1:\n", *repeats, *conns)
	for i, tg := range targets {
		med[i] = median(results[i])
		fmt.Printf("  %-24s %10.0f req/s  p99 %v\n", tg.name, med[i].rps, med[i].p99)
	}
	// The machine is shared: a ratio of two runs made one after the other
	// is steadier than a ratio of medians taken across the whole session.
	fmt.Printf("ratio of medians validate/bare (req/s):  %.3f\n", med[1].rps/med[0].rps)
	fmt.Printf("median of paired ratios validate/bare:   %.3f (target >= 0.95)\n", pairedRatio(results[1], results[0]))
	fmt.Printf("median of paired ratios via host/bare:   %.3f\n", pairedRatio(results[2], results[0]))
	fmt.Printf("median of paired ratios host/validate:   %.3f\n", pairedRatio(results[2], results[1]))
	return nil
}

// pairedRatio is the median over repeats of num/den req/s.
func pairedRatio(num, den []result) float64 {
	rs := make([]float64, len(num))
	for i := range num {
		rs[i] = num[i].rps / den[i].rps
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

func goEnv(name string) string {
	out, _ := exec.Command("go", "env", name).Output()
	return strings.TrimSpace(string(out))
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs a command in the background; the returned func stops it.
func start(env []string, name string, args ...string) (func(), error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env // nil: this process's environment
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

// startHost starts the local host pinned to CPU 0 (the handler it starts
// inherits the pinning) and returns its URL.
func startHost(env []string, host, appDir string) (string, func(), error) {
	cmd := exec.Command("taskset", "-c", "0", host, "--app", appDir, "--port", "0")
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		chunk := make([]byte, 1024)
		n, err := out.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if m := re.FindSubmatch(buf); m != nil {
			go io.Copy(io.Discard, out)
			return string(m[1]), stop, nil
		}
		if err != nil {
			break
		}
	}
	stop()
	return "", nil, fmt.Errorf("the local host printed no URL: %s", buf)
}

func waitHTTP(url string) error {
	for i := 0; i < 400; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}

// primaryKey reads the administrator key from the store and gets the
// service's keys through get_keys, as a user would.
func primaryKey(hostURL, dataDir string) (string, error) {
	store, err := filestore.Open(dataDir, nil)
	if err != nil {
		return "", err
	}
	defer store.Close()
	admin, err := store.GetSecret(context.Background(), "admin-key", "")
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest("GET", hostURL+"/api/services/bench/keys", nil)
	req.Header.Set("Authorization", "Bearer "+admin.Value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var keys struct{ PrimaryKey string }
	if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil || keys.PrimaryKey == "" {
		return "", fmt.Errorf("get_keys: status %d: %v", resp.StatusCode, err)
	}
	// Check the validate answer matches what the bare server sends.
	req, _ = http.NewRequest("GET", hostURL+"/api/services/bench/validate", nil)
	req.Header.Set("Authorization", "Bearer "+keys.PrimaryKey)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 200 || !bytes.Equal(body, []byte(identityBody)) {
		return "", fmt.Errorf("validate answered %d %q; the bare server answers %q", resp2.StatusCode, body, identityBody)
	}
	return keys.PrimaryKey, nil
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99RE = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	errRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(url, key string, conns int, d time.Duration) (result, error) {
	out, err := exec.Command("taskset", "-c", "1", "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-H", "Authorization: Bearer "+key, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	if m := errRE.FindSubmatch(out); m != nil {
		return result{}, fmt.Errorf("wrk saw %s failed responses", m[1])
	}
	m1, m2 := rpsRE.FindSubmatch(out), p99RE.FindSubmatch(out)
	if m1 == nil || m2 == nil {
		return result{}, errors.New("cannot read wrk's output:\n" + string(out))
	}
	rps, _ := strconv.ParseFloat(string(m1[1]), 64)
	v, _ := strconv.ParseFloat(string(m2[1]), 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m2[2])]
	return result{rps: rps, p99: time.Duration(v * float64(unit))}, nil
}

func median(rs []result) result {
	rps := make([]float64, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		rps[i], p99[i] = r.rps, r.p99
	}
	slices.Sort(rps)
	slices.Sort(p99)
	return result{rps: rps[len(rps)/2], p99: p99[len(p99)/2]}
}
