// Package signingkeys is the signingkeys function: the administrator's
// controls over the keys that sign the app's tokens.
//
//	POST /api/signing-keys/rotate  write the next key now (it signs after
//	                               JWKS max-age plus KEY_CACHE_TTL)
//	POST /api/signing-keys/revoke  remove the current key from the JWKS
//	                               and from verification at once (other
//	                               instances within KEY_CACHE_TTL), and sign
//	                               with a new key from now on
//
// Both need the administrator key or the role Keys.Admin, write an audit
// event, and answer {"outcome","kid","activates","revokedKid","keys"} where
// keys lists every key's kid, state and activation: public facts only.
// rotate answers outcome "pending" without writing when a next key already
// waits.
package signingkeys

import (
	"log/slog"
	"net/http"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Function serves the signingkeys function.
type Function struct {
	Callers *authn.Callers
	Keys    *signingkey.Set
	Log     *slog.Logger
}

var _ http.Handler = (*Function)(nil)

// KeyInfo is one signing key's public standing.
type KeyInfo struct {
	Kid       string `json:"kid"`
	Alg       string `json:"alg"`
	State     string `json:"state"`
	Activated int64  `json:"activated"`
}

// Answer is the function's answer.
type Answer struct {
	Outcome    string    `json:"outcome"`
	Kid        string    `json:"kid,omitempty"`
	Activates  int64     `json:"activates,omitempty"`
	RevokedKid string    `json:"revokedKid,omitempty"`
	Keys       []KeyInfo `json:"keys"`
}

func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	apierror.ServeNoStore(w, r, f.Log, f.serve)
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) error {
	action := r.PathValue("action")
	if action != "rotate" && action != "revoke" {
		return apierror.New(apierror.NotFound, "unknown action")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return apierror.New(apierror.MethodNotAllowed, "use POST")
	}
	caller, fail := f.Callers.Authorize(r.Context(), authn.FromHeader(r.Header["Authorization"]), authn.AdminKeys, "")
	if fail != nil {
		return fail
	}
	ctx := r.Context()
	var (
		res signingkey.Result
		err error
	)
	if action == "rotate" {
		res, err = f.Keys.RotateNow(ctx)
	} else {
		res, err = f.Keys.Revoke(ctx)
	}
	f.Log.Info("audit", "event", "signing_key_"+action, "subject", caller.Subject, "outcome", string(res.Outcome),
		"kid", res.Kid, "revokedKid", res.RevokedKid, "failed", err != nil)
	if err != nil {
		if res.RevokedKid != "" {
			return apierror.Wrap(apierror.Unavailable, "the key was revoked, but its successor could not be written: the next token issued writes it", err)
		}
		return apierror.Wrap(apierror.Unavailable, "the signing keys cannot be changed right now", err)
	}
	t, err := f.Keys.Timeline(ctx)
	if err != nil {
		return apierror.Wrap(apierror.Unavailable, "the signing keys were changed, but cannot be read back", err)
	}
	a := Answer{Outcome: string(res.Outcome), Kid: res.Kid, RevokedKid: res.RevokedKid, Keys: []KeyInfo{}}
	if !res.Activates.IsZero() {
		a.Activates = res.Activates.Unix()
	}
	for _, e := range t.Entries {
		if e.State == signingkey.Expired {
			continue
		}
		a.Keys = append(a.Keys, KeyInfo{Kid: e.Kid, Alg: e.Alg, State: string(e.State), Activated: e.Activated.Unix()})
	}
	apierror.WriteJSON(w, http.StatusOK, a)
	return nil
}
