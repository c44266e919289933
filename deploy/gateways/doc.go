// Package gateways holds modelauth's gateway recipes (nginx, Caddy and
// HAProxy configurations, tested here with the real servers; Envoy and
// Azure API Management configurations, parsed and checked against the
// app) and their tests. It has no code of its own: see docs/gateways.md.
package gateways
