package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 43 {
			t.Fatalf("Generate() = %d characters; want 43", len(k))
		}
		if err := Check(k); err != nil {
			t.Fatalf("Check(Generate()) = %v", err)
		}
		if strings.Contains(k, ".") {
			t.Fatalf("generated key contains '.'")
		}
		if seen[k] {
			t.Fatalf("Generate returned a key twice")
		}
		seen[k] = true
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"min length", strings.Repeat("a", 32), true},
		{"max length", strings.Repeat("Z", 128), true},
		{"all classes", "abcXYZ019-_" + strings.Repeat("q", 21), true},
		{"too short", strings.Repeat("a", 31), false},
		{"too long", strings.Repeat("a", 129), false},
		{"dot", strings.Repeat("a", 31) + ".", false},
		{"plus", strings.Repeat("a", 31) + "+", false},
		{"slash", strings.Repeat("a", 31) + "/", false},
		{"space", strings.Repeat("a", 31) + " ", false},
		{"non-ascii", strings.Repeat("a", 30) + "é", false},
		{"nul", strings.Repeat("a", 31) + "\x00", false},
		{"empty", "", false},
		{"byte before A", strings.Repeat("a", 31) + "@", false},
		{"byte after Z", strings.Repeat("a", 31) + "[", false},
		{"byte before a", strings.Repeat("a", 31) + "`", false},
		{"byte after z", strings.Repeat("a", 31) + "{", false},
		{"byte before 0", strings.Repeat("a", 31) + "/", false},
		{"byte after 9", strings.Repeat("a", 31) + ":", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.key)
			if got := err == nil; got != tt.ok {
				t.Fatalf("Check(%q) = %v; want ok=%v", tt.key, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrFormat) {
				t.Fatalf("Check error %v is not ErrFormat", err)
			}
		})
	}
}

func TestCheckAgreesWithSimpleRule(t *testing.T) {
	simple := func(c byte) bool {
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	for c := 0; c < 256; c++ {
		if got, want := isKeyByte(byte(c)) == 1, simple(byte(c)); got != want {
			t.Errorf("isKeyByte(%#x) = %v; want %v", c, got, want)
		}
	}
}

func TestSetMatch(t *testing.T) {
	p, _ := Generate()
	s, _ := Generate()
	var set Set
	if _, ok := set.Match(p); ok {
		t.Fatal("empty set matched")
	}
	set = set.Add("Primary", p).Add("Secondary", s)
	if set.Len() != 2 {
		t.Fatalf("Len = %d; want 2", set.Len())
	}
	for _, tt := range []struct{ key, want string }{{p, "Primary"}, {s, "Secondary"}} {
		got, ok := set.Match(tt.key)
		if !ok || got != tt.want {
			t.Errorf("Match(key) = %q, %v; want %q, true", got, ok, tt.want)
		}
	}
	for _, wrong := range []string{"", p[:42], p + "x", strings.ToUpper(p)} {
		if wrong == p {
			continue
		}
		if got, ok := set.Match(wrong); ok {
			t.Errorf("Match(%q) = %q; want no match", wrong, got)
		}
	}
	// Add does not change the set it was called on.
	bigger := set.Add("Third", "x")
	if set.Len() != 2 || bigger.Len() != 3 {
		t.Fatalf("Add changed its receiver: %d, %d", set.Len(), bigger.Len())
	}
	// Same key under two labels: the first label wins.
	dup := Set{}.Add("first", p).Add("second", p)
	if got, _ := dup.Match(p); got != "first" {
		t.Fatalf("Match with duplicates = %q; want first", got)
	}
}

func BenchmarkSetMatch(b *testing.B) {
	p, _ := Generate()
	s, _ := Generate()
	set := Set{}.Add("Primary", p).Add("Secondary", s)
	for b.Loop() {
		if _, ok := set.Match(s); !ok {
			b.Fatal("no match")
		}
	}
}

// TestDigestKeyAgreesWithHMAC checks the allocation-free HMAC-SHA256 of
// DigestSet.Match against crypto/hmac, for digest keys shorter, as long
// as and longer than a SHA-256 block, and every key length.
func TestDigestKeyAgreesWithHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, keyLen := range []int{0, 1, 32, 63, 64, 65, 100, 200} {
		key := make([]byte, keyLen)
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		d := newDigestKey(key)
		for n := 0; n <= MaxLen; n++ {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(rng.Uint32())
			}
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			if got, want := d.sum(string(msg)), m.Sum(nil); !bytes.Equal(got[:], want) {
				t.Fatalf("key of %d bytes, message of %d: %x; crypto/hmac gives %x", keyLen, n, got, want)
			}
		}
	}
}
