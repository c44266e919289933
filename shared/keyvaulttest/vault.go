package keyvaulttest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Key Vault's limits on secrets.
const (
	maxValueBytes  = 25 * 1024 // 25,600 bytes
	maxTags        = 15
	maxTagNameLen  = 512 // characters
	maxTagValueLen = 256 // characters
	maxBodyBytes   = 1 << 20

	recoveryLevel   = "Recoverable+Purgeable"
	recoverableDays = 90
)

var (
	nameRE       = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	apiVersionRE = regexp.MustCompile(`^(\d+\.\d+(-preview(\.\d+)?)?|\d{4}-\d{2}-\d{2}(-preview)?)$`)
)

// store holds the secrets in memory. Names are case-insensitive: the key
// is the lowercase name, and a secret keeps the spelling of its first write.
type store struct {
	mu      sync.RWMutex
	secrets map[string]*secret
}

type secret struct {
	name     string
	versions []*version // in creation order: the last is the newest
}

type version struct {
	id               string
	value            string
	contentType      *string
	enabled          bool
	nbf, exp         *int64
	created, updated int64
	tags             map[string]string
}

// Response shapes (SecretBundle, SecretItem, SecretAttributes, SecretListResult).
type (
	bundleJSON struct {
		Value       *string           `json:"value,omitempty"`
		ID          string            `json:"id"`
		ContentType *string           `json:"contentType,omitempty"`
		Attributes  attributesJSON    `json:"attributes"`
		Tags        map[string]string `json:"tags,omitempty"`
	}
	attributesJSON struct {
		Enabled         bool   `json:"enabled"`
		NotBefore       *int64 `json:"nbf,omitempty"`
		Expires         *int64 `json:"exp,omitempty"`
		Created         int64  `json:"created"`
		Updated         int64  `json:"updated"`
		RecoveryLevel   string `json:"recoveryLevel"`
		RecoverableDays int    `json:"recoverableDays"`
	}
	listJSON struct {
		Value    []bundleJSON `json:"value"`
		NextLink *string      `json:"nextLink"`
	}
)

// Request shapes (SecretSetParameters, SecretUpdateParameters).
type (
	setRequest struct {
		Value       *string            `json:"value"`
		ContentType *string            `json:"contentType"`
		Attributes  *attributesRequest `json:"attributes"`
		Tags        map[string]*string `json:"tags"`
	}
	updateRequest struct {
		ContentType *string            `json:"contentType"`
		Attributes  *attributesRequest `json:"attributes"`
		Tags        json.RawMessage    `json:"tags"` // present: replaces the whole set
	}
	// attributesRequest: created, updated and the recovery fields are
	// read-only and ignored; nbf and exp are null to clear.
	attributesRequest struct {
		Enabled   *bool           `json:"enabled"`
		NotBefore json.RawMessage `json:"nbf"`
		Expires   json.RawMessage `json:"exp"`
	}
)

// serveVault serves /secrets/...: authentication, counting and faults,
// then the operation.
func (s *Server) serveVault(w *statusRecorder, r *http.Request) {
	op, name, ver, ok := classify(r.Method, r.URL.Path)
	w.op = op // for the log, challenged or not
	if !s.authenticate(w, r) {
		return
	}
	if !ok {
		writeKVError(w, http.StatusNotFound, "NotFound", "keyvaulttest: no such endpoint")
		return
	}
	if op == "" {
		writeKVError(w, http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("keyvaulttest: %s %s is not supported", r.Method, r.URL.Path))
		return
	}
	s.count.op(op).Add(1)
	if strings.HasPrefix(strings.ToLower(name), "journal-") {
		switch op {
		case OpSet:
			s.count.journalSet.Add(1)
		case OpList:
			s.count.journalList.Add(1)
		}
	}
	if s.applyFault(w, r, op, name) {
		return
	}
	q := r.URL.Query()
	switch av := q.Get("api-version"); {
	case av == "":
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The 'api-version' query parameter is missing.")
		return
	case !apiVersionRE.MatchString(av):
		writeKVError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("The specified version (%s) is not recognized.", av))
		return
	}
	if op == OpListSecrets {
		s.listSecrets(w, q)
		return
	}
	if !nameRE.MatchString(name) {
		writeKVError(w, http.StatusBadRequest, "BadParameter",
			fmt.Sprintf("The request URI contains an invalid name: %s. Names match ^[0-9a-zA-Z-]{1,127}$.", name))
		return
	}
	switch op {
	case OpSet:
		s.setSecret(w, r, name)
	case OpGet:
		s.getSecret(w, name, ver)
	case OpList:
		s.listVersions(w, q, name)
	case OpUpdate:
		s.updateSecret(w, r, name, ver)
	}
}

// classify maps a request to its operation, secret name and version. ok is
// false for a path that is no secret's; op is "" for a method the path
// does not support.
func classify(method, path string) (op Op, name, ver string, ok bool) {
	rest, found := strings.CutPrefix(path, "/secrets/")
	if !found {
		if path == "/secrets" && method == http.MethodGet {
			return OpListSecrets, "", "", true
		}
		return "", "", "", path == "/secrets"
	}
	parts := strings.Split(rest, "/")
	name = parts[0]
	switch {
	case len(parts) == 1 && method == http.MethodPut:
		return OpSet, name, "", true
	case len(parts) == 1 && method == http.MethodGet:
		return OpGet, name, "", true
	case len(parts) == 1 && method == http.MethodPatch:
		return OpUpdate, name, "", true
	case len(parts) == 2 && parts[1] == "versions" && method == http.MethodGet:
		return OpList, name, "", true
	case len(parts) == 2 && method == http.MethodGet:
		return OpGet, name, parts[1], true
	case len(parts) == 2 && method == http.MethodPatch:
		return OpUpdate, name, parts[1], true
	case len(parts) <= 2:
		return "", name, "", true
	}
	return "", "", "", false
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, name string) {
	var req setRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Value == nil {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The secret value is required.")
		return
	}
	if len(*req.Value) > maxValueBytes {
		writeKVError(w, http.StatusBadRequest, "BadParameter",
			fmt.Sprintf("Secret is beyond the maximum permitted length of %d bytes.", maxValueBytes))
		return
	}
	tags := map[string]string{}
	for k, v := range req.Tags {
		tags[k] = ""
		if v != nil {
			tags[k] = *v
		}
	}
	if msg := checkTags(tags); msg != "" {
		writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
		return
	}
	now := s.now().Unix()
	v := &version{
		id:          randomHex(16),
		value:       *req.Value,
		contentType: req.ContentType,
		enabled:     true,
		created:     now,
		updated:     now,
	}
	if len(tags) > 0 {
		v.tags = tags
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.enabled = *a.Enabled
		}
		var msg string
		if v.nbf, msg = unixTime("nbf", a.NotBefore); msg != "" {
			writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
			return
		}
		if v.exp, msg = unixTime("exp", a.Expires); msg != "" {
			writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
			return
		}
	}

	s.store.mu.Lock()
	if s.store.secrets == nil {
		s.store.secrets = map[string]*secret{}
	}
	sec := s.store.secrets[strings.ToLower(name)]
	if sec == nil {
		sec = &secret{name: name}
		s.store.secrets[strings.ToLower(name)] = sec
	}
	sec.versions = append(sec.versions, v)
	b := s.bundle(sec, v, true)
	s.store.mu.Unlock()
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) getSecret(w http.ResponseWriter, name, ver string) {
	s.store.mu.RLock()
	sec, v := s.store.find(name, ver)
	var b bundleJSON
	if v != nil {
		b = s.bundle(sec, v, true)
	}
	s.store.mu.RUnlock()
	switch {
	case v == nil:
		writeNotFound(w, name, ver)
	case !b.Attributes.Enabled:
		writeKVErrorInner(w, http.StatusForbidden, "Forbidden",
			"Operation get is not allowed on a disabled secret.", "SecretDisabled")
	default:
		writeJSON(w, http.StatusOK, b)
	}
}

// pageParams reads a listing's maxresults and $skiptoken, or answers 400.
func (s *Server) pageParams(w http.ResponseWriter, q url.Values) (size, offset int, ok bool) {
	size = s.pageSize
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > MaxPageSize {
			writeKVError(w, http.StatusBadRequest, "BadParameter",
				fmt.Sprintf("Invalid maxresults %q: it must be between 1 and %d.", m, MaxPageSize))
			return 0, 0, false
		}
		size = n
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		if offset, ok = parseSkipToken(tok); !ok {
			writeKVError(w, http.StatusBadRequest, "BadParameter", "The $skiptoken is not valid.")
			return 0, 0, false
		}
	}
	return size, offset, true
}

// nextLink is the absolute URL of a listing's next page, from offset: it
// carries the api-version (the client adds none to a nextLink) and
// maxresults if the request had it.
func (s *Server) nextLink(path string, q url.Values, offset int) *string {
	link := s.VaultURL + path + "?api-version=" + url.QueryEscape(q.Get("api-version")) +
		"&$skiptoken=" + skipToken(offset)
	if m := q.Get("maxresults"); m != "" {
		link += "&maxresults=" + m
	}
	return &link
}

// listSecrets serves GET /secrets (GetSecrets, azsecrets'
// ListSecretProperties): a page of SecretItems, one per secret, by
// lowercase name; each has the secret's id without a version and the
// attributes, tags and content type of its newest version.
func (s *Server) listSecrets(w http.ResponseWriter, q url.Values) {
	size, offset, ok := s.pageParams(w, q)
	if !ok {
		return
	}
	out := listJSON{Value: []bundleJSON{}}
	s.store.mu.RLock()
	keys := make([]string, 0, len(s.store.secrets))
	for k, sec := range s.store.secrets {
		if len(sec.versions) > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	end := min(offset+size, len(keys))
	for _, k := range keys[min(offset, end):end] {
		sec := s.store.secrets[k]
		b := s.bundle(sec, sec.versions[len(sec.versions)-1], false)
		b.ID = s.VaultURL + "/secrets/" + sec.name
		out.Value = append(out.Value, b)
	}
	if end < len(keys) {
		out.NextLink = s.nextLink("/secrets", q, end)
	}
	s.store.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listVersions(w http.ResponseWriter, q url.Values, name string) {
	size, offset, ok := s.pageParams(w, q)
	if !ok {
		return
	}

	out := listJSON{Value: []bundleJSON{}}
	s.store.mu.RLock()
	sec := s.store.secrets[strings.ToLower(name)]
	if sec != nil {
		name = sec.name
		listed := s.listed(sec.versions)
		end := min(offset+size, len(listed))
		for _, v := range listed[min(offset, end):end] {
			out.Value = append(out.Value, s.bundle(sec, v, false))
		}
		if end < len(sec.versions) {
			out.NextLink = s.nextLink("/secrets/"+name+"/versions", q, end)
		}
	}
	s.store.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

// ListOrder is an order in which the server lists a secret's versions.
// Key Vault promises no order; these let tests check that a client relies
// on none.
type ListOrder int

// Listing orders.
const (
	// OldestFirst lists versions in creation order (the default).
	OldestFirst ListOrder = iota
	// VersionIDOrder lists versions by their id: unrelated to their age.
	VersionIDOrder
	// RandomOrder lists versions in an order drawn from Options.ListSeed
	// and the versions' ids: the same for every page of one listing (and
	// for every listing of the same versions), different for another seed.
	RandomOrder
)

// listed returns versions (in creation order) in the server's listing
// order. The caller holds the store's lock.
func (s *Server) listed(versions []*version) []*version {
	switch s.listOrder {
	case VersionIDOrder:
		out := slices.Clone(versions)
		slices.SortFunc(out, func(a, b *version) int { return strings.Compare(a.id, b.id) })
		return out
	case RandomOrder:
		key := func(v *version) uint64 {
			h := fnv.New64a()
			binary.Write(h, binary.LittleEndian, s.listSeed)
			h.Write([]byte(v.id))
			return h.Sum64()
		}
		out := slices.Clone(versions)
		slices.SortFunc(out, func(a, b *version) int { return cmp.Compare(key(a), key(b)) })
		return out
	}
	return versions
}

func (s *Server) updateSecret(w http.ResponseWriter, r *http.Request, name, ver string) {
	var req updateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var tags map[string]string
	replaceTags := len(req.Tags) > 0 && string(req.Tags) != "null"
	if replaceTags {
		var in map[string]*string
		if err := json.Unmarshal(req.Tags, &in); err != nil {
			writeKVError(w, http.StatusBadRequest, "BadParameter", "The tags must be an object of strings.")
			return
		}
		for k, v := range in {
			if tags == nil {
				tags = map[string]string{}
			}
			tags[k] = ""
			if v != nil {
				tags[k] = *v
			}
		}
		if msg := checkTags(tags); msg != "" {
			writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
			return
		}
	}
	var nbf, exp *int64
	var msg string
	if a := req.Attributes; a != nil {
		if nbf, msg = unixTime("nbf", a.NotBefore); msg != "" {
			writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
			return
		}
		if exp, msg = unixTime("exp", a.Expires); msg != "" {
			writeKVError(w, http.StatusBadRequest, "BadParameter", msg)
			return
		}
	}

	s.store.mu.Lock()
	sec, v := s.store.find(name, ver)
	if v == nil {
		s.store.mu.Unlock()
		writeNotFound(w, name, ver)
		return
	}
	if req.ContentType != nil {
		v.contentType = req.ContentType
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.enabled = *a.Enabled
		}
		if len(a.NotBefore) > 0 {
			v.nbf = nbf
		}
		if len(a.Expires) > 0 {
			v.exp = exp
		}
	}
	if replaceTags {
		v.tags = tags
	}
	v.updated = s.now().Unix()
	b := s.bundle(sec, v, false)
	s.store.mu.Unlock()
	writeJSON(w, http.StatusOK, b)
}

// find returns a secret's version, the newest for ver "". The caller holds
// st.mu.
func (st *store) find(name, ver string) (*secret, *version) {
	sec := st.secrets[strings.ToLower(name)]
	if sec == nil || len(sec.versions) == 0 {
		return nil, nil
	}
	if ver == "" {
		return sec, sec.versions[len(sec.versions)-1]
	}
	ver = strings.ToLower(ver)
	if !versionRE.MatchString(ver) {
		return nil, nil
	}
	for _, v := range sec.versions {
		if v.id == ver {
			return sec, v
		}
	}
	return nil, nil
}

// bundle renders a version; withValue for SecretBundle, without for
// SecretItem and the update response. The caller holds s.store.mu.
func (s *Server) bundle(sec *secret, v *version, withValue bool) bundleJSON {
	b := bundleJSON{
		ID:          s.VaultURL + "/secrets/" + sec.name + "/" + v.id,
		ContentType: v.contentType,
		Attributes: attributesJSON{
			Enabled:         v.enabled,
			NotBefore:       v.nbf,
			Expires:         v.exp,
			Created:         v.created,
			Updated:         v.updated,
			RecoveryLevel:   recoveryLevel,
			RecoverableDays: recoverableDays,
		},
	}
	if withValue {
		val := v.value
		b.Value = &val
	}
	if len(v.tags) > 0 {
		b.Tags = make(map[string]string, len(v.tags))
		for k, t := range v.tags {
			b.Tags[k] = t
		}
	}
	return b
}

func writeNotFound(w http.ResponseWriter, name, ver string) {
	id := name
	if ver != "" {
		id += "/" + ver
	}
	writeKVError(w, http.StatusNotFound, "SecretNotFound",
		fmt.Sprintf("A secret with (name/id) %s was not found in this key vault.", id))
}

// decodeBody reads a JSON object body into v, or answers 400.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The request body is too large.")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The request body is missing.")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The request body is not valid: "+jsonErrorText(err))
		return false
	}
	return true
}

// jsonErrorText describes a decoding error without quoting the body.
func jsonErrorText(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at offset %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q must be %s, not %s", e.Field, e.Type, e.Value)
	}
	return "invalid JSON"
}

// unixTime decodes nbf or exp: absent or null is nil, else an integer
// number of Unix seconds.
func unixTime(field string, raw json.RawMessage) (*int64, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, fmt.Sprintf("The attribute %s must be an integer number of seconds since 1970-01-01T00:00:00Z.", field)
	}
	return &n, ""
}

// checkTags applies Key Vault's tag limits; it returns the error message.
func checkTags(tags map[string]string) string {
	if len(tags) > maxTags {
		return fmt.Sprintf("Too many tags: %d; a secret has at most %d.", len(tags), maxTags)
	}
	for k, v := range tags {
		switch {
		case k == "":
			return "A tag name must not be empty."
		case utf8.RuneCountInString(k) > maxTagNameLen:
			return fmt.Sprintf("A tag name is longer than %d characters.", maxTagNameLen)
		case utf8.RuneCountInString(v) > maxTagValueLen:
			return fmt.Sprintf("The value of tag %q is longer than %d characters.", k, maxTagValueLen)
		}
	}
	return ""
}

// skipToken encodes a listing's offset, opaque to clients.
func skipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("kvt-offset:" + strconv.Itoa(offset)))
}

func parseSkipToken(tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "kvt-offset:"))
	if err != nil || n < 0 || !strings.HasPrefix(string(b), "kvt-offset:") {
		return 0, false
	}
	return n, true
}
