package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// listenPrefix starts the line that tests and scripts parse; it must not
// change.
const listenPrefix = "modelauth local host listening on "

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    flags
		wantErr bool
	}{
		{"defaults", nil, flags{app: ".", port: 7071, host: "127.0.0.1"}, false},
		{"all", []string{"--app", "build/app", "--port", "0", "--host", "0.0.0.0"}, flags{app: "build/app", port: 0, portSet: true, host: "0.0.0.0"}, false},
		{"explicit default port is set", []string{"-port=7071"}, flags{app: ".", port: 7071, portSet: true, host: "127.0.0.1"}, false},
		{"bad port", []string{"--port", "70000"}, flags{}, true},
		{"extra argument", []string{"start"}, flags{}, true},
		{"unknown flag", []string{"--nope"}, flags{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, &bytes.Buffer{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v; want error %v", tt.args, err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseFlags(%q) = %+v; want %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestRunRefusesBeforeStarting(t *testing.T) {
	var out bytes.Buffer
	root := writeApp(t, map[string]string{"f/function.json": strings.Replace(timerFn, "0 0 * * * *", "%MISSING%", 1)})
	err := run(context.Background(), []string{"--app", root, "--port", "0"}, func(string) string { return "" }, &out)
	if !errors.Is(err, errConfig) || !strings.Contains(err.Error(), `function "f"`) {
		t.Fatalf("run = %v; want a config error naming the function", err)
	}
	if strings.Contains(out.String(), listenPrefix) {
		t.Errorf("run printed the URL line though it refused to start")
	}
	if err := run(context.Background(), []string{"--bogus"}, func(string) string { return "" }, &out); !errors.Is(err, errUsage) {
		t.Errorf("run(--bogus) = %v; want errUsage", err)
	}
}

func TestDisplayAddr(t *testing.T) {
	tests := []struct {
		addr *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7071}, "127.0.0.1:7071"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 80}, "127.0.0.1:80"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8}, "[::1]:8"},
	}
	for _, tt := range tests {
		if got := displayAddr(tt.addr); got != tt.want {
			t.Errorf("displayAddr(%v) = %q; want %q", tt.addr, got, tt.want)
		}
	}
}
