package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// maxWebhookBody bounds Event Grid and admin request bodies (Event Grid
// sends at most 1 MB per batch).
const maxWebhookBody = 16 << 20

// eventGrid serves POST /runtime/webhooks/EventGrid?functionName=<name>
// as the Event Grid extension does (functions-protocol.md §3.3).
func (h *host) eventGrid(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := r.URL.Query().Get("functionName")
	fn := h.app.function(name)
	if fn == nil || fn.Trigger != triggerEventGrid {
		h.log.Error(fmt.Sprintf("cannot find function: '%s', available function names: [%s]", name, strings.Join(h.functionNames(triggerEventGrid), ", ")))
		http.Error(w, fmt.Sprintf("cannot find function: '%s'", name), http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	switch strings.ToLower(r.Header.Get("aeg-event-type")) {
	case "subscriptionvalidation":
		events, err := parseEvents(body)
		if err != nil || len(events) == 0 {
			http.Error(w, "a SubscriptionValidation request needs an event with data.validationCode", http.StatusBadRequest)
			return
		}
		var ev struct {
			Data struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if err := json.Unmarshal(events[0], &ev); err != nil {
			http.Error(w, "a SubscriptionValidation request needs an event with data.validationCode", http.StatusBadRequest)
			return
		}
		h.log.Info("perform handshake with eventGrid for function: " + fn.Name)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": ev.Data.ValidationCode})
	case "notification":
		events, err := parseEvents(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := h.deliverEvents(h.invocationCtx, fn, events); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case "unsubscribe":
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "missing or unknown aeg-event-type header (Notification, SubscriptionValidation or Unsubscribe)", http.StatusBadRequest)
	}
}

// parseEvents accepts one event object or an array of events.
func parseEvents(body []byte) ([]json.RawMessage, error) {
	t := bytes.TrimSpace(body)
	switch {
	case len(t) > 0 && t[0] == '[':
		var events []json.RawMessage
		if err := json.Unmarshal(t, &events); err != nil {
			return nil, fmt.Errorf("the body is not a JSON array of events: %w", err)
		}
		return events, nil
	case len(t) > 0 && t[0] == '{':
		if !json.Valid(t) {
			return nil, errors.New("the body is not a JSON event object")
		}
		return []json.RawMessage{json.RawMessage(t)}, nil
	}
	return nil, errors.New("the body must be an event object or an array of events")
}

// deliverEvents invokes fn once per event, concurrently (or once for the
// whole batch with cardinality many). It returns the first failure.
func (h *host) deliverEvents(ctx context.Context, fn *function, events []json.RawMessage) error {
	if fn.Many {
		arr, _ := json.Marshal(events)
		return h.iv.invoke(ctx, fn, reasonEvent, map[string]any{fn.Binding: hostValue(arr)}, nil)
	}
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.invokeEvent(ctx, fn, reasonEvent, ev)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// invokeEvent invokes fn with one event: Data.<binding> is the event,
// Metadata.data its data.
func (h *host) invokeEvent(ctx context.Context, fn *function, reason string, ev json.RawMessage) error {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(ev, &fields) // not an object: no "data"
	return h.iv.invoke(ctx, fn, reason,
		map[string]any{fn.Binding: hostValue(ev)},
		map[string]any{"data": hostValue(fields["data"])})
}
