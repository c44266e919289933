package amltest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The operation URLs' last-but-one segment: the Azure-AsyncOperation URL
// answers the operation's status body, the Location URL its result.
const (
	statusSegment = "mfeOperationsStatus"
	resultSegment = "mfeOperationResults"
)

// The status values of an ARM asynchronous operation.
const (
	statusInProgress = "InProgress"
	statusSucceeded  = "Succeeded"
	statusFailed     = "Failed"
)

// operation is one key regeneration (OnlineEndpoints_RegenerateKeys).
type operation struct {
	id         string
	endpoint   string // the endpoint's map key
	slot       int
	value      string
	sub, loc   string
	apiVersion string
	started    time.Time
	ended      time.Time
	polls      int // InProgress answers so far
	status     string
	never      bool
	fail       *failure
}

// failure is how an operation made to fail ends.
type failure struct{ code, message string }

// FailOperations makes the next n regenerateKeys operations end Failed,
// with ARM's error (code and message) in the status body, without
// changing the key.
func (s *Server) FailOperations(n int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, failure{code: code, message: message})
	}
}

// NeverEnd makes the next n regenerateKeys operations stay InProgress for
// ever. It takes precedence over FailOperations for those operations.
func (s *Server) NeverEnd(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.neverNext += n
}

// serveRegenerate starts a regeneration: 202 Accepted with Location (and,
// as the spec's example shows, Azure-AsyncOperation) and Retry-After.
func (s *Server) serveRegenerate(w http.ResponseWriter, r *http.Request, er ref) {
	var body struct {
		KeyType  *string `json:"keyType"`
		KeyValue *string `json:"keyValue"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.KeyType == nil {
		writeARMError(w, http.StatusBadRequest, "BadRequest", "The keyType property is required: 'Primary' or 'Secondary'.")
		return
	}
	slot, ok := keySlot(*body.KeyType)
	if !ok {
		writeARMError(w, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("The value '%s' of keyType is not valid: use 'Primary' or 'Secondary'.", *body.KeyType))
		return
	}
	value := newKey()
	if body.KeyValue != nil && *body.KeyValue != "" {
		value = *body.KeyValue
	}

	s.mu.Lock()
	e := s.endpoints[er.key()]
	if e == nil { // deleted since serveEndpoint looked
		s.mu.Unlock()
		writeARMError(w, http.StatusNotFound, "ResourceNotFound", "The online endpoint was deleted.")
		return
	}
	op := &operation{
		id:         newGUID(),
		endpoint:   er.key(),
		slot:       slot,
		value:      value,
		sub:        er.sub,
		loc:        e.location,
		apiVersion: r.URL.Query().Get("api-version"),
		started:    s.now().UTC(),
		status:     statusInProgress,
	}
	switch {
	case s.neverNext > 0:
		s.neverNext--
		op.never = true
	case len(s.failNext) > 0:
		op.fail = &s.failNext[0]
		s.failNext = s.failNext[1:]
	}
	s.ops[op.id] = op
	s.mu.Unlock()
	s.count.started.Add(1)

	h := w.Header()
	h.Set("Location", s.operationURL(op, resultSegment))
	if !s.locationOnly {
		h.Set("Azure-AsyncOperation", s.operationURL(op, statusSegment))
	}
	s.setRetryAfter(w)
	writeEmpty(w, http.StatusAccepted)
}

func (s *Server) operationURL(op *operation, segment string) string {
	return s.URL + "/subscriptions/" + op.sub + "/providers/" + provider + "/locations/" + op.loc +
		"/" + segment + "/" + op.id + "?api-version=" + url.QueryEscape(op.apiVersion)
}

func (s *Server) setRetryAfter(w http.ResponseWriter) {
	if s.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
	}
}

// parseOperationPath parses
// /subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{loc}/{segment}/{id}.
func parseOperationPath(path string) (segment, id string, ok bool) {
	p := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "providers") ||
		!strings.EqualFold(p[3], provider) || !strings.EqualFold(p[4], "locations") || p[7] == "" {
		return "", "", false
	}
	switch {
	case strings.EqualFold(p[6], statusSegment):
		return statusSegment, p[7], true
	case strings.EqualFold(p[6], resultSegment):
		return resultSegment, p[7], true
	}
	return "", "", false
}

// servePoll answers a poll of an operation's status (Azure-AsyncOperation)
// or result (Location) URL. Each poll of either counts toward Options.Polls.
func (s *Server) servePoll(w http.ResponseWriter, r *http.Request, segment, id string) {
	s.mu.Lock()
	op := s.ops[id]
	if op == nil {
		s.mu.Unlock()
		writeARMError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The operation '%s' was not found.", id))
		return
	}
	s.advanceLocked(op)
	o := *op
	s.mu.Unlock()

	if segment == statusSegment {
		body := map[string]any{
			"id":        strings.TrimPrefix(s.operationURL(&o, statusSegment), s.URL),
			"name":      o.id,
			"status":    o.status,
			"startTime": o.started.Format(time.RFC3339Nano),
		}
		if o.status != statusInProgress {
			body["endTime"] = o.ended.Format(time.RFC3339Nano)
		}
		switch o.status {
		case statusInProgress:
			s.setRetryAfter(w)
		case statusFailed:
			body["error"] = armErrorDetail{Code: o.fail.code, Message: o.fail.message}
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	switch o.status {
	case statusInProgress:
		w.Header().Set("Location", s.operationURL(&o, resultSegment))
		s.setRetryAfter(w)
		writeEmpty(w, http.StatusAccepted)
	case statusSucceeded:
		writeEmpty(w, http.StatusOK)
	default:
		// 400, not 500: azcore's Location poller takes 500 for "still
		// running" (pollers.IsNonTerminalHTTPStatusCode).
		writeARMError(w, http.StatusBadRequest, o.fail.code, o.fail.message)
	}
}

// advanceLocked moves an operation in progress on by one poll: it answers
// InProgress for Options.Polls polls, then ends.
func (s *Server) advanceLocked(op *operation) {
	if op.status != statusInProgress || op.never {
		return
	}
	if op.polls < s.polls {
		op.polls++
		return
	}
	now := s.now()
	op.ended = now.UTC()
	e := s.endpoints[op.endpoint]
	switch {
	case op.fail != nil:
		op.status = statusFailed
		s.count.failed.Add(1)
	case e == nil:
		op.status = statusFailed
		op.fail = &failure{code: "ResourceNotFound", message: "The online endpoint was deleted while its keys were regenerated."}
		s.count.failed.Add(1)
	default:
		op.status = statusSucceeded
		e.keys[op.slot] = op.value
		e.scoringKeys(now)
		e.pending = append(e.pending, keyChange{at: now.Add(s.scoringLag), slot: op.slot, value: op.value})
		e.scoringKeys(now)
		s.count.succeeded.Add(1)
	}
}
