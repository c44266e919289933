package keys

import (
	"context"
	"errors"
	"net/http"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/rotation"
)

// serveEndpoint is get_keys, regen_key and rotate for an Azure ML endpoint,
// once the caller holds the right.
func (f *Function) serveEndpoint(w http.ResponseWriter, r *http.Request, subject, name, action string) error {
	switch action {
	case "rotate":
		return f.rotateWith(w, r, subject, name, f.Endpoints, f.endpointKeys)
	case "":
		keys, err := f.endpointKeys(r.Context(), name)
		if err != nil {
			return endpointError(err)
		}
		f.Log.Info("audit", "event", "get_keys", "subject", subject, "endpoint", name)
		apierror.WriteJSON(w, http.StatusOK, keys)
		return nil
	}
	req, err := decodeRegen(r, azureml.CheckKey, "keyValue must be 32 to 128 ASCII letters and digits (A-Z, a-z, 0-9)")
	if err != nil {
		return err
	}
	// The operation goes on if the caller hangs up: cut short, the store
	// and the endpoint would disagree until the next due-check.
	ctx := context.WithoutCancel(r.Context())
	err = f.Endpoints.Regenerate(ctx, name, req.keyType, req.KeyValue)
	if err == nil || errors.Is(err, rotation.ErrWritten) {
		f.Log.Info("audit", "event", "regen_key", "subject", subject, "endpoint", name,
			"keyType", string(req.keyType), "userSupplied", req.KeyValue != "")
	}
	if err != nil {
		return endpointError(err)
	}
	keys, err := f.endpointKeys(ctx, name)
	if err != nil {
		return apierror.Wrap(apierror.Unavailable, "the endpoint took the new key (its old value no longer works), but the keys could not be read back: read them with get_keys", err)
	}
	apierror.WriteJSON(w, http.StatusOK, keys)
	return nil
}

func (f *Function) endpointKeys(ctx context.Context, name string) (keyring.Keys, error) {
	k, err := f.Endpoints.ReadKeys(ctx, name)
	if err != nil {
		return keyring.Keys{}, err
	}
	return keyring.Keys{PrimaryKey: k.Primary, SecondaryKey: k.Secondary, ActiveKeyType: k.Active}, nil
}

// endpointError maps an endpoint's failure.
func endpointError(err error) error {
	switch {
	case errors.Is(err, azureml.ErrNotKeyMode):
		return apierror.Wrap(apierror.Conflict, "the online endpoint does not use key auth, so it has no keys to manage: switch it to key auth, or remove it from endpoints", err)
	case errors.Is(err, azureml.ErrKeyFormat):
		return apierror.New(apierror.BadRequest, "keyValue must be 32 to 128 ASCII letters and digits (A-Z, a-z, 0-9)")
	case errors.Is(err, rotation.ErrNotApplied):
		return apierror.Wrap(apierror.Unavailable, "the new key is in the store, but the endpoint did not take it: its old value still works there and clients are still told it; the next due-check sets the new value, or call again (see the log for the endpoint's answer)", err)
	case errors.Is(err, rotation.ErrWritten):
		return apierror.Wrap(apierror.Unavailable, "the endpoint took the new key (its old value no longer works), but the active copy could not be updated: the next due-check does it", err)
	}
	var ae *azureml.Error
	if errors.As(err, &ae) {
		return apierror.Wrap(apierror.Unavailable, "Azure Resource Manager refused the request (see the log): nothing changed", err)
	}
	return storeError(err)
}
