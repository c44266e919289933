// Command benchvalidate measures what validation costs a request: it
// loads the validate function with wrk, straight on the custom handler's
// port, against bare net/http servers that answer the same body and
// headers without checking anything.
//
// With a key, validate is also loaded through the local host. With a
// token of a token-mode service it is loaded (a) with one token repeated,
// which the handler's verified-token cache answers, and (b) with a new
// token on every request, each one verified; (b) is compared with the
// ceiling the signature check sets, the bare server's throughput if each
// request also paid one RS256 verification measured in the same run. Both
// are also run against a peer: a plain net/http server that verifies every
// token with golang-jwt.
//
// The servers are pinned to CPU 0 and wrk to CPU 1 (taskset); runs of the
// targets are interleaved, each repeated, and the medians reported with
// the median of the ratios of runs made side by side, then each run's
// ratio: the machine may be noisy, and the runs show how much. The two
// targets of each ratio run one after the other, and odd repeats run the
// whole list in reverse, so that neither always runs first. As a control,
// the bare key server is loaded twice in each repeat, the second time as
// "bare, again": the A/A ratio bare/bare is the method's own noise. The
// tokens of (b) are signed beforehand (about 1ms each), enough for no
// token to be sent twice in a run; a run that would is flagged.
//
// Beside the throughput ratios of two of our Go servers, and of nginx
// with auth_request to validate and to the bare server, an estimate that
// the machine's noise hardly moves: perf samples the servers' CPU while
// wrk loads them, and the ratio is estimated from the shares of samples
// spent inside the servers' Handlers or their GC (perf.go). Without perf, or when it
// fails, the estimate is skipped, saying why.
//
// The gateway group (-gateway, on by default; skipped, saying so, without
// nginx) loads nginx in front of a model server, GET /<service>/score
// with the key service's key: nginx alone, the baseline
// (nginx-alone.conf); deploy/gateways/nginx/modelauth.conf with its
// auth_request sent to the bare server, then to the handler; and
// modelauth-cached.conf on the handler, its cache on /dev/shm. Each nginx
// runs worker_processes 1 on CPU 0 with the other servers (gateway.go).
//
// It needs wrk and taskset (apt-get install wrk util-linux), nginx for
// the gateway group, perf for the estimate, and is run by `make bench`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"unicode/utf8"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

// helpers are the servers and the probe this command runs as its own
// subprocesses: benchvalidate <helper> args...
var helpers = map[string]func(args []string) error{
	"bare-server":  bareServer,
	"model-server": modelServer,
	"peer-server":  peerServer,
	"verify-cost":  verifyCostProbe,
}

func main() {
	if len(os.Args) > 1 {
		if h, ok := helpers[os.Args[1]]; ok {
			if err := h(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
				os.Exit(1)
			}
			return
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchvalidate:", err)
		os.Exit(1)
	}
}

type result struct {
	rps float64
	p99 time.Duration
	// sent and tokens are, for a run with a new token on every request,
	// the tokens sent and the tokens the file held.
	sent, tokens int
}

// repeated is how many tokens were sent a second time.
func (r result) repeated() int { return max(r.sent-r.tokens, 0) }

// target is one server loaded by wrk.
type target struct {
	name string
	url  string
	// auth is the Authorization of every request; when fresh is set,
	// each request sends instead the next token of the repeat's file.
	auth  string
	fresh bool
	// want is the identity the target must answer; check, when set,
	// checks the target's answers instead.
	want  identity
	check func() error
	// pids, when set, are the processes perf records: the server whose
	// Handler counts, then those the requests also pass through.
	pids []int
}

// The targets, in the order they run in even repeats: the two of each
// ratio side by side.
const (
	validateKey = iota
	bareKey
	bareAgain // the A/A control
	viaHost
	bareToken
	oneToken
	peerOneToken
	newTokens
	peerNewTokens
	firstGateway // the gateway group's targets follow, in the order of the gw constants
)

// runOrder is the order in which repeat rep (from 0) runs n targets:
// odd repeats run them in reverse.
func runOrder(n, rep int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
		if rep%2 == 1 {
			order[i] = n - 1 - i
		}
	}
	return order
}

func run() error {
	duration := flag.Duration("duration", 5*time.Second, "length of each wrk run")
	newDuration := flag.Duration("new-token-duration", 2*time.Second,
		"length of each wrk run with a new token on every request (its tokens are signed beforehand, about 1ms each)")
	repeats := flag.Int("repeats", 3, "runs of each target")
	conns := flag.Int("connections", 64, "wrk connections (keep-alive)")
	gateway := flag.Bool("gateway", true, "also load nginx in front of a model: alone, with auth_request to a bare server and to validate, and the cached recipe (needs nginx)")
	flag.Parse()
	if *duration < time.Second || *newDuration < time.Second || *repeats < 1 || *conns < 1 {
		return errors.New("wrk runs last whole seconds, at least one: -duration and -new-token-duration must be 1s or more, -repeats and -connections at least 1")
	}
	for _, tool := range []string{"wrk", "taskset", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install it (apt-get install wrk util-linux make)", tool)
		}
	}
	ctx := context.Background()
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
	// The helper servers run from a build of this command: go run strips
	// the symbol table, and perf needs it to name the frames.
	self := filepath.Join(tmp, "benchvalidate")
	if out, err := exec.Command("go", "build", "-o", self, "./cmd/benchvalidate").CombinedOutput(); err != nil {
		return fmt.Errorf("building benchvalidate: %v\n%s", err, out)
	}
	services := fmt.Sprintf(`{"services":[{"name":%q},{"name":%q,"authMode":"token"}]}`, keyService, tokenService)
	if err := os.WriteFile(filepath.Join(appDir, "modelauth.json"), []byte(services), 0o600); err != nil {
		return err
	}
	dataDir := filepath.Join(tmp, "data")
	env := append(os.Environ(), "MODELAUTH_DATA_DIR="+dataDir, "MODELAUTH_CONFIG="+filepath.Join(appDir, "modelauth.json"), "LOG_LEVEL=warn")
	settings, err := config.LoadSettings(getenv(env))
	if err != nil {
		return err
	}
	script := filepath.Join(tmp, "newtokens.lua")
	if err := os.WriteFile(script, newTokensScript, 0o600); err != nil {
		return err
	}

	handlerAddr, bareKeyAddr, bareTokenAddr, peerAddr := freeAddr(), freeAddr(), freeAddr(), freeAddr()
	_, port, _ := net.SplitHostPort(handlerAddr)
	handler, stopHandler, err := start(append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+port), "taskset", "-c", "0", filepath.Join(appDir, "handler"))
	if err != nil {
		return err
	}
	defer stopHandler()
	bares := map[string]*exec.Cmd{}
	for _, b := range []struct{ addr, kind string }{{bareKeyAddr, "key"}, {bareTokenAddr, "token"}} {
		cmd, stop, err := start(nil, "taskset", "-c", "0", self, "bare-server", b.addr, b.kind)
		if err != nil {
			return err
		}
		defer stop()
		bares[b.kind] = cmd
	}
	for _, addr := range []string{bareKeyAddr, bareTokenAddr, handlerAddr} {
		if err := waitHTTP("http://" + addr + "/"); err != nil {
			return err
		}
	}
	// The host's handler starts once the first signing key is written:
	// two handlers starting together on an empty store would each write
	// one, and the peer would know only the one its JWKS read held.
	hostURL, stopHost, err := startHost(env, host, appDir)
	if err != nil {
		return err
	}
	defer stopHost()
	direct := "http://" + handlerAddr
	// The peer reads the JWKS that the handler serves.
	jwksURL := direct + "/api/.well-known/jwks.json"
	peer, stopPeer, err := start(nil, "taskset", "-c", "0", self, "peer-server", peerAddr, jwksURL, settings.Issuer, tokenService)
	if err != nil {
		return err
	}
	defer stopPeer()
	if err := waitHTTP("http://" + peerAddr + "/"); err != nil {
		return err
	}

	admin, err := adminKey(dataDir)
	if err != nil {
		return err
	}
	key, err := primaryKey(hostURL, admin)
	if err != nil {
		return err
	}
	token, err := getToken(hostURL, admin)
	if err != nil {
		return err
	}
	validate := func(base, service string) string { return base + "/api/services/" + service + "/validate" }
	// taskset execs the server: its pid is the server's.
	handlerPID, bareKeyPID, bareTokenPID, peerPID := handler.Process.Pid, bares["key"].Process.Pid, bares["token"].Process.Pid, peer.Process.Pid
	targets := []target{
		validateKey:   {name: "validate", url: validate(direct, keyService), auth: key, want: identities["key"], pids: []int{handlerPID}},
		bareKey:       {name: "bare", url: validate("http://"+bareKeyAddr, keyService), auth: key, want: identities["key"], pids: []int{bareKeyPID}},
		bareAgain:     {name: "bare, again", url: validate("http://"+bareKeyAddr, keyService), auth: key, want: identities["key"], pids: []int{bareKeyPID}},
		viaHost:       {name: "validate via local host", url: validate(hostURL, keyService), auth: key, want: identities["key"]},
		bareToken:     {name: "bare, token identity", url: validate("http://"+bareTokenAddr, tokenService), auth: token, want: identities["token"], pids: []int{bareTokenPID}},
		oneToken:      {name: "validate, one token", url: validate(direct, tokenService), auth: token, want: identities["token"], pids: []int{handlerPID}},
		peerOneToken:  {name: "peer, one token", url: validate("http://"+peerAddr, tokenService), auth: token, want: identities["token"], pids: []int{peerPID}},
		newTokens:     {name: "validate, new tokens", url: validate(direct, tokenService), fresh: true, want: identities["token"], pids: []int{handlerPID}},
		peerNewTokens: {name: "peer, new tokens", url: validate("http://"+peerAddr, tokenService), fresh: true, want: identities["token"], pids: []int{peerPID}},
	}
	var gw *gatewayGroup
	if *gateway {
		authPIDs := map[string]int{handlerAddr: handlerPID, bareKeyAddr: bareKeyPID}
		gw, err = startGateways(self, filepath.Dir(goEnv("GOMOD")), handlerAddr, bareKeyAddr, authPIDs, keyService, key)
		switch {
		case errors.Is(err, errNoNginx):
			fmt.Println("gateway group skipped:", err)
		case err != nil:
			return err
		default:
			defer gw.stop()
			targets = append(targets, gw.targets...)
		}
	}
	// Check that every target answers what the bare servers send, then
	// warm it up. The fixed ones first: they size the token files.
	warm := make([]result, len(targets))
	for i, tg := range targets {
		if tg.fresh {
			continue
		}
		check := func() error { return checkAnswer(tg.url, tg.auth, tg.want) }
		if tg.check != nil {
			check = tg.check
		}
		if err := check(); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		if warm[i], err = wrk(tg.url, tg.load(script, ""), *conns, time.Second); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	measure := func() (verifyCost, error) {
		return measureVerify(self, jwksURL, settings.Issuer, tokenService, token)
	}
	cost, err := measure()
	if err != nil {
		return err
	}
	// Validate cannot beat the ceiling: files of 1.5 times the requests
	// the warm-up's ceiling allows in a run (the machine may be faster
	// later), plus one for each connection, are enough.
	perSecond := 1.5 * ceiling(warm[bareToken].rps, cost.RSA)
	size := func(d time.Duration) int { return int(perSecond*d.Seconds()) + *conns }
	files, sizes := []string{filepath.Join(tmp, "tokens-warm.txt")}, []int{size(time.Second)}
	for rep := range *repeats {
		files = append(files, filepath.Join(tmp, fmt.Sprintf("tokens-%d.txt", rep+1)))
		sizes = append(sizes, size(*newDuration))
	}
	began := time.Now()
	if err := issueTokens(ctx, settings, tokenService, files, sizes); err != nil {
		return fmt.Errorf("issuing tokens: %w", err)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	fmt.Printf("signed %d tokens for the new-token runs (%d a run) in %v\n", total, sizes[1], time.Since(began).Round(time.Second))
	first, err := firstLine(files[0])
	if err != nil {
		return err
	}
	for _, tg := range targets {
		if !tg.fresh {
			continue
		}
		// The warm-up file's first token is sent twice: here and in the
		// warm-up run, which counts nothing.
		if err := checkAnswer(tg.url, first, tg.want); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		if _, err := wrk(tg.url, tg.load(script, files[0]), *conns, time.Second); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}

	prof := newProfiler(tmp)
	results := make([][]result, len(targets))
	recordings := make([][]*recording, len(targets))
	costs := make([]verifyCost, *repeats)
	for rep := 0; rep < *repeats; rep++ {
		for _, i := range runOrder(len(targets), rep) {
			tg := targets[i]
			d := *duration
			if tg.fresh {
				// Each run of the repeat sends the same file: the peer
				// remembers no token.
				d = *newDuration
			}
			var rec *recording
			if tg.pids != nil {
				rec = prof.record(tg.pids, d)
			}
			r, err := wrk(tg.url, tg.load(script, files[rep+1]), *conns, d)
			rec = prof.wait(rec)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.name, err)
			}
			results[i] = append(results[i], r)
			recordings[i] = append(recordings[i], rec)
			note := ""
			if tg.fresh {
				note = fmt.Sprintf("  %d tokens sent", r.sent)
				if n := r.repeated(); n > 0 {
					note += fmt.Sprintf(", %d of them a second time: the file ran out", n)
				}
			}
			fmt.Printf("run %d %-27s %10.0f req/s  p99 %v%s\n", rep+1, tg.name, r.rps, r.p99, note)
		}
		if costs[rep], err = measure(); err != nil {
			return err
		}
		fmt.Printf("run %d verification on CPU 0: RS256 %v, golang-jwt parse+verify %v\n", rep+1, costs[rep].RSA, costs[rep].JWT)
	}

	// Read the profiles now: perf script between runs would part the
	// two runs of a ratio. A run whose recording failed keeps the zero
	// cpuSamples: it has no estimate, and the failures are told.
	shares := make([][]cpuSamples, len(targets))
	var failures []string
	for i, recs := range recordings {
		if targets[i].pids == nil || prof.err != nil {
			continue
		}
		for rep, rec := range recs {
			var c cpuSamples
			if rec != nil {
				var err error
				if c, err = prof.samples(rec); err != nil {
					failures = append(failures, fmt.Sprintf("%s, run %d: %v", targets[i].name, rep+1, err))
				}
			}
			shares[i] = append(shares[i], c)
		}
	}

	med := make([]result, len(targets))
	fmt.Printf("\nmedians of %d runs (%v; %v with new tokens), %d connections, servers on CPU 0, wrk on CPU 1:\n",
		*repeats, *duration, *newDuration, *conns)
	for i, tg := range targets {
		med[i] = median(results[i])
		fmt.Printf("  %-27s %10.0f req/s  p99 %v\n", tg.name, med[i].rps, med[i].p99)
	}
	rsaCosts, jwtCosts := make([]time.Duration, *repeats), make([]time.Duration, *repeats)
	ceilings, jwtCeilings := make([]result, *repeats), make([]result, *repeats)
	for rep, c := range costs {
		rsaCosts[rep], jwtCosts[rep] = c.RSA, c.JWT
		ceilings[rep].rps = ceiling(results[bareToken][rep].rps, c.RSA)
		jwtCeilings[rep].rps = ceiling(results[bareToken][rep].rps, c.JWT)
	}
	slices.Sort(rsaCosts)
	slices.Sort(jwtCosts)
	fmt.Printf("  token %d bytes; one verification (median): RS256 %v (SHA-256 of the signing input + rsa.VerifyPKCS1v15, 2048-bit key);\n", len(token), rsaCosts[len(rsaCosts)/2])
	fmt.Printf("    golang-jwt parse+verify %v\n", jwtCosts[len(jwtCosts)/2])
	fmt.Printf("  %-27s %10.0f req/s  = 1/(1/bare token + RS256), median of runs\n", "ceiling, new tokens", median(ceilings).rps)
	repeatedTokens := 0
	for _, i := range []int{newTokens, peerNewTokens} {
		for _, r := range results[i] {
			repeatedTokens += r.repeated()
		}
	}
	if repeatedTokens > 0 {
		fmt.Printf("  WARNING: %d tokens were sent a second time in new-token runs: their figures are flattered\n", repeatedTokens)
	}
	// The machine is shared: a ratio of two runs made one after the other
	// is steadier than a ratio of medians taken across the whole session.
	fmt.Println("\nratios: the median of the paired ratios, then each run's")
	if prof.err != nil {
		fmt.Println("estimate from CPU shares skipped:", prof.err)
	} else {
		fmt.Printf("estimate from CPU shares: (1 - S num)/(1 - S den), S a server's share of its perf samples inside %s\n", handlerFrame)
		fmt.Printf("  or %s: the GC's work grows with what a server allocates and keeps\n", gcFrame)
		if len(failures) > 0 {
			fmt.Printf("  %d recordings failed, their runs have no estimate; the first: %s\n", len(failures), failures[0])
		}
	}
	rp := report{targets: targets, results: results, shares: shares}
	compare := rp.compare
	fmt.Println("keys:")
	compare("validate / bare", validateKey, bareKey, 0.95)
	compare("A/A control bare/bare (bare, again / bare)", bareAgain, bareKey, 0)
	compare("via host / bare", viaHost, bareKey, 0)
	compare("via host / validate", viaHost, validateKey, 0)
	fmt.Println("tokens:")
	compare("one token / bare, token identity", oneToken, bareToken, 0.95)
	compare("new tokens / peer new tokens (golang-jwt)", newTokens, peerNewTokens, 0.95)
	printRatio("new tokens / golang-jwt parse+verify ceiling", pairedRatios(results[newTokens], jwtCeilings), 0.8)
	printRatio("new tokens / RS256 ceiling", pairedRatios(results[newTokens], ceilings), 0)
	compare("one token / peer one token", oneToken, peerOneToken, 0)
	printRatio("peer new tokens / golang-jwt parse+verify ceiling", pairedRatios(results[peerNewTokens], jwtCeilings), 0)
	printRatio("peer new tokens / RS256 ceiling", pairedRatios(results[peerNewTokens], ceilings), 0)
	if gw != nil {
		gw.report(rp, firstGateway)
	}
	return nil
}

// load is what wrk sends to tg; script and tokens are the Lua script and
// the file of a run's new tokens.
func (tg target) load(script, tokens string) load {
	if tg.fresh {
		return load{script: script, tokens: tokens}
	}
	return load{auth: tg.auth}
}

// pairedRatios is num/den req/s of each repeat, in their order.
func pairedRatios(num, den []result) []float64 {
	rs := make([]float64, len(num))
	for i := range num {
		rs[i] = num[i].rps / den[i].rps
	}
	return rs
}

func medianOf(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
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

// report is what the runs measured; shares are the CPU samples of the
// targets perf recorded (none when the estimate is skipped).
type report struct {
	targets []target
	results [][]result
	shares  [][]cpuSamples
}

// compare prints the ratio of targets num/den and, where both were
// recorded, the estimate from CPU shares and the shares.
func (rp report) compare(label string, num, den int, target float64) {
	printRatio(label, pairedRatios(rp.results[num], rp.results[den]), target)
	if rp.shares[num] == nil || rp.shares[den] == nil {
		return
	}
	// Only the runs recorded on both sides.
	var sn, sd []cpuSamples
	var est []float64
	for rep := range rp.shares[num] {
		n, d := rp.shares[num][rep], rp.shares[den][rep]
		if n.all == 0 || d.all == 0 {
			continue
		}
		sn, sd = append(sn, n), append(sd, d)
		est = append(est, shareEstimate(n, d))
	}
	if len(est) == 0 {
		fmt.Println("    estimate from CPU shares: no run recorded on both sides")
		return
	}
	printRatio("  estimate from CPU shares", est, target)
	share := func(cs []cpuSamples, f func(cpuSamples) float64) float64 {
		xs := make([]float64, len(cs))
		for i, c := range cs {
			xs[i] = 100 * f(c)
		}
		return medianOf(xs)
	}
	fmt.Printf("    shares (medians): Handler %s %.1f%%, %s %.1f%%; GC workers %.1f%%, %.1f%%\n",
		rp.targets[num].name, share(sn, cpuSamples.handlerShare), rp.targets[den].name, share(sd, cpuSamples.handlerShare),
		share(sn, cpuSamples.gcShare), share(sd, cpuSamples.gcShare))
}

// printRatio prints label, the median of rs, the paired ratios of the
// runs, then each run's, and the target when there is one (not 0).
func printRatio(label string, rs []float64, target float64) {
	runs := make([]string, len(rs))
	for i, r := range rs {
		runs[i] = fmt.Sprintf("%.3f", r)
	}
	note := ""
	if target != 0 {
		note = fmt.Sprintf("  (target >= %.2f)", target)
	}
	pad := strings.Repeat(" ", max(0, 55-utf8.RuneCountInString(label)))
	fmt.Printf("  %s:%s %.3f  runs %s%s\n", label, pad, medianOf(rs), strings.Join(runs, " "), note)
}

// start runs a command in the background; the returned func stops it.
func start(env []string, name string, args ...string) (*exec.Cmd, func(), error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env // nil: this process's environment
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return cmd, func() { cmd.Process.Kill(); cmd.Wait() }, nil
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

// adminKey reads the administrator key from the handler's store.
func adminKey(dataDir string) (string, error) {
	store, err := filestore.Open(dataDir, nil)
	if err != nil {
		return "", err
	}
	defer store.Close()
	admin, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		return "", err
	}
	return admin.Value, nil
}

// primaryKey gets the key service's primary key through get_keys, as a
// user would.
func primaryKey(hostURL, admin string) (string, error) {
	var keys struct{ PrimaryKey string }
	if err := call("GET", hostURL+"/api/services/"+keyService+"/keys", admin, &keys); err != nil || keys.PrimaryKey == "" {
		return "", fmt.Errorf("get_keys: %v", err)
	}
	return keys.PrimaryKey, nil
}

// getToken gets a token for the token service through get_token, as a
// user would.
func getToken(hostURL, admin string) (string, error) {
	var tok struct{ AccessToken string }
	if err := call("POST", hostURL+"/api/services/"+tokenService+"/token", admin, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("get_token: %v", err)
	}
	return tok.AccessToken, nil
}

// call sends a request with a bearer credential and decodes the JSON
// answer into v.
func call(method, url, cred string, v any) error {
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// checkAnswer checks that url answers cred with the body and identity
// headers of want, as the bare servers do.
func checkAnswer(url, cred string, want identity) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	got := identity{Service: h.Get("X-ModelAuth-Service"), Subject: h.Get("X-ModelAuth-Subject"),
		AuthType: h.Get("X-ModelAuth-Auth-Type"), KeyType: h.Get("X-ModelAuth-Key-Type")}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, []byte(want.body())) || got != want.inHeaders() {
		return fmt.Errorf("answered %d %q with headers %+v; the bare server answers %q with %+v", resp.StatusCode, body, got, want.body(), want)
	}
	return nil
}

func firstLine(name string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return line, nil
}

// getenv looks names up in env, the last setting winning, as the
// handler's environment does.
func getenv(env []string) func(string) string {
	return func(name string) string {
		v := ""
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				v = val
			}
		}
		return v
	}
}

var (
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99RE    = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
	errRE    = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	tokensRE = regexp.MustCompile(`tokens sent (\d+) of (\d+)`)
)

// load is what wrk sends: auth as the Authorization of every request, or,
// when tokens names a file, on each request the next token of that file
// (script is the Lua script that does it).
type load struct{ auth, script, tokens string }

func wrk(url string, ld load, conns int, d time.Duration) (result, error) {
	args := []string{"-c", "1", "wrk", "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if ld.tokens != "" {
		args = append(args, "-s", ld.script, url, "--", ld.tokens)
	} else {
		args = append(args, "-H", "Authorization: Bearer "+ld.auth, url)
	}
	out, err := exec.Command("taskset", args...).CombinedOutput()
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
	r := result{rps: rps, p99: time.Duration(v * float64(unit))}
	if ld.tokens != "" {
		m := tokensRE.FindSubmatch(out)
		if m == nil {
			return result{}, errors.New("the token script printed no count:\n" + string(out))
		}
		r.sent, _ = strconv.Atoi(string(m[1]))
		r.tokens, _ = strconv.Atoi(string(m[2]))
	}
	return r, nil
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
