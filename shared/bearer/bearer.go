// Package bearer reads RFC 6750 Bearer credentials from an Authorization
// header and writes the matching WWW-Authenticate challenges.
package bearer

import (
	"errors"
	"net/http"
	"strings"
)

// MaxHeaderLen caps the Authorization header value that [Parse] looks at:
// 16 KiB holds any key and any token this app accepts (TOKEN_MAX_BYTES is
// at most 16 KiB, so a long token is refused by it, as invalid_token).
const MaxHeaderLen = 16 << 10

// Errors returned by [Parse].
var (
	// ErrMissing: no Authorization header, or a scheme other than Bearer.
	// RFC 6750 section 3.1: the challenge then carries no error code.
	ErrMissing = errors.New("bearer: no bearer credentials")
	// ErrMalformed: a Bearer header whose credentials break the b64token
	// syntax of RFC 6750 section 2.1, or that is too long.
	ErrMalformed = errors.New("bearer: malformed bearer credentials")
)

// Parse returns the credentials of r's Bearer Authorization header:
// [ParseValues] of its values.
func Parse(r *http.Request) (string, error) {
	return ParseValues(r.Header["Authorization"]) // the canonical key, as net/http stores it
}

// ParseValues returns the credentials of a request's Authorization header
// values: all of them, as [http.Header] holds them or as an event lists
// them. The scheme is case-insensitive; exactly one header must be present
// (none is [ErrMissing], more than one [ErrMalformed]).
func ParseValues(vals []string) (string, error) {
	return checked(SplitValues(vals))
}

// ParseValue parses one Authorization header value.
func ParseValue(v string) (string, error) {
	return checked(SplitValue(v))
}

// SplitValues is [ParseValues] but for the b64token syntax of the
// credentials, for a caller that checks it later with [IsB64Token]: only
// when it has to, such as a verifier that looks a token up by its text
// among tokens that passed every check.
func SplitValues(vals []string) (string, error) {
	switch len(vals) {
	case 0:
		return "", ErrMissing
	case 1:
		return SplitValue(vals[0])
	default:
		return "", ErrMalformed
	}
}

// SplitValue is [ParseValue] but for the b64token syntax: see
// [SplitValues]. Empty credentials are malformed.
func SplitValue(v string) (string, error) {
	if len(v) > MaxHeaderLen {
		return "", ErrMalformed
	}
	scheme, cred, found := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMissing
	}
	cred = strings.TrimLeft(cred, " ")
	if !found || cred == "" {
		return "", ErrMalformed
	}
	return cred, nil
}

func checked(cred string, err error) (string, error) {
	if err == nil && !IsB64Token(cred) {
		return "", ErrMalformed
	}
	return cred, err
}

// IsB64Token reports whether s matches RFC 6750's b64token: 1*( ALPHA /
// DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func IsB64Token(s string) bool {
	i := tokenPrefix(s)
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

// tokenPrefix returns the length of s's longest prefix of b64token bytes
// other than '='. Tokens are long (a JWT: hundreds of bytes), so it tests
// eight bytes at a time with one branch, then the rest one by one.
func tokenPrefix(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8]
		if tokenByte[b[0]]&tokenByte[b[1]]&tokenByte[b[2]]&tokenByte[b[3]]&
			tokenByte[b[4]]&tokenByte[b[5]]&tokenByte[b[6]]&tokenByte[b[7]] == 0 {
			break
		}
	}
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return i
}

func isTokenByte(c byte) bool { return tokenByte[c] == 1 }

// tokenByte marks the bytes of b64token other than '=' with 1 (the others
// 0), so that several can be tested at once with &.
var tokenByte = func() (t [256]byte) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c], t[c+'a'-'A'] = 1, 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for _, c := range "-._~+/" {
		t[c] = 1
	}
	return t
}()

// Error codes of RFC 6750 section 3.1.
const (
	InvalidRequest    = "invalid_request"
	InvalidToken      = "invalid_token"
	InsufficientScope = "insufficient_scope"
)

// Challenge returns a WWW-Authenticate value for realm. code is "" (no
// credentials were sent) or one of the RFC 6750 error codes; description
// must be plain text without quotes and never include a credential.
func Challenge(realm, code, description string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(quoteSafe(realm))
	b.WriteByte('"')
	if code != "" {
		b.WriteString(`, error="`)
		b.WriteString(code)
		b.WriteByte('"')
		if description != "" {
			b.WriteString(`, error_description="`)
			b.WriteString(quoteSafe(description))
			b.WriteByte('"')
		}
	}
	return b.String()
}

// quoteSafe keeps the printable ASCII characters RFC 6750 allows inside a
// quoted attribute value, dropping '"' and '\'.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}
