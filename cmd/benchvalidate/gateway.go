package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The gateway group: nginx in front of a model, loaded like the other
// targets and interleaved with them. Four setups, each its own nginx
// (deploy/gateways/nginx/nginx.conf as the main file, worker_processes 1)
// on a port of its own:
//
//	alone: nginx-alone.conf, no authentication, the baseline;
//	bare: modelauth.conf with its modelauth upstream on the bare server,
//	  what the auth_request subrequest costs;
//	validate: modelauth.conf on the custom handler, what modelauth adds;
//	cached: modelauth-cached.conf on the custom handler, its cache on a
//	  tmpfs (/dev/shm).
const (
	gwAlone = iota
	gwBare
	gwValidate
	gwCached
)

// errNoNginx is why the group is skipped.
var errNoNginx = errors.New("nginx is not installed (apt-get install nginx)")

// nginxSetup is one of the group's nginx configurations.
type nginxSetup struct {
	name string
	// recipe is the file in deploy/gateways/nginx written as
	// modelauth.conf, "" for nginx-alone.conf.
	recipe string
	// auth is the address of the modelauth upstream: the handler or the
	// bare server ("" for none).
	auth string
	// cached is set for the cached recipe: its cache goes on /dev/shm.
	cached bool
	// refuses is set when a wrong key must be refused: validate answers
	// behind it.
	refuses bool
}

// nginxInstance is a running nginx.
type nginxInstance struct {
	nginxSetup
	dir, url, errLog string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// gatewayGroup is the running group: the model, one nginx per setup, and
// the targets that load them.
type gatewayGroup struct {
	version   string
	instances []*nginxInstance
	targets   []target
	stops     []func()
}

func (g *gatewayGroup) stop() {
	for i := len(g.stops) - 1; i >= 0; i-- {
		g.stops[i]()
	}
}

// startGateways starts the group: the model server and the four nginx on
// CPU 0, beside the handler (handlerAddr) and the bare server (bareAddr),
// whose processes authPIDs has by address. Requests are GET
// /<service>/score with key; root is the module's folder. It returns
// errNoNginx when nginx is not installed.
func startGateways(self, root, handlerAddr, bareAddr string, authPIDs map[string]int, service, key string) (*gatewayGroup, error) {
	if _, err := exec.LookPath("nginx"); err != nil {
		return nil, errNoNginx
	}
	g := &gatewayGroup{version: nginxVersion()}
	ok := false
	defer func() {
		if !ok {
			g.stop()
		}
	}()
	// validate's gateway mode answers a key as validate does, and so as
	// the bare server does: what the bare setup measures is what the
	// validate setup's subrequest receives.
	for _, addr := range []string{handlerAddr, bareAddr} {
		url := "http://" + addr + "/api/services/" + service + "/validate?refusalStatus=401"
		if err := checkAnswer(url, key, identities["key"]); err != nil {
			return nil, fmt.Errorf("gateway group: %s: %w", url, err)
		}
	}
	modelAddr := freeAddr()
	model, stopModel, err := start(nil, "taskset", "-c", "0", self, "model-server", modelAddr)
	if err != nil {
		return nil, err
	}
	g.stops = append(g.stops, stopModel)
	if err := waitHTTP("http://" + modelAddr + "/"); err != nil {
		return nil, err
	}
	nginxDir := filepath.Join(root, "deploy", "gateways", "nginx")
	main, err := os.ReadFile(filepath.Join(nginxDir, "nginx.conf"))
	if err != nil {
		return nil, err
	}
	for _, s := range gatewaySetups(handlerAddr, bareAddr) {
		conf, err := s.read(nginxDir)
		if err != nil {
			return nil, err
		}
		in, err := startNginx(s, string(main), conf, modelAddr)
		if in != nil {
			g.stops = append(g.stops, in.stop)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		g.instances = append(g.instances, in)
		tg := target{
			name:  s.name,
			url:   in.url + "/" + service + "/score",
			auth:  key,
			check: func() error { return in.check(service, key) },
		}
		if s.auth != "" && !s.cached {
			// auth_request to validate or to the bare server: perf
			// records the authorizer, nginx's master and worker, and the
			// model (taskset execs them all).
			workers, err := children(in.cmd.Process.Pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			tg.pids = append([]int{authPIDs[s.auth], in.cmd.Process.Pid, model.Process.Pid}, workers...)
		}
		g.targets = append(g.targets, tg)
	}
	ok = true
	return g, nil
}

// gatewaySetups are the group's setups, in the order of the gw constants,
// with the handler and the bare server at their addresses.
func gatewaySetups(handlerAddr, bareAddr string) []nginxSetup {
	return []nginxSetup{
		gwAlone:    {name: "nginx alone"},
		gwBare:     {name: "nginx+auth_request→bare", recipe: "modelauth.conf", auth: bareAddr},
		gwValidate: {name: "nginx+auth_request→validate", recipe: "modelauth.conf", auth: handlerAddr, refuses: true},
		gwCached:   {name: "nginx cached recipe", recipe: "modelauth-cached.conf", auth: handlerAddr, cached: true, refuses: true},
	}
}

// file is the name of s's configuration, for errors.
func (s nginxSetup) file() string { return cmp.Or(s.recipe, "nginx-alone.conf") }

// read returns s's configuration as written: the recipe in nginxDir
// (deploy/gateways/nginx), or the embedded baseline.
func (s nginxSetup) read(nginxDir string) (string, error) {
	if s.recipe == "" {
		return aloneConf, nil
	}
	data, err := os.ReadFile(filepath.Join(nginxDir, s.recipe))
	return string(data), err
}

// render is conf, s's configuration, for the model at modelAddr, nginx
// listening on addr and, for the cached recipe, its cache in cacheDir.
func (s nginxSetup) render(conf, modelAddr, addr, cacheDir string) (string, error) {
	pairs := []string{recipeModel, modelAddr, recipeGateway, addr}
	if s.auth != "" {
		pairs = append(pairs, recipeModelAuth, s.auth)
	}
	if s.cached {
		pairs = append(pairs, recipeCacheDir, cacheDir)
	}
	return render(s.file(), conf, pairs...)
}

// startNginx writes s's files into a folder of its own and runs nginx on
// them, pinned to CPU 0, on a free port.
func startNginx(s nginxSetup, main, conf, modelAddr string) (*nginxInstance, error) {
	base := ""
	if s.cached {
		// The cache holds the credentials: a tmpfs, as the recipe asks.
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "benchvalidate-nginx-")
	if err != nil {
		return nil, err
	}
	in := &nginxInstance{nginxSetup: s, dir: dir, errLog: filepath.Join(dir, "stderr.log")}
	// nginx's workers run as nobody: they must reach the folder.
	if err := os.Chmod(dir, 0o755); err != nil {
		return in, err
	}
	addr := freeAddr()
	in.url = "http://" + addr
	text, err := s.render(conf, modelAddr, addr, filepath.Join(dir, "cache"))
	if err != nil {
		return in, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		return in, err
	}
	if err := os.WriteFile(filepath.Join(dir, "modelauth.conf"), []byte(text), 0o644); err != nil {
		return in, err
	}
	log, err := os.Create(in.errLog)
	if err != nil {
		return in, err
	}
	defer log.Close()
	in.cmd = exec.Command("taskset", "-c", "0", "nginx", "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"))
	in.cmd.Stdout, in.cmd.Stderr = log, log
	if err := in.cmd.Start(); err != nil {
		return in, err
	}
	in.exited = make(chan struct{})
	go func() { in.cmd.Wait(); close(in.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return in, nil
		}
		select {
		case <-in.exited:
			out, _ := os.ReadFile(in.errLog)
			return in, fmt.Errorf("nginx ended:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(in.errLog)
			return in, fmt.Errorf("nginx does not listen on %s:\n%s", addr, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// children waits for the processes that pid started, nginx's worker.
func children(pid int) ([]int, error) {
	file := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for range 100 {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			pids := make([]int, len(f))
			for i, s := range f {
				pids[i], _ = strconv.Atoi(s)
			}
			return pids, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("nginx (pid %d) started no worker", pid)
}

// stop ends nginx (TERM: the master stops its worker; a KILL would leave
// the worker running) and removes its folder.
func (in *nginxInstance) stop() {
	if in.exited != nil {
		in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(10 * time.Second):
			in.cmd.Process.Kill()
			<-in.exited
		}
	}
	os.RemoveAll(in.dir)
}

// check sends one request with key and, where validate answers behind
// nginx, one with a wrong key: the first must reach the model (its body,
// and the identity for the setups with auth_request), the second be
// refused with 401. The cached setup's entry must be in its cache.
func (in *nginxInstance) check(service, key string) error {
	url := in.url + "/" + service + "/score"
	status, body, h, err := get(url, key)
	if err != nil {
		return err
	}
	wantService := ""
	if in.auth != "" {
		wantService = service
	}
	if got := h.Get("X-Model-Saw-Service"); status != http.StatusOK || body != modelBody || got != wantService {
		return fmt.Errorf("answered %d %q, the model was sent X-ModelAuth-Service %q; want 200 %q, %q", status, body, got, modelBody, wantService)
	}
	if in.refuses {
		// Twice: the cached recipe keeps no refusal.
		for range 2 {
			status, body, _, err := get(url, strings.Repeat("w", len(key)))
			if err != nil {
				return err
			}
			if status != http.StatusUnauthorized {
				return fmt.Errorf("a wrong key answered %d %q; want 401", status, body)
			}
		}
	}
	if in.cached {
		return waitCacheEntry(filepath.Join(in.dir, "cache"))
	}
	return nil
}

// get sends GET url with a bearer credential.
func get(url, cred string) (int, string, http.Header, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header, err
}

// waitCacheEntry waits for a file in the cache folder dir: the cache
// answers what the run measures.
func waitCacheEntry(dir string) error {
	for range 40 {
		found := false
		filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				found = true
			}
			return nil
		})
		if found {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("the cache in %s holds no entry after a 200", dir)
}

// nginxVersion is what nginx -v prints, "nginx/1.22.1".
func nginxVersion() string {
	out, _ := exec.Command("nginx", "-v").CombinedOutput()
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "version: ")
	return v
}

// logRE matches the lines of nginx's log worth a look.
var logRE = regexp.MustCompile(`\[(warn|error|crit|alert|emerg)\]`)

// complaints is what each nginx logged at warn or above: its count and
// its first lines.
func (in *nginxInstance) complaints(keep int) (int, []string) {
	f, err := os.Open(in.errLog)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n, lines := 0, []string(nil)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if logRE.MatchString(sc.Text()) {
			n++
			if len(lines) < keep {
				lines = append(lines, sc.Text())
			}
		}
	}
	return n, lines
}

// report prints the group's ratios, each with its paired runs, and what
// nginx logged; the group's targets are rp's from first on.
func (g *gatewayGroup) report(rp report, first int) {
	fmt.Printf("\ngateway (%s, worker_processes 1 each; CPU 0: the handler, the bare server, the model and the four nginx (master, worker, the cached one's cache manager);\n", g.version)
	fmt.Println("  CPU 1: wrk; GET /<service>/score with the service's key, median of paired ratios, then each run's;")
	fmt.Println("  the estimate's shares: the authorizer's Handler in the samples of the authorizer, nginx and the model):")
	ratio := func(label string, num, den int, target float64) {
		rp.compare(label, first+num, first+den, target)
	}
	ratio("nginx+auth_request→validate / nginx+auth_request→bare", gwValidate, gwBare, 0.95)
	ratio("nginx+auth_request→bare / nginx alone", gwBare, gwAlone, 0)
	ratio("nginx cached recipe / nginx alone", gwCached, gwAlone, 0.8)
	ratio("nginx+auth_request→validate / nginx alone", gwValidate, gwAlone, 0)
	for _, in := range g.instances {
		n, lines := in.complaints(3)
		if n == 0 {
			continue
		}
		fmt.Printf("  %s: nginx logged %d lines at warn or above, the first:\n", in.name, n)
		for _, l := range lines {
			fmt.Println("    " + l)
		}
	}
}
