package amltest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The authentication modes of an online endpoint (EndpointAuthMode).
const (
	AuthKey      = "Key"
	AuthAMLToken = "AMLToken"
	AuthAADToken = "AADToken"
)

// The key types of a regeneration (KeyType).
const (
	KeyPrimary   = "Primary"
	KeySecondary = "Secondary"
)

const (
	provider     = "Microsoft.MachineLearningServices"
	resourceType = provider + "/workspaces/onlineEndpoints"
	actionPrefix = resourceType + "/"
	// defaultLocation is the region of the endpoints AddEndpoint makes.
	defaultLocation = "eastus"
	// amlTokenLifetime is the lifetime of an AMLToken scoring token.
	amlTokenLifetime = time.Hour
)

// endpoint is one online endpoint.
type endpoint struct {
	ref      ref
	id       string // the resource id, in the spelling it was created with
	authMode string
	location string
	slug     string // of the scoring URI
	created  time.Time
	// keys are the current keys (listKeys) by slot (0 Primary, 1
	// Secondary); scoring are those the scoring plane accepts, which
	// learns pending changes when they are due (Options.ScoringLag).
	keys    [2]string
	scoring [2]string
	pending []keyChange
}

type keyChange struct {
	at    time.Time
	slot  int
	value string
}

// scoringKeys applies the pending changes due at now and returns the keys
// the scoring plane accepts.
func (e *endpoint) scoringKeys(now time.Time) [2]string {
	for len(e.pending) > 0 && !now.Before(e.pending[0].at) {
		c := e.pending[0]
		e.scoring[c.slot] = c.value
		e.pending = e.pending[1:]
	}
	return e.scoring
}

// ref names an online endpoint by its resource id's parts.
type ref struct {
	sub, rg, ws, name string
	action            string // "", or listKeys, regenerateKeys, token
}

// key is the map key of the endpoint: resource ids are case-insensitive.
func (r ref) key() string {
	return strings.ToLower(r.sub + "/" + r.rg + "/" + r.ws + "/" + r.name)
}

func (r ref) id() string {
	return "/subscriptions/" + r.sub + "/resourceGroups/" + r.rg + "/providers/" + provider +
		"/workspaces/" + r.ws + "/onlineEndpoints/" + r.name
}

// parseEndpointID parses .../onlineEndpoints/{name}[/{action}], with ARM's
// case-insensitive fixed segments.
func parseEndpointID(path string) (ref, bool) {
	p := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(p) != 10 && len(p) != 11 {
		return ref{}, false
	}
	if !fixed(p, "subscriptions", "resourceGroups", "providers", provider, "workspaces", "onlineEndpoints") {
		return ref{}, false
	}
	r := ref{sub: p[1], rg: p[3], ws: p[7], name: p[9]}
	if len(p) == 11 {
		r.action = p[10]
	}
	if r.sub == "" || r.rg == "" || r.ws == "" || r.name == "" || (len(p) == 11 && r.action == "") {
		return ref{}, false
	}
	return r, true
}

// parseWorkspacePath parses .../workspaces/{ws}/onlineEndpoints (the list).
func parseWorkspacePath(path string) (ref, bool) {
	p := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(p) != 9 || !fixed(p, "subscriptions", "resourceGroups", "providers", provider, "workspaces", "onlineEndpoints") {
		return ref{}, false
	}
	return ref{sub: p[1], rg: p[3], ws: p[7]}, true
}

// fixed reports whether p[0], p[2], p[4], p[5], p[6], p[8] are names.
func fixed(p []string, names ...string) bool {
	for i, at := range []int{0, 2, 4, 5, 6, 8} {
		if !strings.EqualFold(p[at], names[i]) {
			return false
		}
	}
	return true
}

// AddEndpoint creates an online endpoint whose resource id is id
// (/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/onlineEndpoints/{name})
// with authMode "Key", "AMLToken" or "AADToken" and two random keys, and
// returns its scoring URI (served by this server). It panics on a
// malformed id or an unknown authMode; an existing endpoint is replaced.
func (s *Server) AddEndpoint(id, authMode string) (scoringURI string) {
	r, ok := parseEndpointID(id)
	if !ok || r.action != "" {
		panic(fmt.Sprintf("amltest: %q is not an online endpoint's resource id", id))
	}
	if !validAuthMode(authMode) {
		panic(fmt.Sprintf("amltest: authMode %q is not Key, AMLToken or AADToken", authMode))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.addLocked(r, authMode, defaultLocation)
	return s.scoringURI(e)
}

// addLocked creates (or replaces) the endpoint r.
func (s *Server) addLocked(r ref, authMode, location string) *endpoint {
	if old := s.endpoints[r.key()]; old != nil {
		delete(s.byScoring, old.slug)
	}
	e := &endpoint{
		ref:      r,
		id:       r.id(),
		authMode: authMode,
		location: location,
		slug:     strings.ToLower(r.name) + "-" + newKey()[:8],
		created:  s.now().UTC(),
		keys:     [2]string{newKey(), newKey()},
	}
	e.scoring = e.keys
	s.endpoints[r.key()] = e
	s.byScoring[e.slug] = e
	return e
}

func (s *Server) scoringURI(e *endpoint) string { return s.URL + "/endpoints/" + e.slug + "/score" }

func validAuthMode(m string) bool { return m == AuthKey || m == AuthAMLToken || m == AuthAADToken }

// endpointLocked returns the endpoint of the resource id; it panics if
// there is none (the test's mistake).
func (s *Server) endpointLocked(id string) *endpoint {
	r, ok := parseEndpointID(id)
	if !ok {
		panic(fmt.Sprintf("amltest: %q is not an online endpoint's resource id", id))
	}
	e := s.endpoints[r.key()]
	if e == nil {
		panic(fmt.Sprintf("amltest: no endpoint %q", id))
	}
	return e
}

// Keys returns the endpoint's current keys (what listKeys answers). It
// panics if there is no such endpoint.
func (s *Server) Keys(id string) (primary, secondary string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.endpointLocked(id)
	return e.keys[0], e.keys[1]
}

// SetKey sets the endpoint's key of keyType ("Primary" or "Secondary") to
// value at once, on the management and the scoring plane alike: a change
// made elsewhere, such as in the portal. It panics if there is no such
// endpoint or keyType is neither.
func (s *Server) SetKey(id, keyType, value string) {
	slot, ok := keySlot(keyType)
	if !ok {
		panic(fmt.Sprintf("amltest: key type %q is not Primary or Secondary", keyType))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.endpointLocked(id)
	e.keys[slot] = value
	e.scoringKeys(s.now())
	e.scoring[slot] = value
	// A pending change of this slot would undo this one.
	kept := e.pending[:0]
	for _, c := range e.pending {
		if c.slot != slot {
			kept = append(kept, c)
		}
	}
	e.pending = kept
}

// keySlot is the slot of a KeyType: strict, as the spec spells it.
func keySlot(keyType string) (int, bool) {
	switch keyType {
	case KeyPrimary:
		return 0, true
	case KeySecondary:
		return 1, true
	}
	return 0, false
}

// serveEndpoint serves the requests on one endpoint.
func (s *Server) serveEndpoint(w *statusRecorder, r *http.Request, er ref) {
	var op Op
	var action string
	methods := []string{http.MethodPost}
	switch er.action {
	case "":
		op, methods = OpGet, []string{http.MethodGet, http.MethodPut, http.MethodDelete}
		action = map[string]string{http.MethodGet: "read", http.MethodPut: "write", http.MethodDelete: "delete"}[r.Method]
	case "listKeys":
		op, action = OpListKeys, "listKeys/action"
	case "regenerateKeys":
		op, action = OpRegenerateKeys, "regenerateKeys/action"
	case "token":
		op, action = OpToken, "token/action"
	default:
		writeARMError(w, http.StatusNotFound, "NotFound",
			fmt.Sprintf("No HTTP resource was found that matches the request URI '%s%s'.", s.URL, r.URL.Path))
		return
	}
	w.op = op
	if !s.manage(w, r, op, methods...) || !s.authorize(w, actionPrefix+action, er.id()) {
		return
	}
	if r.Method == http.MethodPut {
		s.servePut(w, r, er)
		return
	}

	s.mu.Lock()
	e := s.endpoints[er.key()]
	if e == nil {
		s.mu.Unlock()
		if r.Method == http.MethodDelete {
			writeEmpty(w, http.StatusNoContent) // ARM: deleting what does not exist
			return
		}
		writeARMError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf(
			"The Resource '%s/workspaces/%s/onlineEndpoints/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
			provider, er.ws, er.name, er.rg))
		return
	}
	switch {
	case r.Method == http.MethodGet:
		body := s.resourceLocked(e)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
	case r.Method == http.MethodDelete:
		delete(s.endpoints, er.key())
		delete(s.byScoring, e.slug)
		s.mu.Unlock()
		writeEmpty(w, http.StatusOK)
	case op == OpListKeys:
		mode, keys := e.authMode, e.keys
		s.mu.Unlock()
		if mode != AuthKey {
			writeWrongMode(w, er, mode, "listKeys", AuthKey)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"primaryKey": keys[0], "secondaryKey": keys[1]})
	case op == OpToken:
		mode := e.authMode
		if mode != AuthAMLToken {
			s.mu.Unlock()
			writeWrongMode(w, er, mode, "token", AuthAMLToken)
			return
		}
		now := s.now()
		tok := "amlt." + newKey() + newKey()
		s.aml[tok] = amlTokenRec{slug: e.slug, expires: now.Add(amlTokenLifetime)}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"accessToken":         tok,
			"tokenType":           "Bearer",
			"expiryTimeUtc":       now.Add(amlTokenLifetime).Unix(),
			"refreshAfterTimeUtc": now.Add(amlTokenLifetime / 2).Unix(),
		})
	case op == OpRegenerateKeys:
		mode := e.authMode
		s.mu.Unlock()
		if mode != AuthKey {
			writeWrongMode(w, er, mode, "regenerateKeys", AuthKey)
			return
		}
		s.serveRegenerate(w, r, er)
	}
}

// writeWrongMode answers an operation the endpoint's authMode has not.
func writeWrongMode(w http.ResponseWriter, er ref, mode, operation, want string) {
	writeARMError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf(
		"The operation '%s' is only supported for endpoints with authMode '%s'; online endpoint '%s' has authMode '%s'.",
		operation, want, er.name, mode))
}

// resourceLocked is the endpoint's OnlineEndpointTrackedResource.
func (s *Server) resourceLocked(e *endpoint) map[string]any {
	created := e.created.Format(time.RFC3339Nano)
	return map[string]any{
		"id":       e.id,
		"name":     e.ref.name,
		"type":     resourceType,
		"location": e.location,
		"tags":     map[string]string{},
		"kind":     "Managed",
		"identity": map[string]any{
			"type":        "SystemAssigned",
			"principalId": s.kv.ClientID,
			"tenantId":    s.kv.TenantID,
		},
		"properties": map[string]any{
			"description":         nil,
			"properties":          map[string]string{},
			"scoringUri":          s.scoringURI(e),
			"swaggerUri":          s.URL + "/endpoints/" + e.slug + "/swagger.json",
			"authMode":            e.authMode,
			"provisioningState":   "Succeeded",
			"compute":             nil,
			"traffic":             map[string]int{},
			"mirrorTraffic":       map[string]int{},
			"publicNetworkAccess": "Enabled",
		},
		"systemData": map[string]any{
			"createdAt":          created,
			"createdBy":          s.kv.ClientID,
			"createdByType":      "Application",
			"lastModifiedAt":     created,
			"lastModifiedBy":     s.kv.ClientID,
			"lastModifiedByType": "Application",
		},
	}
}

// serveList answers OnlineEndpoints_List: one page of the workspace's
// endpoints.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, ws ref) {
	if !s.authorize(w, actionPrefix+"read", ws.id()) {
		return
	}
	prefix := strings.ToLower(ws.sub + "/" + ws.rg + "/" + ws.ws + "/")
	s.mu.Lock()
	list := []map[string]any{}
	for k, e := range s.endpoints {
		if strings.HasPrefix(k, prefix) {
			list = append(list, s.resourceLocked(e))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"value": list})
}

// servePut answers OnlineEndpoints_CreateOrUpdate synchronously: 201 with
// the new endpoint (two random keys), or 200 with an existing one whose
// authMode it updates.
func (s *Server) servePut(w http.ResponseWriter, r *http.Request, er ref) {
	var body struct {
		Location   string `json:"location"`
		Properties struct {
			AuthMode string `json:"authMode"`
		} `json:"properties"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	switch {
	case body.Location == "":
		writeARMError(w, http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
		return
	case !validAuthMode(body.Properties.AuthMode):
		writeARMError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf(
			"The value '%s' of properties.authMode is not one of AMLToken, Key, AADToken.", body.Properties.AuthMode))
		return
	}
	s.mu.Lock()
	status := http.StatusOK
	e := s.endpoints[er.key()]
	if e == nil {
		status = http.StatusCreated
		e = s.addLocked(er, body.Properties.AuthMode, body.Location)
	} else {
		e.authMode = body.Properties.AuthMode
	}
	res := s.resourceLocked(e)
	s.mu.Unlock()
	writeJSON(w, status, res)
}

// decodeBody decodes a JSON request body into v, or answers 400 as ARM
// does for a body it cannot read.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil && len(b) == 0 {
		err = fmt.Errorf("the request body is empty")
	}
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeARMError(w, http.StatusBadRequest, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: "+strconv.Quote(err.Error())+".")
		return false
	}
	return true
}

// amlTokenRec is an AMLToken scoring token the token operation issued.
type amlTokenRec struct {
	slug    string
	expires time.Time
}

// serveScore answers a scoring request: 200 if its bearer credential is
// one the endpoint's scoring plane accepts now, 401 otherwise.
func (s *Server) serveScore(w http.ResponseWriter, r *http.Request, slug string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Only POST is supported."})
		return
	}
	if s.applyFault(w, r, OpScore) {
		return
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Bearer") {
		cred = ""
	}
	s.mu.Lock()
	e := s.byScoring[slug]
	ok := false
	if e != nil && cred != "" {
		now := s.now()
		switch e.authMode {
		case AuthKey:
			keys := e.scoringKeys(now)
			// Constant-time, and both compared whatever the first gives.
			m0 := subtle.ConstantTimeCompare([]byte(cred), []byte(keys[0]))
			m1 := subtle.ConstantTimeCompare([]byte(cred), []byte(keys[1]))
			ok = m0|m1 == 1
		case AuthAMLToken:
			t, found := s.aml[cred]
			ok = found && t.slug == e.slug && now.Before(t.expires)
		case AuthAADToken:
			ok = s.kv.CheckToken(cred, AADTokenAudience) == nil
		}
	}
	s.mu.Unlock()
	if e == nil {
		s.count.rejected.Add(1)
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "No such online endpoint."})
		return
	}
	if !ok {
		s.count.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.scoringURI(e)+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized: the key or token is not valid for this endpoint."})
		return
	}
	s.count.scored.Add(1)
	io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": e.ref.name, "result": "ok"})
}
