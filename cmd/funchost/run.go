package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// errUsage is wrapped by command-line errors.
var errUsage = errors.New("usage")

const (
	defaultPort     = 7071
	shutdownTimeout = 5 * time.Second
)

// options are run's dependencies; tests replace some of them.
type options struct {
	getenv  func(string) string
	environ func() []string // the handler's base environment
	stdout  io.Writer
	now     func() time.Time
	newID   func() string
}

// run is the command: it parses args, loads the app and serves it until
// ctx ends (then it returns nil) or the handler fails too often.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return runHost(ctx, args, options{getenv: getenv, environ: os.Environ, stdout: stdout, now: time.Now, newID: newUUID})
}

type flags struct {
	app     string
	port    int
	portSet bool
	host    string
}

func parseFlags(args []string, out io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("funchost", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.app, "app", ".", "the function app root (the folder with host.json)")
	fs.IntVar(&f.port, "port", defaultPort, "the port to serve on, 0 for a free one; if not given, local.settings.json Host.LocalHttpPort, else")
	fs.StringVar(&f.host, "host", "127.0.0.1", "the address to listen on")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	fs.Visit(func(fl *flag.Flag) { f.portSet = f.portSet || fl.Name == "port" })
	if f.port < 0 || f.port > 65535 {
		return f, fmt.Errorf("%w: --port %d out of range", errUsage, f.port)
	}
	return f, nil
}

func runHost(ctx context.Context, args []string, o options) error {
	f, err := parseFlags(args, o.stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		if !errors.Is(err, errUsage) {
			err = fmt.Errorf("%w: %w", errUsage, err)
		}
		return err
	}
	out := &syncWriter{w: o.stdout}
	log := slog.New(slog.NewTextHandler(out, nil))

	root, err := filepath.Abs(f.app)
	if err != nil {
		return err
	}
	l, err := loadApp(root, o.getenv, o.now(), log)
	if err != nil {
		return err
	}
	a, env, settings, rt, loc, states := l.app, l.env, l.settings, l.router, l.loc, l.timers

	port := f.port
	if !f.portSet && settings.LocalHTTPPort != 0 {
		port = settings.LocalHTTPPort
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listening on %s:%d: %w", f.host, port, err)
	}
	defer ln.Close()
	baseURL := "http://" + displayAddr(ln.Addr().(*net.TCPAddr))

	sup := &supervisor{
		exe: a.Exe, args: a.Args, dir: a.WorkDir, appRoot: root,
		baseEnv: o.environ(), env: env,
		initTimeout: a.InitTimeout, poll: 25 * time.Millisecond, stopGrace: shutdownTimeout,
		now: o.now, newID: o.newID, freePort: freeLoopbackPort,
		log: log, stdout: out, policy: newRestartPolicy(),
	}
	sup.init()
	transport := newHandlerTransport()
	defer transport.CloseIdleConnections()
	iv := &invoker{
		handler:         sup,
		client:          &http.Client{Transport: transport},
		forwardClient:   &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:             log,
		now:             o.now,
		newID:           o.newID,
		functionTimeout: a.FunctionTimeout,
		startWait:       time.Duration(errorEventsThreshold+1) * a.InitTimeout,
	}
	invCtx, cancelInvocations := context.WithCancel(context.Background())
	defer cancelInvocations()
	h := &host{app: a, router: rt, iv: iv, log: log, invocationCtx: invCtx}
	h.timers = &timers{iv: iv, log: log, now: o.now, loc: loc, states: states, async: h.async}

	supCtx, stopHandler := context.WithCancel(context.Background())
	defer stopHandler()
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(supCtx) }()

	select {
	case <-sup.firstReady:
	case err := <-supDone:
		if err == nil {
			err = errors.New("the custom handler stopped before it was ready")
		}
		return err
	case <-ctx.Done():
		stopHandler()
		<-supDone
		return nil
	}

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	h.timers.start(invCtx)
	_, _ = io.WriteString(out, h.banner(baseURL))

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-supDone:
		supDone <- runErr // for the wait below
	case err := <-srvDone:
		runErr = fmt.Errorf("serving: %w", err)
	}

	// Stop timers, then the front end, then in-flight background
	// invocations, then the handler.
	cronDone := h.timers.stop()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	cancelInvocations()
	waitTimeout(&h.background, shutdownTimeout)
	select {
	case <-cronDone.Done():
	case <-time.After(shutdownTimeout):
	}
	stopHandler()
	if err := <-supDone; runErr == nil && err != nil {
		runErr = err
	}
	return runErr
}

// displayAddr is the address to print: an unspecified listen address is
// reachable as 127.0.0.1.
func displayAddr(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

func waitTimeout(wg interface{ Wait() }, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
