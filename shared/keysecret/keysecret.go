// Package keysecret is the contract of the secrets modelauth keeps in the
// secret store (docs/design.md section 4): their names, their tags and the
// tags' values, which secret belongs to which service, and when a key
// version expires. Every package that reads or writes those secrets takes
// these from here, so that the contract has one owner.
//
// It holds no logic beyond naming and the rules that read tags: which
// package writes which secret is docs/architecture.md's (the active copy,
// svc-<service>-active, is written by package rotation alone).
package keysecret

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"time"
)

// ServiceNameRE is the form of a service name: lower case, since Key Vault
// compares secret names without regard to case.
var ServiceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// KeyType names one of a service's two keys.
type KeyType string

// Key types, spelled as Azure ML spells them.
const (
	Primary   KeyType = "Primary"
	Secondary KeyType = "Secondary"
)

// KeyTypes are both key types, the Primary first: the order in which a
// service's key secrets are read.
var KeyTypes = [2]KeyType{Primary, Secondary}

// ParseKeyType accepts "Primary" or "Secondary" in any case.
func ParseKeyType(s string) (KeyType, bool) {
	switch {
	case strings.EqualFold(s, string(Primary)):
		return Primary, true
	case strings.EqualFold(s, string(Secondary)):
		return Secondary, true
	}
	return "", false
}

// Secret names.
const (
	// AdminKeySecret holds the administrator key.
	AdminKeySecret = "admin-key"
	// SigningKeySecret's versions are the token signing keys.
	SigningKeySecret = "signing-key"
)

// KeySecret returns the secret name of one of a service's keys:
// svc-<service>-primary or svc-<service>-secondary.
func KeySecret(service string, kt KeyType) string { return Services.Key(service, kt) }

// ActiveSecret returns the name of the secret holding a copy of a service's
// active key, svc-<service>-active: what clients read. Its tag slot names
// the key it copies.
func ActiveSecret(service string) string { return Services.Active(service) }

// A Family names the key secrets of one kind of keyed thing: the app's own
// services ([Services]: svc-<name>-primary, -secondary and -active) or the
// Azure ML online endpoints whose keys the app rotates ([Endpoints]:
// aml-<name>-primary, -secondary and -active). The two share the rotation
// protocol and the tags; only the names and the kind tags differ.
type Family struct {
	Prefix     string // the names' first segment, "svc" or "aml"
	KeyKind    string // kind tag of the key versions
	ActiveKind string // kind tag of the active copy
}

// The families.
var (
	Services  = Family{Prefix: "svc", KeyKind: KindServiceKey, ActiveKind: KindActiveKey}
	Endpoints = Family{Prefix: "aml", KeyKind: KindEndpointKey, ActiveKind: KindEndpointActiveKey}
)

// Key returns the secret name of one of name's keys:
// <prefix>-<name>-primary or <prefix>-<name>-secondary.
func (f Family) Key(name string, kt KeyType) string {
	if kt == Secondary {
		return f.Prefix + "-" + name + "-secondary"
	}
	return f.Prefix + "-" + name + "-primary"
}

// Active returns the name of the secret holding a copy of name's active
// key, <prefix>-<name>-active: what clients read.
func (f Family) Active(name string) string { return f.Prefix + "-" + name + "-active" }

// Of returns the name whose key secret or active copy secret is. Secret
// names compare without regard to case, as in Key Vault; names are lower
// case.
func (f Family) Of(secret string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.ToLower(secret), f.Prefix+"-")
	if !ok {
		return "", false
	}
	for _, suffix := range []string{"-primary", "-secondary", "-active"} {
		if s, ok := strings.CutSuffix(rest, suffix); ok && ServiceNameRE.MatchString(s) {
			return s, true
		}
	}
	return "", false
}

// KeyTags returns the tags of a new current version of one of name's keys.
func (f Family) KeyTags(name string) map[string]string {
	t := Managed(f.KeyKind)
	t[TagService], t[TagState] = name, StateCurrent
	return t
}

// ActiveTags returns the tags of the active copy of name's kt key.
func (f Family) ActiveTags(name string, kt KeyType) map[string]string {
	t := Managed(f.ActiveKind)
	t[TagService], t[TagSlot] = name, strings.ToLower(string(kt))
	return t
}

// TokenSecret returns the name of the secret holding a consumer's token:
// tok-<consumer>.
func TokenSecret(consumer string) string { return "tok-" + consumer }

// ServiceOf returns the service whose key secret name is: the <service> of
// svc-<service>-primary, -secondary or -active. Secret names compare
// without regard to case, as in Key Vault; service names are lower case.
func ServiceOf(name string) (string, bool) { return Services.Of(name) }

// Tracked reports whether validators need to know of the writes of a
// secret: a service's key secrets and active copy, the administrator key
// and the signing keys. The change journal (package journal) records
// those.
func Tracked(name string) bool {
	name = strings.ToLower(name)
	if _, ok := ServiceOf(name); ok {
		return true
	}
	return name == AdminKeySecret || name == SigningKeySecret
}

// AllVersions reports whether every version of a secret matters to
// validators, not only the newest: the signing keys.
func AllVersions(name string) bool { return strings.EqualFold(name, SigningKeySecret) }

// Tag names.
const (
	TagManagedBy = "managed-by" // always ManagedBy
	TagKind      = "kind"       // one of the Kind values
	TagService   = "service"    // the service a secret serves
	TagState     = "state"      // StateCurrent or StateStaged on key versions; a signing key's state
	TagRotation  = "rotation"   // the id of the rotation that staged a version
	TagActivated = "activated"  // Unix seconds when a version became current (or signs)
	TagSlot      = "slot"       // on the active copy: "primary" or "secondary"
	TagKid       = "kid"        // a signing key's RFC 7638 thumbprint
	TagAlg       = "alg"        // a signing key's algorithm
	// TagFingerprint is on an endpoint's key versions: the first 128 bits
	// of the value's SHA-256, in hex ([Fingerprint]), so that a key found
	// at the endpoint can be told to be one the app wrote without reading
	// every version's value.
	TagFingerprint = "fp"
	// A stored token's refreshAfter and expiryOn, Unix seconds (decimal).
	TagRefreshAfter = "refreshAfter"
	TagExpiryOn     = "expiryOn"
)

// TokenContentType is the content type of a stored token.
const TokenContentType = "application/jwt"

// Tag values.
const (
	ManagedBy      = "modelauth"
	KindServiceKey = "service-key"
	KindActiveKey  = "active-key"
	// An Azure ML endpoint's key versions and active copy.
	KindEndpointKey       = "endpoint-key"
	KindEndpointActiveKey = "endpoint-active-key"
	KindAdminKey          = "admin-key"
	KindSigningKey        = "signing-key"
	KindToken             = "token"
	StateCurrent          = "current"
	StateStaged           = "staged"
)

// Managed returns the tags every secret modelauth writes carries: managed-by
// and kind.
func Managed(kind string) map[string]string {
	return map[string]string{TagManagedBy: ManagedBy, TagKind: kind}
}

// ServiceTags returns the tags of a new current version of a service key.
func ServiceTags(service string) map[string]string { return Services.KeyTags(service) }

// ActiveTags returns the tags of the active copy of kt's key.
func ActiveTags(service string, kt KeyType) map[string]string {
	return Services.ActiveTags(service, kt)
}

// KeyTypeOfSlot reads an active copy's slot tag.
func KeyTypeOfSlot(tags map[string]string) KeyType {
	if strings.EqualFold(tags[TagSlot], string(Secondary)) {
		return Secondary
	}
	return Primary
}

// Fingerprint is the fp tag of an endpoint key's value. Keys are random
// (at least 128 bits), so the hash reveals nothing a guess could use.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:16])
}

// ExpiryMargin is how long after a key version's due time its exp is set:
// Key Vault sends SecretNearExpiry 30 days before exp, so that event
// arrives when the rotation is due, a backstop for a stopped timer.
const ExpiryMargin = 30 * 24 * time.Hour

// Expiry is the exp of a key version (a service key or a signing key) whose
// next rotation is due at due.
func Expiry(due time.Time) time.Time { return due.Add(ExpiryMargin) }

// CopyLags reports whether a service's active copy (its tags and value)
// lags behind the key it copies (the newest version's tags and value): a
// copy never moved by a rotation must hold its key's newest version while
// that version is current and was never activated. Instances creating a
// service's first keys at once can leave the copy behind; validators that
// see it ask for the copy to be converged (package rotation).
func CopyLags(copyTags map[string]string, copyValue string, keyTags map[string]string, keyValue string) bool {
	if copyTags[TagActivated] != "" || copyTags[TagRotation] != "" {
		return false
	}
	return keyValue != "" && keyValue != copyValue && keyTags[TagActivated] == "" && keyTags[TagState] != StateStaged
}
