// Package jwterrors keeps golang-jwt's errors fit for logs: their chain for
// errors.Is, without their text, which can quote values from the token (an
// attacker's choice of bytes).
package jwterrors

import (
	"errors"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// quietError keeps an error's chain while giving it fixed text.
type quietError struct {
	msg string
	err error
}

func (e *quietError) Error() string { return e.msg }
func (e *quietError) Unwrap() error { return e.err }

// causes are the jwt sentinels whose own text Quiet uses, most specific
// first.
var causes = []error{
	jwt.ErrTokenExpired,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrTokenInvalidIssuer,
	jwt.ErrTokenInvalidAudience,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrInvalidType,
	jwt.ErrInvalidKeyType,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenMalformed,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenInvalidClaims,
}

// Quiet wraps err, an error of the jwt package: errors.Is still finds every
// sentinel in it, and its text is only the sentinels' own ("token rejected"
// when there is none).
func Quiet(err error) error {
	var msgs []string
	for _, c := range causes {
		if errors.Is(err, c) {
			msgs = append(msgs, c.Error())
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "token rejected")
	}
	return &quietError{msg: strings.Join(msgs, ": "), err: err}
}
