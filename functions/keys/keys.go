// Package keys is the keys function: get_keys, regen_key and rotate for a
// key-mode service. get_keys needs the role Keys.Read.<service>,
// Keys.Read.All or Keys.Admin; regen_key and rotate need Keys.Admin; the
// administrator key has every right.
//
//	GET  /api/services/{service}/keys             get_keys
//	POST /api/services/{service}/keys/regenerate  regen_key
//	POST /api/services/{service}/keys/rotate      rotate now
//
// All answer {"primaryKey","secondaryKey","activeKeyType"} with
// Cache-Control: no-store, and write an audit event (caller and service,
// never a key). Other actions are 404; a service not in key mode is 409.
//
// The same routes, rights and answers serve the Azure ML online endpoints
// of modelauth.json's endpoints (docs/design.md section 15), by their
// names there, which no service shares: get_keys reads the keys from the
// store (adopting the endpoint's own on first use); regen_key writes the
// new key to the store, then sets it at the endpoint and answers only when
// the endpoint's regenerateKeys operation succeeded (the old value no
// longer works there), then tells clients through aml-<name>-active; a
// key the endpoint did not take answers 503 NotApplied, and the old value
// still works. keyValue for an endpoint is 32 to 128 ASCII letters and
// digits. An endpoint not in key mode is 409.
//
// rotate runs a rotation now (docs/design.md section 5) inside the
// request, so it takes at least one KEY_CACHE_TTL (30 s by default): the new key is
// staged, every instance is given the TTL to learn it, then it is tested
// and activated. Its answer adds "rotation": {"outcome", "id", "keyType"}
// (outcome completed, or superseded when a concurrent rotation finished
// first; keyType is the key replaced). A failed rotation answers 503 and
// leaves the keys that worked before working; the next run (timer, event
// or rotate) finishes it.
package keys

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/apikey"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
)

// rotate runs a forced rotation and answers the keys after it.
func (f *Function) rotate(w http.ResponseWriter, r *http.Request, subject, service string) error {
	return f.rotateWith(w, r, subject, service, f.Rotator, f.Keys.Get)
}

// rotateWith runs a forced rotation with rot and answers the keys get reads
// after it.
func (f *Function) rotateWith(w http.ResponseWriter, r *http.Request, subject, service string, rot Rotator, get func(context.Context, string) (keyring.Keys, error)) error {
	// The run goes on if the caller hangs up: it takes a key-cache TTL,
	// and a run cut short would only be finished by the next one.
	ctx := context.WithoutCancel(r.Context())
	f.Log.Info("audit", "event", "rotate", "subject", subject, "service", service)
	res, err := rot.RotateNow(ctx, service)
	if err != nil {
		return apierror.Wrap(apierror.Unavailable, "the rotation failed; the keys that worked before still work, and the next rotation finishes or retries it (see the rotation_failed log event)", err)
	}
	keys, err := get(ctx, service)
	if err != nil {
		return apierror.Wrap(apierror.Unavailable, "the keys were rotated, but could not be read back: read them with get_keys", err)
	}
	apierror.WriteJSON(w, http.StatusOK, rotated{Keys: keys, Rotation: Rotation{
		Outcome: string(res.Outcome), ID: res.Rotation, KeyType: res.KeyType,
	}})
	return nil
}

// maxBody caps a regen_key request body.
const maxBody = 4 << 10

// Function serves the keys function.
type Function struct {
	Config  *config.Config
	Keys    *keyring.Ring
	Callers *authn.Callers
	Log     *slog.Logger
	// Rotator writes the keys: regen_key and the rotate action. Nil
	// answers both 404.
	Rotator Rotator
	// Endpoints reads and writes the Azure ML endpoints' keys; nil when
	// the configuration lists none.
	Endpoints Endpoints
}

// Endpoints reads and writes the Azure ML endpoints' keys: the endpoints'
// [rotation.Rotator].
type Endpoints interface {
	Rotator
	ReadKeys(ctx context.Context, name string) (rotation.Keys, error)
}

// Rotator writes a service's keys: [rotation.Rotator].
type Rotator interface {
	RotateNow(ctx context.Context, service string) (rotation.Result, error)
	Regenerate(ctx context.Context, service string, kt keysecret.KeyType, value string) error
}

// Rotation is the rotate action's account of the run.
type Rotation struct {
	Outcome string            `json:"outcome"`
	ID      string            `json:"id,omitempty"`
	KeyType keysecret.KeyType `json:"keyType,omitempty"`
}

// rotated is the rotate action's answer: the keys after the run.
type rotated struct {
	keyring.Keys
	Rotation Rotation `json:"rotation"`
}

var _ http.Handler = (*Function)(nil)

func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	apierror.ServeNoStore(w, r, f.Log, f.serve)
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	var allow string
	switch action {
	case "":
		allow = http.MethodGet
	case "regenerate", "rotate":
		if f.Rotator == nil {
			return apierror.New(apierror.NotFound, "unknown action")
		}
		allow = http.MethodPost
	default:
		return apierror.New(apierror.NotFound, "unknown action")
	}
	if r.Method != allow {
		w.Header().Set("Allow", allow)
		return apierror.New(apierror.MethodNotAllowed, "use "+allow)
	}
	service := r.PathValue("service")
	right := authn.AdminKeys
	if action == "" {
		right = authn.ReadKeys
	}
	caller, fail := f.Callers.Authorize(r.Context(), authn.FromHeader(r.Header["Authorization"]), right, service)
	if fail != nil {
		return fail
	}
	svc, ok := f.Config.Service(service)
	if _, isEndpoint := f.Config.Endpoint(service); !ok && isEndpoint && f.Endpoints != nil {
		return f.serveEndpoint(w, r, caller.Subject, service, action)
	}
	if !ok {
		return apierror.New(apierror.NotFound, "unknown service")
	}
	if svc.AuthMode != config.AuthKey {
		return apierror.New(apierror.Conflict, "service "+svc.Name+" uses "+string(svc.AuthMode)+" auth, not keys")
	}
	var (
		keys keyring.Keys
		err  error
	)
	switch action {
	case "rotate":
		return f.rotate(w, r, caller.Subject, svc.Name)
	case "":
		keys, err = f.Keys.Get(r.Context(), svc.Name)
		if err != nil {
			return storeError(err)
		}
		f.Log.Info("audit", "event", "get_keys", "subject", caller.Subject, "service", svc.Name)
	default:
		req, err := decodeRegen(r, apikey.Check, "keyValue must be 32 to 128 characters of A-Z, a-z, 0-9, '-' and '_'")
		if err != nil {
			return err
		}
		err = f.Rotator.Regenerate(r.Context(), svc.Name, req.keyType, req.KeyValue)
		if err == nil || errors.Is(err, rotation.ErrWritten) {
			f.Log.Info("audit", "event", "regen_key", "subject", caller.Subject, "service", svc.Name,
				"keyType", string(req.keyType), "userSupplied", req.KeyValue != "")
		}
		if err != nil {
			return storeError(err)
		}
		if keys, err = f.Keys.Get(r.Context(), svc.Name); err != nil {
			return apierror.Wrap(apierror.Unavailable, "the key was replaced, but the keys could not be read back: read them with get_keys", err)
		}
	}
	apierror.WriteJSON(w, http.StatusOK, keys)
	return nil
}

type regenRequest struct {
	KeyType  string `json:"keyType"`
	KeyValue string `json:"keyValue"`
	keyType  keysecret.KeyType
}

// decodeRegen reads a regen_key body; check (with its message) refuses a
// keyValue of the wrong format.
func decodeRegen(r *http.Request, check func(string) error, format string) (regenRequest, error) {
	var req regenRequest
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return req, apierror.New(apierror.BadRequest, "the body must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, apierror.New(apierror.TooLarge, "the body is larger than 4 KiB")
		}
		return req, apierror.New(apierror.BadRequest, "the body could not be read")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return req, apierror.New(apierror.BadRequest, `the body must be {"keyType":"Primary"|"Secondary","keyValue"?: string}`)
	}
	kt, ok := keysecret.ParseKeyType(req.KeyType)
	if !ok {
		return req, apierror.New(apierror.BadRequest, `keyType must be "Primary" or "Secondary"`)
	}
	req.keyType = kt
	if req.KeyValue != "" {
		if err := check(req.KeyValue); err != nil {
			return req, apierror.New(apierror.BadRequest, format)
		}
	}
	return req, nil
}

func storeError(err error) error {
	switch {
	case errors.Is(err, keyring.ErrDisabled):
		return apierror.Wrap(apierror.Conflict, "the newest version of a key is disabled in the store; regenerate that key", err)
	case errors.Is(err, apikey.ErrFormat):
		return apierror.New(apierror.BadRequest, err.Error())
	case errors.Is(err, rotation.ErrKeyInUse):
		return apierror.New(apierror.BadRequest, "keyValue is already in use as a key: choose another")
	case errors.Is(err, rotation.ErrWritten):
		return apierror.Wrap(apierror.Unavailable, "the key was replaced, but its active copy could not be updated: the next rotation run does it; read the keys with get_keys", err)
	case errors.Is(err, rotation.ErrNotPublished):
		return apierror.Wrap(apierror.NotPublished, "the new key was written but could not be published to every instance, so it is not in effect and the old key still works: call regenerate again", err)
	}
	return apierror.Wrap(apierror.Unavailable, "the secret store is unavailable", err)
}
