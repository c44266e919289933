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
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	if !json.Valid(data) { // as encoding/json has checked when it calls this
		return errSyntax
	}
	var seen [numNames]bool
	return members(data, func(name string, raw []byte) error {
		i := lookup(name)
		if i < 0 {
			return nil
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
			return nil
		}
		if err := c.set(i, raw); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrType, Names[i], err)
		}
		return nil
	})
}

// members calls yield with each member of the valid JSON object data: its
// name, decoded, and its raw value. It stops at yield's first error.
func members(data []byte, yield func(name string, raw []byte) error) error {
	sc := scanner{data: data}
	if sc.space(); !sc.take('{') {
		return ErrNotObject
	}
	for sc.space(); !sc.take('}'); sc.space() {
		sc.take(',')
		sc.space()
		name, err := keyName(sc.str())
		if err != nil {
			return err
		}
		sc.space()
		sc.take(':')
		sc.space()
		if err := yield(name, sc.value()); err != nil {
			return err
		}
	}
	return nil
}

// errSyntax: the claims set is not well-formed JSON.
var errSyntax = errors.New("jwtclaims: malformed claims set")

// keyName is a member name as encoding/json reads it: the raw string (with
// its quotes) decoded, escapes resolved and invalid UTF-8 replaced by
// U+FFFD; only a name holding an escape or a non-ASCII byte costs a decode.
func keyName(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 && !slices.ContainsFunc(raw, func(b byte) bool { return b >= utf8.RuneSelf }) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return "", errSyntax
	}
	return name, nil
}

// scanner walks the top level of a JSON object already known to be valid,
// without decoding its values: encoding/json's Decoder allocates for every
// token, and a claims set is read for every new token validate sees.
type scanner struct {
	data []byte
	pos  int
}

func (sc *scanner) space() {
	for sc.pos < len(sc.data) && (sc.data[sc.pos] == ' ' || sc.data[sc.pos] == '\t' || sc.data[sc.pos] == '\n' || sc.data[sc.pos] == '\r') {
		sc.pos++
	}
}

// take consumes b if it comes next.
func (sc *scanner) take(b byte) bool {
	if sc.pos < len(sc.data) && sc.data[sc.pos] == b {
		sc.pos++
		return true
	}
	return false
}

// str returns the string that comes next, quotes included.
func (sc *scanner) str() []byte {
	start := sc.pos
	for sc.pos++; sc.pos < len(sc.data); sc.pos++ {
		switch sc.data[sc.pos] {
		case '\\':
			sc.pos++
		case '"':
			sc.pos++
			return sc.data[start:sc.pos]
		}
	}
	return sc.data[start:]
}

// value returns the value that comes next, whatever its type.
func (sc *scanner) value() []byte {
	start := sc.pos
	for depth := 0; sc.pos < len(sc.data); {
		switch sc.data[sc.pos] {
		case '"':
			sc.str()
		case '{', '[':
			depth++
			sc.pos++
		case '}', ']':
			if depth == 0 {
				return sc.data[start:sc.pos]
			}
			depth--
			sc.pos++
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return sc.data[start:sc.pos]
			}
			sc.pos++
		default:
			sc.pos++
		}
		if depth == 0 && sc.pos > start && (sc.data[sc.pos-1] == '"' || sc.data[sc.pos-1] == '}' || sc.data[sc.pos-1] == ']') {
			return sc.data[start:sc.pos]
		}
	}
	return sc.data[start:]
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
