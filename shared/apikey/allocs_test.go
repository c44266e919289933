//go:build !race

// Allocation counts are not meaningful under the race detector: make test
// runs these in its pass without it.

package apikey

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
)

// TestDigestSetMatchAllocs pins DigestSet.Match at zero allocations, with
// up to four digest keys (the validate hot path: docs/design.md 4.5).
func TestDigestSetMatchAllocs(t *testing.T) {
	var s DigestSet
	keys := []string{strings.Repeat("a", 43), strings.Repeat("b", 43), strings.Repeat("c", 128)}
	for i, k := range keys {
		dk := []byte{byte(i % 2)} // two digest keys
		m := hmac.New(sha256.New, dk)
		m.Write([]byte(k))
		s = s.Add(k[:1], dk, Hash(m.Sum(nil)))
	}
	for _, k := range append(keys, strings.Repeat("x", 43), strings.Repeat("y", 4000)) {
		if n := testing.AllocsPerRun(100, func() { s.Match(k) }); n != 0 {
			t.Errorf("Match of a %d-byte key: %v allocations; want 0", len(k), n)
		}
	}
	if l, ok := s.Match(keys[2]); !ok || l != "c" {
		t.Errorf("Match(keys[2]) = %q, %v", l, ok)
	}
	if _, ok := s.Match(strings.Repeat("x", 43)); ok {
		t.Error("a wrong key matched")
	}
}
