// Package keys is the keys function: get_keys and regen_key for a
// key-mode service, for administrators.
//
//	GET  /api/services/{service}/keys             get_keys
//	POST /api/services/{service}/keys/regenerate  regen_key
//
// Both answer {"primaryKey","secondaryKey","activeKeyType"} with
// Cache-Control: no-store, and write an audit event (caller and service,
// never a key). Other actions are 404.
package keys

import (
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
)

// maxBody caps a regen_key request body.
const maxBody = 4 << 10

// Function serves the keys function.
type Function struct {
	Config *config.Config
	Keys   *keyring.Ring
	Admin  *authn.Admin
	Log    *slog.Logger
}

var _ http.Handler = (*Function)(nil)

func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := f.serve(w, r); err != nil {
		var fail *authn.Failure
		if errors.As(err, &fail) {
			fail.Write(w, f.Log)
			return
		}
		apierror.Write(w, f.Log, err)
	}
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	var allow string
	switch action {
	case "":
		allow = http.MethodGet
	case "regenerate":
		allow = http.MethodPost
	default:
		return apierror.New(apierror.NotFound, "unknown action")
	}
	if r.Method != allow {
		w.Header().Set("Allow", allow)
		return apierror.New(apierror.MethodNotAllowed, "use "+allow)
	}
	caller, fail := f.Admin.Authenticate(r.Context(), r)
	if fail != nil {
		return fail
	}
	service := r.PathValue("service")
	svc, ok := f.Config.Service(service)
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
	if action == "" {
		keys, err = f.Keys.Get(r.Context(), svc.Name)
		if err != nil {
			return storeError(err)
		}
		f.Log.Info("audit", "event", "get_keys", "subject", caller.Subject, "service", svc.Name)
	} else {
		req, err := decodeRegen(r)
		if err != nil {
			return err
		}
		keys, err = f.Keys.Regenerate(r.Context(), svc.Name, req.keyType, req.KeyValue)
		if err == nil || errors.Is(err, keyring.ErrWritten) {
			f.Log.Info("audit", "event", "regen_key", "subject", caller.Subject, "service", svc.Name,
				"keyType", string(req.keyType), "userSupplied", req.KeyValue != "")
		}
		if err != nil {
			return storeError(err)
		}
	}
	apierror.WriteJSON(w, http.StatusOK, keys)
	return nil
}

type regenRequest struct {
	KeyType  string `json:"keyType"`
	KeyValue string `json:"keyValue"`
	keyType  keyring.KeyType
}

func decodeRegen(r *http.Request) (regenRequest, error) {
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
	kt, ok := keyring.ParseKeyType(req.KeyType)
	if !ok {
		return req, apierror.New(apierror.BadRequest, `keyType must be "Primary" or "Secondary"`)
	}
	req.keyType = kt
	if req.KeyValue != "" {
		if err := apikey.Check(req.KeyValue); err != nil {
			return req, apierror.New(apierror.BadRequest, "keyValue must be 32 to 128 characters of A-Z, a-z, 0-9, '-' and '_'")
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
	case errors.Is(err, keyring.ErrKeyInUse):
		return apierror.New(apierror.BadRequest, "keyValue is already in use as a key: choose another")
	case errors.Is(err, keyring.ErrWritten):
		return apierror.Wrap(apierror.Unavailable, "the key was replaced, but the keys could not be read back: read them with get_keys", err)
	}
	return apierror.Wrap(apierror.Unavailable, "the secret store is unavailable", err)
}
