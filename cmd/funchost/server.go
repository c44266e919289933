package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// host is the local Functions host's HTTP front end: function routes,
// the admin and Event Grid endpoints. It is safe for concurrent use.
type host struct {
	app    *app
	router *router
	iv     *invoker
	timers *timers
	log    *slog.Logger

	// invocationCtx is the context of invocations that outlive the
	// request that started them; it ends at shutdown.
	invocationCtx context.Context
	background    sync.WaitGroup
}

// async runs f in the background, tracked for shutdown.
func (h *host) async(f func()) {
	h.background.Add(1)
	go func() {
		defer h.background.Done()
		f()
	}()
}

func (h *host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, _ := splitPath(r.URL.EscapedPath())
	is := func(words ...string) bool {
		if len(segs) < len(words) {
			return false
		}
		for i, w := range words {
			if !strings.EqualFold(segs[i], w) {
				return false
			}
		}
		return true
	}
	switch {
	case len(segs) == 3 && is("admin", "functions"):
		h.adminInvoke(w, r, segs[2])
		return
	case len(segs) == 3 && is("admin", "host", "status"):
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"state": "Running", "version": hostVersion})
		return
	case len(segs) == 3 && is("runtime", "webhooks", "eventgrid"):
		h.eventGrid(w, r)
		return
	}
	if route, _ := h.router.find(r.Method, r.URL.EscapedPath()); route != nil {
		h.iv.forward(w, r, route.fn)
		return
	}
	if len(segs) == 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Your Functions 4.0 app is up and running (modelauth local host)\n")
		return
	}
	http.NotFound(w, r)
}

// adminInvoke serves POST /admin/functions/<name> with {"input": "..."}:
// 202, and the function runs once in the background (DOC-MANUAL).
func (h *host) adminInvoke(w http.ResponseWriter, r *http.Request, name string) {
	fn := h.app.function(name)
	if fn == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var body struct {
		Input *string `json:"input"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if strings.TrimSpace(string(raw)) != "" {
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, `the body must be {"input": "..."}`, http.StatusBadRequest)
			return
		}
	}
	input := ""
	if body.Input != nil {
		input = *body.Input
	}
	ctx := h.invocationCtx
	switch fn.Trigger {
	case triggerHTTP:
		http.Error(w, fmt.Sprintf("%s is an HTTP function: call its route instead", fn.Name), http.StatusBadRequest)
		return
	case triggerTimer:
		st := h.timers.state(fn)
		h.async(func() { h.timers.runNow(ctx, st) })
	case triggerEventGrid:
		events, err := parseEvents([]byte(input))
		if err != nil || len(events) == 0 {
			http.Error(w, "input must hold an Event Grid event as JSON", http.StatusBadRequest)
			return
		}
		h.async(func() {
			if fn.Many {
				_ = h.deliverEvents(ctx, fn, events)
				return
			}
			_ = h.invokeEvent(ctx, fn, reasonManual, events[0])
		})
	}
	w.WriteHeader(http.StatusAccepted)
}

// functionNames lists the names of the functions with trigger t.
func (h *host) functionNames(t string) []string {
	var names []string
	for _, fn := range h.app.Functions {
		if fn.Trigger == t {
			names = append(names, fn.Name)
		}
	}
	return names
}

// banner is what the host prints once it is ready: the URL line that
// tests parse, then the functions as func start lists them.
func (h *host) banner(baseURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "modelauth local host listening on %s\n\nFunctions:\n\n", baseURL)
	for _, fn := range h.app.Functions {
		switch fn.Trigger {
		case triggerHTTP:
			methods := fn.Methods
			if methods == nil {
				methods = allMethods
			}
			fmt.Fprintf(&b, "\t%s: [%s] %s/%s\n\n", fn.Name, strings.Join(methods, ","), baseURL, h.app.fullRoute(fn))
		default:
			fmt.Fprintf(&b, "\t%s: %s\n\n", fn.Name, fn.Trigger)
		}
	}
	return b.String()
}
