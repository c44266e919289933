package azfunc

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// MaxRequestBytes is the largest invocation envelope [DecodeInvokeRequest]
// accepts. An Event Grid event may be up to 1 MB and the host sends its data
// twice (in Data and in Metadata), so the cap leaves room for that.
const MaxRequestBytes = 4 << 20

// maxUnwrap bounds how many JSON-string layers [InvokeRequest.Bind] removes.
// The host adds at most two (an Event Grid event as a string of a string).
const maxUnwrap = 4

var (
	// ErrTooLarge means the invocation body is longer than MaxRequestBytes.
	ErrTooLarge = errors.New("azfunc: invocation body too large")
	// ErrMalformed means the envelope, or a value in it, is not JSON of the
	// expected shape.
	ErrMalformed = errors.New("azfunc: malformed invocation")
	// ErrNoBinding means the envelope's Data has no value for a binding name.
	ErrNoBinding = errors.New("azfunc: no such binding")
)

// InvokeRequest is the envelope the host POSTs to /<FunctionName> for
// every function that is not a forwarded HTTP function. Values are kept
// raw, as the host sent them; decode them with [InvokeRequest.Bind].
//
// Metadata may contain every request header of an HTTP trigger, including
// Authorization: never log it.
type InvokeRequest struct {
	// Data holds one value per input binding, keyed by binding name.
	Data map[string]json.RawMessage `json:"Data"`
	// Metadata holds the trigger's binding data and "sys" (see [Sys]).
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// Sys is the system binding data the host adds to every invocation's
// Metadata under the key "sys".
type Sys struct {
	// MethodName is the function (folder) name.
	MethodName string `json:"MethodName"`
	// UtcNow is the host's clock when it built the invocation.
	UtcNow Time `json:"UtcNow"`
	// RandGuid is a fresh GUID per invocation.
	RandGuid string `json:"RandGuid"`
}

// DecodeInvokeRequest reads one invocation envelope from r, reading at
// most MaxRequestBytes+1 bytes.
//
// # Errors
//
// It returns an error wrapping [ErrTooLarge] if r holds more than
// [MaxRequestBytes] bytes, wrapping [ErrMalformed] if the body is not a
// JSON object whose Data and Metadata members are objects or null, and the
// reader's error if reading fails. Error texts never quote the body.
func DecodeInvokeRequest(r io.Reader) (*InvokeRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("azfunc: reading invocation: %w", err)
	}
	if len(body) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxRequestBytes)
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: envelope is not a JSON object", ErrMalformed)
	}
	var req InvokeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	return &req, nil
}

// Bind decodes the Data value of the input binding name into v, which must
// be a non-nil pointer. Names match case-insensitively, as in the host; an
// exact match wins over others.
//
// Bind undoes the host's extra JSON encoding. If v points to a string or a
// []byte, a value that is a JSON string holding another JSON string is
// unwrapped once ("\"HelloWorld\"" gives HelloWorld; "HelloWorld" is used
// as it is). For any other v, a value that is a JSON string holding valid
// JSON is replaced by that JSON, repeatedly (a few levels at most), so an
// object, a string of the object and a string of that string all decode
// alike, and "4" decodes into an int. A JSON null leaves v unchanged, as
// in [encoding/json].
//
// # Errors
//
// It returns an error wrapping [ErrNoBinding] if Data has no value for
// name or several values that differ only in case, and an error wrapping
// [ErrMalformed] if the value does not decode into v.
func (r *InvokeRequest) Bind(name string, v any) error {
	raw, err := lookup(r.Data, name)
	if err != nil {
		return fmt.Errorf("%w: Data has %s %q", ErrNoBinding, err, name)
	}
	if err := decodeValue(raw, v); err != nil {
		return fmt.Errorf("binding %q: %w", name, err)
	}
	return nil
}

// BindMetadata is [InvokeRequest.Bind] for the Metadata value name, such as
// a query parameter of an HTTP trigger or "data" of an Event Grid trigger.
//
// # Errors
//
// As for Bind: [ErrNoBinding] if Metadata has no value for name, and
// [ErrMalformed] if it does not decode into v.
func (r *InvokeRequest) BindMetadata(name string, v any) error {
	raw, err := lookup(r.Metadata, name)
	if err != nil {
		return fmt.Errorf("%w: Metadata has %s %q", ErrNoBinding, err, name)
	}
	if err := decodeValue(raw, v); err != nil {
		return fmt.Errorf("metadata %q: %w", name, err)
	}
	return nil
}

// Sys returns the system binding data from Metadata["sys"]. A missing
// "sys" gives the zero Sys and no error.
//
// # Errors
//
// It returns an error wrapping [ErrMalformed] if "sys" is not an object of
// the expected shape.
func (r *InvokeRequest) Sys() (Sys, error) {
	var s Sys
	err := r.BindMetadata("sys", &s)
	if errors.Is(err, ErrNoBinding) {
		return Sys{}, nil
	}
	return s, err
}

// lookup finds name in m: the exact key if present, else the only key
// equal under Unicode case folding. It returns a short reason on failure.
func lookup(m map[string]json.RawMessage, name string) (json.RawMessage, error) {
	if raw, ok := m[name]; ok {
		return raw, nil
	}
	var found []string
	for k := range m {
		if strings.EqualFold(k, name) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return nil, errors.New("no value for")
	case 1:
		return m[found[0]], nil
	default:
		return nil, errors.New("several values for")
	}
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue unwraps raw as Bind documents and decodes it into v.
func decodeValue(raw json.RawMessage, v any) error {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("azfunc: Bind needs a non-nil pointer")
	}
	if isStringTarget(rv.Type()) {
		raw = unwrapOnce(raw)
	} else {
		raw = unwrap(raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// isStringTarget reports whether a pointer of type t ends, through any
// further pointers, at a string or a []byte that decodes as plain JSON.
func isStringTarget(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshalerType) || t.Implements(textUnmarshalerType) {
			return false
		}
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.String:
		return true
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return true
	}
	return false
}

// innerJSON returns the content of raw if raw is a JSON string whose
// content is itself valid JSON.
func innerJSON(raw json.RawMessage) (json.RawMessage, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return nil, false
	}
	var s string
	if json.Unmarshal(t, &s) != nil || !json.Valid([]byte(s)) {
		return nil, false
	}
	return json.RawMessage(s), true
}

// unwrap replaces raw by its inner JSON while it is a string holding JSON.
func unwrap(raw json.RawMessage) json.RawMessage {
	for range maxUnwrap {
		inner, ok := innerJSON(raw)
		if !ok {
			break
		}
		raw = inner
	}
	return raw
}

// unwrapOnce replaces raw by its inner JSON if that is itself a string.
func unwrapOnce(raw json.RawMessage) json.RawMessage {
	inner, ok := innerJSON(raw)
	if !ok {
		return raw
	}
	if t := bytes.TrimSpace(inner); len(t) > 0 && t[0] == '"' {
		return inner
	}
	return raw
}
