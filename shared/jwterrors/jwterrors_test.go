package jwterrors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/jwterrors"
)

func TestQuiet(t *testing.T) {
	hostile := "header alg \"<script>SECRET\" unknown"
	err := jwterrors.Quiet(fmt.Errorf("%w: %w: %s", jwt.ErrTokenInvalidClaims, jwt.ErrTokenExpired, hostile))
	if !errors.Is(err, jwt.ErrTokenExpired) || !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		t.Fatalf("Quiet lost a sentinel: %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), jwt.ErrTokenExpired.Error()) {
		t.Fatalf("Quiet(...) = %q; want the sentinels' text only", err)
	}
	if got := jwterrors.Quiet(errors.New(hostile)).Error(); got != "token rejected" {
		t.Fatalf("Quiet(plain) = %q; want \"token rejected\"", got)
	}
}
