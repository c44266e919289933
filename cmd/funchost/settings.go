package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// localSettings is what the host uses from local.settings.json.
type localSettings struct {
	// Source is the file read, or "" if there was none.
	Source string
	// Values are the app settings, to become environment variables.
	Values map[string]string
	// LocalHTTPPort is Host.LocalHttpPort, or 0.
	LocalHTTPPort int
}

type settingsFile struct {
	IsEncrypted bool              `json:"IsEncrypted"`
	Values      map[string]string `json:"Values"`
	Host        struct {
		LocalHTTPPort int `json:"LocalHttpPort"`
	} `json:"Host"`
}

// settingsFiles are tried in order; the example file is the checked-in
// template that docs/design.md (section 3) asks for, used when no private copy exists.
var settingsFiles = []string{"local.settings.json", "local.settings.example.json"}

// loadSettings reads the first of settingsFiles that exists under root.
// Neither existing is not an error.
func loadSettings(root string) (localSettings, error) {
	for _, name := range settingsFiles {
		path := filepath.Join(root, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return localSettings{}, err
		}
		var f settingsFile
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&f); err != nil {
			return localSettings{}, fmt.Errorf("%s: %w (Values must map names to strings)", path, err)
		}
		if f.IsEncrypted {
			return localSettings{}, fmt.Errorf("%s: IsEncrypted is true; the local host cannot decrypt settings (func settings decrypt)", path)
		}
		if f.Host.LocalHTTPPort < 0 || f.Host.LocalHTTPPort > 65535 {
			return localSettings{}, fmt.Errorf("%s: Host.LocalHttpPort %d out of range", path, f.Host.LocalHTTPPort)
		}
		for k := range f.Values {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return localSettings{}, fmt.Errorf("%s: invalid setting name %q", path, k)
			}
		}
		return localSettings{Source: path, Values: f.Values, LocalHTTPPort: f.Host.LocalHTTPPort}, nil
	}
	return localSettings{Values: map[string]string{}}, nil
}

// appEnv is the host's view of app settings: the process environment,
// then the local settings' Values that the environment does not define,
// as Core Tools applies them.
type appEnv struct {
	getenv  func(string) string
	applied map[string]string // Values the environment does not shadow
	skipped []string          // Values shadowed by the environment, sorted
}

// newAppEnv applies values over getenv. A name whose environment value is
// non-empty keeps it, and is reported in skipped (Core Tools: "Skipping 'X'
// from local settings as it's already defined in current environment
// variables").
func newAppEnv(values map[string]string, getenv func(string) string) *appEnv {
	e := &appEnv{getenv: getenv, applied: map[string]string{}}
	for k, v := range values {
		if getenv(k) != "" {
			e.skipped = append(e.skipped, k)
			continue
		}
		e.applied[k] = v
	}
	sort.Strings(e.skipped)
	return e
}

// lookup returns an app setting: the non-empty environment value, else the
// applied local setting.
func (e *appEnv) lookup(name string) (string, bool) {
	if v := e.getenv(name); v != "" {
		return v, true
	}
	v, ok := e.applied[name]
	return v, ok
}

// childEnv returns base plus the applied settings plus extra, later entries
// winning (os/exec keeps the last value of a duplicated name).
func (e *appEnv) childEnv(base []string, extra map[string]string) []string {
	env := append([]string(nil), base...)
	for _, m := range []map[string]string{e.applied, extra} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}

// percentTokenRE is the host's pattern for leftover %VAR% tokens, which it
// deletes from handler arguments.
var percentTokenRE = regexp.MustCompile(`%(.+?)%`)

// expandArg expands %NAME% in a handler argument as the host does:
// Environment.ExpandEnvironmentVariables (a defined name is replaced, an
// undefined one left as is), then every remaining %X% token is deleted.
func expandArg(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			break
		}
		j += i + 1
		if name := s[i+1 : j]; name != "" {
			if v, ok := lookup(name); ok {
				b.WriteString(s[:i])
				b.WriteString(v)
				s = s[j+1:]
				continue
			}
		}
		// Keep "...%NAME" and rescan from the closing '%', as Windows does.
		b.WriteString(s[:j])
		s = s[j:]
	}
	b.WriteString(s)
	return percentTokenRE.ReplaceAllString(b.String(), "")
}

// errSetting is wrapped when a %Setting% reference does not resolve.
var errSetting = errors.New("app setting not found")

// resolveSettingRefs replaces every %Name% in s with the app setting Name,
// as the WebJobs name resolver does for binding properties such as a
// timer's schedule. A reference to a setting that is not defined, or
// defined empty, is an error wrapping errSetting.
func resolveSettingRefs(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			return "", fmt.Errorf("unbalanced %% in %q", s)
		}
		j += i + 1
		name := s[i+1 : j]
		v, ok := lookup(name)
		if name == "" || !ok || v == "" {
			return "", fmt.Errorf("%w: '%%%s%%' does not resolve to a value", errSetting, name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[j+1:]
	}
	b.WriteString(s)
	return b.String(), nil
}
