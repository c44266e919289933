package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/client"
)

// Exit statuses (see the package doc).
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitTransport = 3
)

// DefaultURL is the local host's app URL (`make run`).
const DefaultURL = "http://localhost:7071/api"

// Environment variables read by run.
const (
	envURL        = "MODELAUTH_URL"
	envKey        = "MODELAUTH_KEY"
	envCredential = "MODELAUTH_CREDENTIAL"
)

const usage = `modelauth: calls a modelauth function app.

Usage:
  modelauth [global flags] <command> [flags] <service>

Commands:
  keys get <service> [--active]          the service's keys, the active one marked
                                         (--active: the active key alone)
  keys regen <service> --type Primary|Secondary [--value V]
                                         replace one key; the old value stops working
  keys rotate <service>                  rotate the keys now (takes 2 x KEY_CACHE_TTL)
  token get <service>                    a new token: the token alone on stdout,
                                         its expiry and refreshAfter on stderr
  token watch <service>                  a token, then each refresh at its
                                         refreshAfter, until Ctrl-C
  validate <service> [--credential V]    check a key or a token for the service
                                         (default: $MODELAUTH_CREDENTIAL)
  help                                   this text

Global flags (before or after the command):
  --url URL        the app's URL with its route prefix
                   (default $MODELAUTH_URL, else http://localhost:7071/api)
  --key VALUE      the caller's credential: the administrator key or an Entra
                   token (default $MODELAUTH_KEY; prefer the variable for secrets)
  --output FORMAT  text or json (default text)
  --timeout D      the most one call may take (default 60s)

Keys and tokens go to stdout only; errors are one line on stderr.

Exit status:
  0  success (validate: the credential is valid)
  1  the app refused or failed the call (4xx or 5xx; validate: refused)
  2  usage error: unknown command, missing argument, bad flag
  3  the app cannot be reached (connection, TLS, timeout), or interrupted
`

// serviceName is the app's service-name pattern. Names that do not match
// are refused before any call, and are never echoed: a token pasted in the
// service's place must not reach stderr.
var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// commandWord is what an unknown command must look like to be echoed.
var commandWord = regexp.MustCompile(`^[a-z]{1,20}( [a-z]{1,20})?$`)

// options are the global flags.
type options struct {
	url     string
	key     string
	output  string
	timeout time.Duration
}

// register adds the global flags to fs, with the current values as
// defaults, so that flags given before the command carry over.
func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "url", o.url, "the app's URL with its route prefix")
	fs.StringVar(&o.key, "key", o.key, "the caller's credential")
	fs.StringVar(&o.output, "output", o.output, "text or json")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "the most one call may take")
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// cli is one run of the command.
type cli struct {
	opts   options
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// now is the clock for the token descriptions; watch's timers follow
	// the runtime's clock (testing/synctest fakes both).
	now func() time.Time
}

// action does a command's work for service.
type action func(ctx context.Context, c *cli, mc *client.Client, service string) error

// command is one subcommand: it adds its own flags to fs and returns the
// action, which reads them once fs is parsed.
type command func(fs *flag.FlagSet) action

// run is the whole command: args without the program name; it returns the
// exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now}
	c.opts = options{url: getenv(envURL), key: getenv(envKey), output: "text", timeout: 60 * time.Second}
	if c.opts.url == "" {
		c.opts.url = DefaultURL
	}
	name, err := c.dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	prefix := "modelauth: "
	if name != "" {
		prefix += name + ": "
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s%s (see modelauth help)\n", prefix, ue.msg)
		return exitUsage
	}
	msg, code := describe(err, c.opts)
	fmt.Fprintf(stderr, "%s%s\n", prefix, msg)
	return code
}

// commands maps "group verb" to its command.
var commands = map[string]command{
	"keys get":    keysGet,
	"keys regen":  keysRegen,
	"keys rotate": keysRotate,
	"token get":   tokenGet,
	"token watch": tokenWatch,
	"validate":    validateCmd,
}

// dispatch parses args and runs the command; it returns the name used in
// error messages ("keys get iris").
func (c *cli) dispatch(ctx context.Context, args []string) (string, error) {
	top := flag.NewFlagSet("modelauth", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	c.opts.register(top)
	if err := top.Parse(args); err != nil {
		return "", flagError(err)
	}
	args = top.Args()
	if len(args) == 0 {
		return "", usagef("no command")
	}
	var name string
	switch args[0] {
	case "help":
		return "", flag.ErrHelp
	case "keys", "token":
		if len(args) < 2 {
			return "", usagef("%s: missing subcommand", args[0])
		}
		name, args = args[0]+" "+args[1], args[2:]
	default:
		name, args = args[0], args[1:]
	}
	cmd := commands[name]
	if cmd == nil {
		if commandWord.MatchString(name) {
			return "", usagef("unknown command %q", name)
		}
		return "", usagef("unknown command")
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.opts.register(fs)
	act := cmd(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return name, flagError(err)
	}
	if len(pos) == 0 {
		return name, usagef("missing <service>")
	}
	if len(pos) > 1 {
		// Never echo it: it may be a key or a token.
		return name, usagef("unexpected argument after <service> (credentials go in flags or the environment)")
	}
	service := pos[0]
	if !serviceName.MatchString(service) {
		return name, usagef("not a service name (a-z, 0-9 and -, at most 40 characters)")
	}
	name += " " + service
	mc, err := c.client()
	if err != nil {
		return name, err
	}
	return name, act(ctx, c, mc, service)
}

// client checks the global options and returns the client they describe.
func (c *cli) client() (*client.Client, error) {
	if c.opts.output != "text" && c.opts.output != "json" {
		return nil, usagef("--output must be text or json")
	}
	if c.opts.timeout <= 0 {
		return nil, usagef("--timeout must be positive")
	}
	u, err := url.Parse(c.opts.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--url must be an http or https URL, such as %s", DefaultURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, usagef("--url must not hold credentials, a query or a fragment")
	}
	mc := &client.Client{BaseURL: c.opts.url, HTTPClient: &http.Client{Timeout: c.opts.timeout}}
	if c.opts.key != "" {
		mc.Credential = client.Static(c.opts.key)
	}
	return mc, nil
}

// parseInterleaved parses flags placed anywhere among the positional
// arguments, which it returns; after "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// flagNameRE is what a flag name looks like; anything else in a flag's
// place may be a key or token typed there, and is not repeated.
var flagNameRE = regexp.MustCompile(`^-{1,2}[a-z][a-z-]{0,20}$`)

// flagError turns the flag package's errors into usage errors. They never
// repeat a value: a secret may stand where a flag was expected (a key can
// begin with '-').
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		f := strings.TrimPrefix(msg, "flag provided but not defined: ")
		if flagNameRE.MatchString(f) {
			return usagef("unknown flag %s", f)
		}
		return usagef("an argument that begins with '-' is not a known flag (not repeated: it may be a secret; put -- before it)")
	case strings.HasPrefix(msg, "invalid value") || strings.HasPrefix(msg, "invalid boolean value"):
		if _, f, ok := strings.Cut(msg, " for flag "); ok {
			name, _, _ := strings.Cut(f, ":")
			return usagef("invalid value for flag %s", name)
		}
		return usagef("invalid flag value")
	case strings.HasPrefix(msg, "flag needs an argument: "):
		if f := strings.TrimPrefix(msg, "flag needs an argument: "); flagNameRE.MatchString(f) {
			return usagef("flag needs an argument: %s", f)
		}
		return usagef("a flag needs an argument")
	case strings.HasPrefix(msg, "bad flag syntax"):
		return usagef("bad flag syntax (not repeated: it may be a secret)")
	}
	return usagef("bad flags")
}

// describe returns the one-line message for a failed call and its exit
// status.
func describe(err error, o options) (string, int) {
	var ae *client.Error
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%d %s", ae.Status, http.StatusText(ae.Status))
		if ae.Message != "" {
			msg += ": " + ae.Message
		}
		if ae.Status == http.StatusUnauthorized && o.key == "" {
			msg += " (no credential: set --key or " + envKey + ")"
		}
		return msg, exitFailed
	}
	if errors.Is(err, client.ErrBadResponse) {
		return err.Error(), exitFailed
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted", exitTransport
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Sprintf("no answer from %s within %v", o.url, o.timeout), exitTransport
		}
		return fmt.Sprintf("cannot reach %s: %v", o.url, ue.Err), exitTransport
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer from %s within %v", o.url, o.timeout), exitTransport
	}
	return err.Error(), exitFailed
}
