package azfunc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// InvokeResponse is the envelope the host expects back from an invocation.
// It marshals with exactly the keys Outputs, Logs and ReturnValue; a nil
// Outputs is written as {} and a nil Logs as [].
type InvokeResponse struct {
	// Outputs holds one value per output binding, keyed by binding name.
	// A named http output is an object such as
	// {"statusCode": 401, "headers": {"Content-Type": "application/json"},
	// "body": "..."} with string header values and a string body.
	Outputs map[string]any
	// Logs are logged by the host at Information level, attached to the
	// invocation. They must not contain secrets.
	Logs []string
	// ReturnValue is bound to the $return output binding, if any.
	ReturnValue any
}

// MarshalJSON implements [json.Marshaler].
func (r InvokeResponse) MarshalJSON() ([]byte, error) {
	type wire struct {
		Outputs     map[string]any `json:"Outputs"`
		Logs        []string       `json:"Logs"`
		ReturnValue any            `json:"ReturnValue"`
	}
	out := wire{Outputs: r.Outputs, Logs: r.Logs, ReturnValue: r.ReturnValue}
	if out.Outputs == nil {
		out.Outputs = map[string]any{}
	}
	if out.Logs == nil {
		out.Logs = []string{}
	}
	return json.Marshal(out)
}

// WriteResponse writes resp with status 200 and Content-Type
// application/json, the only kind of response from which the host reads
// Outputs and Logs. It always writes such a response: if resp cannot be
// encoded (an output holds a channel, say), it writes resp's Logs plus a
// line saying so, with empty Outputs and a null ReturnValue.
//
// # Errors
//
// It returns the encoding error in that case, and any error from writing
// to w.
func WriteResponse(w http.ResponseWriter, resp InvokeResponse) error {
	body, encErr := json.Marshal(resp)
	if encErr != nil {
		encErr = fmt.Errorf("azfunc: encoding response: %w", encErr)
		fallback := InvokeResponse{Logs: append(slices.Clone(resp.Logs),
			"azfunc: the function's outputs could not be encoded as JSON")}
		var err error
		if body, err = json.Marshal(fallback); err != nil {
			// Unreachable: strings always encode.
			body = []byte(`{"Outputs":{},"Logs":[],"ReturnValue":null}`)
		}
	}
	if err := writeJSON(w, http.StatusOK, body); err != nil {
		return fmt.Errorf("azfunc: writing response: %w", err)
	}
	return encErr
}

// writeJSON writes status and body with the JSON content type.
func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// writeError writes a small JSON error body for requests outside the
// invocation protocol: {"error":{"code":...,"message":...}}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{code, message}})
	_ = writeJSON(w, status, body)
}
