package main

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The addresses and cache folder the nginx recipes are written for (`make
// run`'s), as deploy/gateways/gateways_test.go names them; the gateway
// group replaces them with its own.
const (
	recipeModelAuth = "127.0.0.1:7071"
	recipeModel     = "127.0.0.1:5001"
	recipeGateway   = "127.0.0.1:8080"
	recipeCacheDir  = "/run/nginx-modelauth"
)

// aloneConf is the gateway group's baseline: nginx in front of the model
// with no authentication, written for the recipes' addresses.
//
//go:embed nginx-alone.conf
var aloneConf string

// addrRE matches a host:port as nginx's files write one.
var addrRE = regexp.MustCompile(`\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-fA-F:]+\]):\d+\b`)

// render replaces in conf, the nginx file name, each old of pairs (old,
// new, old, new...) with its new. An old that conf does not hold is an
// error, and so is an address left in a directive that is none of the
// news: a recipe that gained an upstream, or moved one, would otherwise
// send the benchmark to `make run`'s servers or to nothing.
func render(name, conf string, pairs ...string) (string, error) {
	if len(pairs)%2 != 0 {
		return "", fmt.Errorf("render %s: pairs of old, new", name)
	}
	var news []string
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(conf, pairs[i]) {
			return "", fmt.Errorf("%s does not name %q", name, pairs[i])
		}
		conf = strings.ReplaceAll(conf, pairs[i], pairs[i+1])
		news = append(news, pairs[i+1])
	}
	for n, line := range strings.Split(conf, "\n") {
		directive, _, _ := strings.Cut(line, "#")
		for _, addr := range addrRE.FindAllString(directive, -1) {
			if !slices.Contains(news, addr) {
				return "", fmt.Errorf("%s:%d: %q is an address the benchmark does not replace", name, n+1, addr)
			}
		}
	}
	return conf, nil
}
