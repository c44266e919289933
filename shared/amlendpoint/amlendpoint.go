// Package amlendpoint is the [rotation.Remote] target of Azure ML online
// endpoints in key mode (docs/design.md section 15): where a rotated key
// takes effect is the endpoint itself, which is told the new value with
// Regenerate Keys, and tested with List Keys and, if the endpoint names
// one, a probe request to its scoring URI.
//
// It adds no protocol of its own: package rotation stages the value in
// the store first, re-reads the store before and after each set, and
// repairs drift; this package only speaks to the endpoint, through
// [azureml.KeysClient] (azcore's pipeline and poller).
package amlendpoint

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/timer"
)

// Client is what the target needs of one endpoint: [azureml.KeysClient].
type Client interface {
	Get(ctx context.Context) (azureml.Info, error)
	ListKeys(ctx context.Context) (azureml.Keys, error)
	RegenerateKeys(ctx context.Context, keyType, value string) error
}

// Endpoint is one endpoint the target manages.
type Endpoint struct {
	Client Client
	// Probe, if set, is POSTed (application/json) to the scoring URI with
	// the new key after the settle delay; a 2xx answer passes.
	Probe *Probe
}

// Probe is a safe scoring request.
type Probe struct {
	Body []byte
	// Deployment, if set, is sent as azureml-model-deployment, to probe
	// one deployment behind the endpoint.
	Deployment string
}

// DefaultSettle is the default wait between an endpoint's acceptance of a
// new key (its Regenerate Keys operation succeeded) and the test that
// precedes telling clients the key: the scoring plane may learn a key
// after the management plane reports it set.
const DefaultSettle = 30 * time.Second

// Target is the rotation target of a set of endpoints, by their names in
// modelauth. Its fields must be set before the first call; it is safe for
// concurrent use.
type Target struct {
	Endpoints map[string]Endpoint
	// Settle is the wait after a set, before the test: see
	// [DefaultSettle]. Zero waits not at all.
	Settle time.Duration
	// HTTP sends probes; nil: a client with a 30-second timeout.
	HTTP  *http.Client
	Sleep func(ctx context.Context, d time.Duration) error // nil: a timer
	Log   *slog.Logger                                     // nil: discard
}

var _ rotation.Remote = (*Target)(nil)

// ErrUnknownEndpoint: the name is not one of the target's endpoints.
var ErrUnknownEndpoint = errors.New("amlendpoint: unknown endpoint")

func (t *Target) endpoint(name string) (Endpoint, error) {
	ep, ok := t.Endpoints[name]
	if !ok {
		return Endpoint{}, fmt.Errorf("%w: %s", ErrUnknownEndpoint, name)
	}
	return ep, nil
}

// Apply sets the endpoint's kt key to the staged value, follows the
// operation to its end, and waits the settle delay.
func (t *Target) Apply(ctx context.Context, name string, kt keysecret.KeyType, s rotation.Staged) error {
	ep, err := t.endpoint(name)
	if err != nil {
		return err
	}
	if err := ep.Client.RegenerateKeys(ctx, string(kt), s.Value); err != nil {
		return explain("regenerateKeys", err)
	}
	t.log().Info("endpoint_key_set", "service", name, "keyType", string(kt))
	if t.Settle <= 0 {
		return nil
	}
	if t.Sleep != nil {
		return t.Sleep(ctx, t.Settle)
	}
	return timer.Sleep(ctx, t.Settle)
}

// Test checks that the endpoint holds value as its kt key (List Keys),
// then sends the probe, if any, with it.
func (t *Target) Test(ctx context.Context, name string, kt keysecret.KeyType, value string) error {
	ep, err := t.endpoint(name)
	if err != nil {
		return err
	}
	keys, err := ep.Client.ListKeys(ctx)
	if err != nil {
		return explain("listKeys", err)
	}
	have := keys.Primary
	if kt == keysecret.Secondary {
		have = keys.Secondary
	}
	if subtle.ConstantTimeCompare([]byte(have), []byte(value)) != 1 {
		return fmt.Errorf("the endpoint's %s key is not the staged value", kt)
	}
	if ep.Probe == nil {
		return nil
	}
	return t.probe(ctx, ep, value)
}

// Keys returns the endpoint's keys, after checking that it is in key
// mode: an endpoint in another mode is refused with an error wrapping
// [azureml.ErrNotKeyMode].
func (t *Target) Keys(ctx context.Context, name string) ([2]string, error) {
	ep, err := t.endpoint(name)
	if err != nil {
		return [2]string{}, err
	}
	info, err := ep.Client.Get(ctx)
	if err != nil {
		return [2]string{}, explain("get", err)
	}
	if !azureml.IsKeyMode(info.AuthMode) {
		return [2]string{}, &Failure{Cause: "not_key_mode", Err: fmt.Errorf("%w: its authMode is %q: switch it to key auth, or remove it from endpoints", azureml.ErrNotKeyMode, clip(info.AuthMode))}
	}
	keys, err := ep.Client.ListKeys(ctx)
	if err != nil {
		return [2]string{}, explain("listKeys", err)
	}
	return [2]string{keys.Primary, keys.Secondary}, nil
}

// probe sends the probe request with key to the scoring URI.
func (t *Target) probe(ctx context.Context, ep Endpoint, key string) error {
	info, err := ep.Client.Get(ctx)
	if err != nil {
		return explain("get", err)
	}
	if info.ScoringURI == "" {
		return &Failure{Cause: "probe", Err: errors.New("the endpoint has no scoring URI to probe")}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, info.ScoringURI, bytes.NewReader(ep.Probe.Body))
	if err != nil {
		return &Failure{Cause: "probe", Err: fmt.Errorf("the scoring URI: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if ep.Probe.Deployment != "" {
		req.Header.Set("azureml-model-deployment", ep.Probe.Deployment)
	}
	hc := t.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return &Failure{Cause: "probe", Err: fmt.Errorf("the probe request: %w", scrub(err, key))}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &Failure{Cause: "probe_refused", Err: fmt.Errorf("the scoring URI refused the new key (HTTP %d): the scoring plane may lag; raise ENDPOINT_SETTLE_DELAY if this persists", resp.StatusCode)}
	}
	return &Failure{Cause: "probe", Err: fmt.Errorf("the probe answered HTTP %d", resp.StatusCode)}
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// scrub keeps the key out of a transport error (a URL error quotes the
// URL, never headers, but be sure).
func scrub(err error, key string) error {
	if key != "" && strings.Contains(err.Error(), key) {
		return errors.New("transport error")
	}
	return err
}

func (t *Target) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Failure is an endpoint operation's failure with a cause for the
// rotation_failed event: forbidden, not_found, conflict, throttled,
// unavailable, bad_request, operation_failed, operation_timeout,
// not_key_mode, probe, probe_refused or transport.
type Failure struct {
	Cause string
	Err   error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Reason is the failure's cause, which [rotation.Rotator] logs.
func (f *Failure) Reason() string { return f.Cause }

// explain maps an ARM error of op to a Failure that says what to do.
func explain(op string, err error) error {
	var ae *azureml.Error
	switch {
	case errors.Is(err, azureml.ErrOperationTimeout):
		return &Failure{Cause: "operation_timeout", Err: fmt.Errorf("%s: %w (ENDPOINT_OPERATION_TIMEOUT); the key may still change when it ends: the next due-check compares and repairs", op, err)}
	case !errors.As(err, &ae):
		return &Failure{Cause: "transport", Err: fmt.Errorf("%s: %w", op, err)}
	}
	var cause, hint string
	switch s := ae.StatusCode; {
	case s == http.StatusForbidden:
		cause, hint = "forbidden", "the app's identity lacks a role on the endpoint that allows read, listKeys/action and regenerateKeys/action (docs/endpoints.md gives the custom role)"
	case s == http.StatusNotFound:
		cause, hint = "not_found", "no such online endpoint: check its id in modelauth.json"
	case s == http.StatusConflict:
		cause, hint = "conflict", "the endpoint is busy with another operation; the next due-check retries"
	case s == http.StatusTooManyRequests:
		cause, hint = "throttled", "Azure Resource Manager throttled the app; the next due-check retries"
	case s >= 500:
		cause, hint = "unavailable", "Azure ML failed; the next due-check retries"
	case s >= 200 && s < 300:
		cause, hint = "operation_failed", "the regenerateKeys operation ended Failed; the key is unchanged"
	default:
		cause, hint = "bad_request", "Azure ML refused the request"
	}
	return &Failure{Cause: cause, Err: fmt.Errorf("%s: %w: %s", op, err, hint)}
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
