package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// errConfig is wrapped by every refusal to start because of the app's
// host.json, function.json or settings.
var errConfig = errors.New("invalid function app")

// app is a function app as the host reads it at start.
type app struct {
	Root            string // absolute
	Exe             string // absolute path, or a command found on PATH
	Args            []string
	WorkDir         string // absolute
	Forwarding      bool   // customHandler.enableForwardingHttpRequest
	RoutePrefix     string
	FunctionTimeout time.Duration // 0: unbounded
	InitTimeout     time.Duration
	Functions       []*function // sorted by name
}

type hostFile struct {
	Version         string  `json:"version"`
	FunctionTimeout *string `json:"functionTimeout"`
	Extensions      struct {
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
	CustomHandler *struct {
		Description *struct {
			DefaultExecutablePath string   `json:"defaultExecutablePath"`
			Arguments             []string `json:"arguments"`
			WorkingDirectory      string   `json:"workingDirectory"`
			DefaultWorkerPath     string   `json:"defaultWorkerPath"`
			WorkerArguments       []string `json:"workerArguments"`
		} `json:"description"`
		EnableForwardingHTTPRequest bool    `json:"enableForwardingHttpRequest"`
		InitializationTimeout       *string `json:"initializationTimeout"`
	} `json:"customHandler"`
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, as editors on Windows write
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	return nil
}

// loadHost reads root/host.json into a, except the functions.
func loadHost(root string) (*app, error) {
	var h hostFile
	path := filepath.Join(root, "host.json")
	if err := readJSON(path, &h); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no host.json in %s: --app must name the function app root", errConfig, root)
		}
		return nil, err
	}
	if h.Version != "2.0" {
		return nil, fmt.Errorf("%w: %s: version must be \"2.0\", got %q", errConfig, path, h.Version)
	}
	ch := h.CustomHandler
	if ch == nil || ch.Description == nil {
		return nil, fmt.Errorf("%w: %s: no customHandler.description: the local host runs custom-handler apps only", errConfig, path)
	}
	d := ch.Description
	if strings.TrimSpace(d.DefaultExecutablePath) == "" {
		return nil, fmt.Errorf("%w: %s: customHandler.description.defaultExecutablePath is empty", errConfig, path)
	}
	a := &app{Root: root, Forwarding: ch.EnableForwardingHTTPRequest, RoutePrefix: "api", InitTimeout: 30 * time.Second}
	var err error
	if a.Exe, err = resolveExecutable(root, d.DefaultExecutablePath); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	a.Args = append(a.Args, d.Arguments...)
	if d.DefaultWorkerPath != "" {
		a.Args = append(a.Args, d.DefaultWorkerPath)
	}
	a.Args = append(a.Args, d.WorkerArguments...)
	a.WorkDir = root
	if d.WorkingDirectory != "" {
		a.WorkDir = d.WorkingDirectory
		if !filepath.IsAbs(a.WorkDir) {
			a.WorkDir = filepath.Join(root, a.WorkDir)
		}
		if st, err := os.Stat(a.WorkDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: %s: customHandler.description.workingDirectory %q is not a directory", errConfig, path, d.WorkingDirectory)
		}
	}
	if p := h.Extensions.HTTP.RoutePrefix; p != nil {
		a.RoutePrefix = strings.Trim(*p, "/")
		if strings.ContainsAny(a.RoutePrefix, "{}") {
			return nil, fmt.Errorf("%w: %s: extensions.http.routePrefix %q must be literal", errConfig, path, *p)
		}
	}
	ft := ""
	if h.FunctionTimeout != nil {
		ft = *h.FunctionTimeout
	}
	if a.FunctionTimeout, err = parseFunctionTimeout(ft); err != nil {
		return nil, fmt.Errorf("%w: %s: functionTimeout: %w", errConfig, path, err)
	}
	if t := ch.InitializationTimeout; t != nil && *t != "" {
		if a.InitTimeout, err = parseTimeSpan(*t); err != nil || a.InitTimeout <= 0 {
			return nil, fmt.Errorf("%w: %s: customHandler.initializationTimeout %q must be a positive TimeSpan", errConfig, path, *t)
		}
	}
	return a, nil
}

// resolveExecutable applies the host's rule: a relative path that exists
// under the app root becomes absolute; otherwise a bare name is looked up
// on PATH.
func resolveExecutable(root, p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	full := filepath.Join(root, p)
	if st, err := os.Stat(full); err == nil && !st.IsDir() {
		return full, nil
	}
	if !strings.ContainsAny(p, `/\`) {
		if lp, err := exec.LookPath(p); err == nil {
			return lp, nil
		}
	}
	return "", fmt.Errorf("customHandler.description.defaultExecutablePath %q: not found under %s nor on PATH (build the handler first)", p, root)
}
