// Package apierror maps outcomes to HTTP responses in one table and writes
// the JSON bodies of every function: {"error":{"code","message"}} for
// errors. Every 503 carries Retry-After (the error's [Error.RetryAfter],
// else its cause's [RetryAfterHinter], else [DefaultRetryAfter]).
//
// A message is what the caller sees; the wrapped cause is only logged, so an
// error from a store or an upstream never reaches a response. An error
// that carries an authentication challenge ([Challenger], such as
// package authn's failures) is answered with it as WWW-Authenticate.
package apierror

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Code is an outcome the caller acts on.
type Code string

// Codes, each with its HTTP status in [Status].
const (
	BadRequest       Code = "BadRequest"
	Unauthorized     Code = "Unauthorized"
	Forbidden        Code = "Forbidden"
	NotFound         Code = "NotFound"
	MethodNotAllowed Code = "MethodNotAllowed"
	Conflict         Code = "Conflict"
	TooLarge         Code = "PayloadTooLarge"
	BadGateway       Code = "BadGateway"
	GatewayTimeout   Code = "GatewayTimeout"
	Unavailable      Code = "ServiceUnavailable"
	// NotPublished: a write was made but could not be published to the
	// other instances (the change journal's record failed): it is not in
	// effect; call again.
	NotPublished Code = "NotPublished"
	Internal     Code = "InternalError"
)

var statusOf = map[Code]int{
	BadRequest:       http.StatusBadRequest,
	Unauthorized:     http.StatusUnauthorized,
	Forbidden:        http.StatusForbidden,
	NotFound:         http.StatusNotFound,
	MethodNotAllowed: http.StatusMethodNotAllowed,
	Conflict:         http.StatusConflict,
	TooLarge:         http.StatusRequestEntityTooLarge,
	BadGateway:       http.StatusBadGateway,
	GatewayTimeout:   http.StatusGatewayTimeout,
	Unavailable:      http.StatusServiceUnavailable,
	NotPublished:     http.StatusServiceUnavailable,
	Internal:         http.StatusInternalServerError,
}

// Status returns the HTTP status of code; an unknown code is a 500.
func Status(code Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// DefaultRetryAfter is the Retry-After of a 503 whose error names none.
const DefaultRetryAfter = 5 * time.Second

// Error is an outcome with a message safe to show the caller and an
// optional cause for the logs.
type Error struct {
	Code    Code
	Message string
	Err     error
	// RetryAfter is the Retry-After of a 503 (rounded up to whole
	// seconds, at least 1); 0 means the hint of the first
	// [RetryAfterHinter] in Err's chain (a throttled store's remaining
	// back-off), else [DefaultRetryAfter]. Other statuses
	// ignore it.
	RetryAfter time.Duration
}

// RetryAfterHinter is a cause that knows how long callers should wait
// before trying again (0: it does not know), such as package cache's
// HeldError.
type RetryAfterHinter interface {
	error
	RetryAfterHint() time.Duration
}

// retryAfter is the Retry-After of a 503 answering e.
func (e *Error) retryAfter() time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	var h RetryAfterHinter
	if e.Err != nil && errors.As(e.Err, &h) && h.RetryAfterHint() > 0 {
		return h.RetryAfterHint()
	}
	return DefaultRetryAfter
}

// New returns an Error without a cause.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Wrap returns an Error whose cause err is logged but never shown.
func Wrap(code Code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// LogLevel reports whether a failed request's e is worth a log line (it
// has a cause, or is a 5xx) and at which level: warn, or error for a 5xx.
func (e *Error) LogLevel() (slog.Level, bool) {
	status := Status(e.Code)
	if status >= 500 {
		return slog.LevelError, true
	}
	return slog.LevelWarn, e.Err != nil
}

// LogAttrs are e's attributes for that log line: code, status, message and
// the cause's text ("" without one).
func (e *Error) LogAttrs() []any {
	cause := ""
	if e.Err != nil {
		cause = e.Err.Error()
	}
	return []any{"code", string(e.Code), "status", Status(e.Code), "message", e.Message, "cause", cause}
}

// CodeOf returns the code of err: that of an *Error in its chain, else
// Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

type body struct {
	Error struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Challenger is an error whose answer carries an authentication
// challenge: package authn's failures, with their RFC 6750 challenge.
type Challenger interface {
	error
	// WWWAuthenticate returns the WWW-Authenticate value to answer with,
	// "" when none applies.
	WWWAuthenticate() string
}

// Write writes err as a JSON error response. An error that is not an *Error
// is answered as a 500 with a generic message. The first [Challenger] in
// err's chain sets WWW-Authenticate to its challenge, if it has one. A 503
// carries Retry-After, unless the response already has one.
// Errors with a cause, and every 5xx, are logged to log (which may be nil).
func Write(w http.ResponseWriter, log *slog.Logger, err error) {
	status, body := Prepare(w.Header(), log, err)
	w.WriteHeader(status)
	w.Write(body)
}

// Prepare does what [Write] does but for writing the answer: it sets the
// response headers in h (the challenge, Retry-After, the JSON content
// type), logs, and returns the status and the body (one line of JSON and a
// newline), for a caller that answers them its own way (validate's
// gateway mode, docs/design.md section 2.7).
func Prepare(h http.Header, log *slog.Logger, err error) (status int, data []byte) {
	var c Challenger
	if errors.As(err, &c) {
		if v := c.WWWAuthenticate(); v != "" {
			h.Set("WWW-Authenticate", v)
		}
	}
	var e *Error
	if !errors.As(err, &e) {
		e = Wrap(Internal, "internal error", err)
	}
	status = Status(e.Code)
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		h.Set("Retry-After", RetryAfterValue(e.retryAfter()))
	}
	if level, ok := e.LogLevel(); log != nil && ok {
		log.Log(context.Background(), level, "request_failed", e.LogAttrs()...)
	}
	var b body
	b.Error.Code = e.Code
	b.Error.Message = e.Message
	data, jerr := json.Marshal(b)
	if jerr != nil { // not reached: b is two strings
		status, data = http.StatusInternalServerError, []byte(internalBody)
	}
	setJSONHeaders(h)
	return status, append(data, '\n')
}

// RetryAfterValue is d as a Retry-After value: whole seconds, rounded up,
// at least 1.
func RetryAfterValue(d time.Duration) string {
	secs := (d + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(max(secs, 1)), 10)
}

// ServeNoStore answers r with serve, marked Cache-Control: no-store (the
// management functions' answers can hold keys and tokens); an error serve
// returns, before writing anything, is answered with [Write], challenge
// included.
func ServeNoStore(w http.ResponseWriter, r *http.Request, log *slog.Logger, serve func(http.ResponseWriter, *http.Request) error) {
	w.Header().Set("Cache-Control", "no-store")
	if err := serve(w, r); err != nil {
		Write(w, log, err)
	}
}

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data = []byte(internalBody)
	}
	WriteRawJSON(w, status, append(data, '\n'))
}

const internalBody = `{"error":{"code":"InternalError","message":"internal error"}}`

// Header values shared by every response; full slices, so that an append
// to a response's header copies rather than changes them.
var (
	jsonType = []string{"application/json; charset=utf-8"}
	nosniff  = []string{"nosniff"}
)

func setJSONHeaders(h http.Header) {
	h["Content-Type"] = jsonType[:1:1]
	h["X-Content-Type-Options"] = nosniff[:1:1]
}

// WriteRawJSON writes body, which must be JSON, with status.
func WriteRawJSON(w http.ResponseWriter, status int, body []byte) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(body)
}
