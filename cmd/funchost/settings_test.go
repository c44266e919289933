package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestAppEnvEnvironmentWins(t *testing.T) {
	values := map[string]string{"A": "from-settings", "B": "from-settings", "C": "from-settings", "EMPTY": ""}
	env := newAppEnv(values, mapEnv(map[string]string{"A": "from-env", "C": ""}))
	tests := []struct {
		name, key, want string
		wantOK          bool
	}{
		{"environment wins", "A", "from-env", true},
		{"settings fill the gap", "B", "from-settings", true},
		{"empty environment value does not win", "C", "from-settings", true},
		{"empty setting", "EMPTY", "", true},
		{"unknown", "D", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := env.lookup(tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("lookup(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if want := []string{"A"}; !reflect.DeepEqual(env.skipped, want) {
		t.Errorf("skipped = %v; want %v", env.skipped, want)
	}
	child := env.childEnv([]string{"A=from-env", "PATH=/bin"}, map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1234"})
	joined := strings.Join(child, "\n")
	for _, want := range []string{"A=from-env", "B=from-settings", "C=from-settings", "FUNCTIONS_CUSTOMHANDLER_PORT=1234"} {
		if !strings.Contains(joined, want) {
			t.Errorf("childEnv lacks %q: %v", want, child)
		}
	}
	if strings.Contains(joined, "A=from-settings") {
		t.Errorf("childEnv overrides the environment's A: %v", child)
	}
}

func TestExpandArg(t *testing.T) {
	vars := map[string]string{"PORT": "7000", "NAME": "x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	tests := []struct{ in, want string }{
		{"--port=%PORT%", "--port=7000"},
		{"%NAME%-%PORT%", "x-7000"},
		{"--gone=%UNDEFINED%", "--gone="},
		{"%EMPTY%", ""},
		{"100%", "100%"},
		{"%%", "%%"},
		{"a%UNDEFINED%b%PORT%", "ab7000"},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := expandArg(tt.in, lookup); got != tt.want {
			t.Errorf("expandArg(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadSettingsFallback(t *testing.T) {
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("example only", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "local.settings.example.json", `{"Values":{"X":"example"},"Host":{"LocalHttpPort":7072}}`)
		s, err := loadSettings(dir)
		if err != nil || s.Values["X"] != "example" || s.LocalHTTPPort != 7072 || !strings.HasSuffix(s.Source, "local.settings.example.json") {
			t.Fatalf("loadSettings = %+v, %v; want the example file", s, err)
		}
	})
	t.Run("private copy wins", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "local.settings.example.json", `{"Values":{"X":"example"}}`)
		write(dir, "local.settings.json", `{"Values":{"X":"private"}}`)
		s, err := loadSettings(dir)
		if err != nil || s.Values["X"] != "private" {
			t.Fatalf("loadSettings = %+v, %v; want local.settings.json", s, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		s, err := loadSettings(t.TempDir())
		if err != nil || s.Source != "" || len(s.Values) != 0 {
			t.Fatalf("loadSettings = %+v, %v; want empty", s, err)
		}
	})
	t.Run("non-string value", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "local.settings.json", `{"Values":{"X":1}}`)
		if _, err := loadSettings(dir); err == nil {
			t.Fatal("loadSettings accepted a number value")
		}
	})
	t.Run("encrypted", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "local.settings.json", `{"IsEncrypted":true,"Values":{}}`)
		if _, err := loadSettings(dir); err == nil || !strings.Contains(err.Error(), "IsEncrypted") {
			t.Fatalf("loadSettings error = %v; want IsEncrypted refusal", err)
		}
	})
}
