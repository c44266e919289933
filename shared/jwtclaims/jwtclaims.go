// Package jwtclaims decodes a JWT's claims set strictly: as RFC 7519 defines
// the claims, and as a gateway that reads them by their exact names would.
//
// encoding/json, which golang-jwt uses for a claims struct, matches member
// names without regard to case and lets a later duplicate win, and
// golang-jwt's NumericDate accepts a number in a JSON string. A token could
// then mean one thing to modelauth and another to a gateway in front of it:
// "roles":["x"],"ROLES":["Keys.Read.All"] granted Keys.Read.All. [Claims]
// instead
//   - counts only members whose names are exactly those of [Names];
//   - refuses a claims set in which one of [Names] appears more than once,
//     exactly or in another case (Unicode simple folding, as
//     [strings.EqualFold]); a single member that differs from a name only in
//     case is not that claim, and is ignored like any other unknown member;
//   - requires exp, nbf and iat to be JSON numbers (RFC 7519 section 2,
//     NumericDate), between 0 and the end of year 9999;
//   - requires iss, sub, jti, tid, oid, azp and appid to be JSON strings, aud
//     a string or an array of strings, and roles an array of strings; a
//     claim whose value is null is absent (and a required one is then
//     missing), but null within an array is the wrong type.
//
// # Errors
//
// [Claims.UnmarshalJSON] returns an error wrapping [ErrDuplicate] or
// [ErrType] (or encoding/json's error for input that is not a JSON object).
// The text names the claim, from [Names], and never quotes the token.
// golang-jwt reports either as jwt.ErrTokenMalformed.
package jwtclaims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors.
var (
	// ErrDuplicate: a claim that Claims reads appears more than once,
	// exactly or in another case.
	ErrDuplicate = errors.New("jwtclaims: duplicated claim")
	// ErrType: a claim has the wrong JSON type, or a time claim is out of
	// range.
	ErrType = errors.New("jwtclaims: claim of the wrong type")
	// ErrNotObject: the claims set is not a JSON object.
	ErrNotObject = errors.New("jwtclaims: the claims set is not a JSON object")
)

// The claims Claims reads, by index into Names.
const (
	iss = iota
	sub
	aud
	exp
	nbf
	iat
	jti
	roles
	tid
	oid
	azp
	appid
	numNames
)

// Names are the claims that [Claims] reads, the only ones it checks for
// duplicates.
var Names = [numNames]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "tid", "oid", "azp", "appid"}

// latest is the largest NumericDate accepted: 9999-12-31T23:59:59Z.
const latest = 253402300799

// Claims are a token's claims, decoded strictly (see the package
// documentation). It implements jwt.Claims through the embedded
// RegisteredClaims, so a jwt.Parser validates exp, nbf, iat, iss and aud
// from the values decoded here.
type Claims struct {
	jwt.RegisteredClaims
	Roles []string // roles: app roles (Microsoft Entra ID)
	TID   string   // tid: tenant
	OID   string   // oid: object id
	AZP   string   // azp: the client application (v2 tokens)
	AppID string   // appid: the client application (v1 tokens)
}

var _ jwt.Claims = (*Claims)(nil)

// UnmarshalJSON decodes a claims set into c, replacing what c held.
func (c *Claims) UnmarshalJSON(data []byte) error {
	*c = Claims{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil {
		return err
	} else if d, ok := t.(json.Delim); !ok || d != '{' {
		return ErrNotObject
	}
	var seen [numNames]bool
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string) // an object's keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		i := lookup(name)
		if i < 0 {
			continue
		}
		if seen[i] {
			return fmt.Errorf("%w: %s", ErrDuplicate, Names[i])
		}
		seen[i] = true
		if name != Names[i] || string(raw) == "null" {
			// Not the claim itself (only the exact name counts), or
			// null, which is the claim's absence, as encoding/json reads
			// it. Either still marks the name as seen, so that the claim
			// may not follow.
			continue
		}
		if err := c.set(i, raw); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrType, Names[i], err)
		}
	}
	_, err := dec.Token() // the closing brace
	return err
}

// lookup returns the index of the name in Names that name equals without
// regard to case, or -1.
func lookup(name string) int {
	// Every name is ASCII and at most 5 letters; a rune that folds to an
	// ASCII letter takes at most 3 bytes (the Kelvin sign, for k).
	if len(name) > 3*5 {
		return -1
	}
	for i, n := range Names {
		if strings.EqualFold(name, n) {
			return i
		}
	}
	return -1
}

func (c *Claims) set(i int, raw json.RawMessage) error {
	switch i {
	case iss:
		return str(raw, &c.Issuer)
	case sub:
		return str(raw, &c.Subject)
	case jti:
		return str(raw, &c.ID)
	case tid:
		return str(raw, &c.TID)
	case oid:
		return str(raw, &c.OID)
	case azp:
		return str(raw, &c.AZP)
	case appid:
		return str(raw, &c.AppID)
	case exp:
		return date(raw, &c.ExpiresAt)
	case nbf:
		return date(raw, &c.NotBefore)
	case iat:
		return date(raw, &c.IssuedAt)
	case aud:
		if len(raw) > 0 && raw[0] == '"' {
			var s string
			if err := str(raw, &s); err != nil {
				return err
			}
			c.Audience = jwt.ClaimStrings{s}
			return nil
		}
		list, err := strs(raw)
		c.Audience = list
		return err
	case roles:
		list, err := strs(raw)
		c.Roles = list
		return err
	}
	return nil
}

var (
	errNotString = errors.New("not a JSON string")
	errNotArray  = errors.New("not a JSON array of strings")
	errNotNumber = errors.New("not a JSON number")
	errRange     = errors.New("out of range")
)

func str(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errNotString
	}
	return json.Unmarshal(raw, dst)
}

func strs(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errNotArray
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, it := range items {
		if err := str(it, &out[i]); err != nil {
			return nil, errNotArray
		}
	}
	return out, nil
}

func date(raw json.RawMessage, dst **jwt.NumericDate) error {
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return errNotNumber
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return errNotNumber
	}
	if !(f >= 0 && f <= latest) {
		return errRange
	}
	sec, frac := math.Modf(f)
	*dst = jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}
