package bearer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("a", MaxHeaderLen)
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr error
	}{
		{"key", []string{"Bearer abcDEF123-_"}, "abcDEF123-_", nil},
		{"jwt", []string{"Bearer aaa.bbb.ccc"}, "aaa.bbb.ccc", nil},
		{"scheme case", []string{"bEARER tok"}, "tok", nil},
		{"padding", []string{"Bearer abc=="}, "abc==", nil},
		{"extra spaces before token", []string{"Bearer   tok"}, "tok", nil},
		{"none", nil, "", ErrMissing},
		{"empty", []string{""}, "", ErrMissing},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", ErrMissing},
		{"scheme only", []string{"Bearer"}, "", ErrMalformed},
		{"scheme and space", []string{"Bearer "}, "", ErrMalformed},
		{"two tokens", []string{"Bearer a b"}, "", ErrMalformed},
		{"bad char", []string{"Bearer a,b"}, "", ErrMalformed},
		{"quote", []string{`Bearer "tok"`}, "", ErrMalformed},
		{"padding in middle", []string{"Bearer a=b"}, "", ErrMalformed},
		{"only padding", []string{"Bearer =="}, "", ErrMalformed},
		{"trailing space", []string{"Bearer tok "}, "", ErrMalformed},
		{"tab", []string{"Bearer\ttok"}, "", ErrMissing},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", ErrMalformed},
		{"too long", []string{"Bearer " + long}, "", ErrMalformed},
		{"non-ascii", []string{"Bearer tök"}, "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := Parse(r)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q, %v", tt.headers, got, err, tt.want, tt.wantErr)
			}
			got, err = ParseValues(tt.headers)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("ParseValues(%q) = %q, %v; want %q, %v", tt.headers, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		realm, code, desc, want string
	}{
		{"svc", "", "ignored without a code", `Bearer realm="svc"`},
		{"svc", InvalidToken, "the key is not valid", `Bearer realm="svc", error="invalid_token", error_description="the key is not valid"`},
		{"svc", InvalidRequest, "", `Bearer realm="svc", error="invalid_request"`},
		{`a"b\c`, InvalidToken, "x\"y\n", `Bearer realm="abc", error="invalid_token", error_description="xy"`},
	}
	for _, tt := range tests {
		if got := Challenge(tt.realm, tt.code, tt.desc); got != tt.want {
			t.Errorf("Challenge(%q, %q, %q) = %s; want %s", tt.realm, tt.code, tt.desc, got, tt.want)
		}
	}
}

// FuzzParseValue: never panics; what it accepts is a b64token that a
// header built from it gives back unchanged; SplitValue gives the same
// answer but for credentials that only the b64token check refuses.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Bearer a.b.c", "bearer x==", "Basic x", "Bearer ", "", "Bearer a b", "Bearer \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cred, err := ParseValue(v)
		split, splitErr := SplitValue(v)
		switch {
		case splitErr == nil && split == "":
			t.Fatalf("SplitValue(%q) returned empty credentials", v)
		case err == nil && (splitErr != nil || split != cred):
			t.Fatalf("SplitValue(%q) = %q, %v; ParseValue accepted %q", v, split, splitErr, cred)
		case err != nil && splitErr == nil && (err != ErrMalformed || IsB64Token(split)):
			t.Fatalf("SplitValue(%q) accepted %q, a b64token, where ParseValue said %v", v, split, err)
		case err != nil && splitErr != nil && err != splitErr:
			t.Fatalf("SplitValue(%q) said %v, ParseValue %v", v, splitErr, err)
		}
		if err != nil {
			if cred != "" {
				t.Fatalf("ParseValue(%q) returned %q with error %v", v, cred, err)
			}
			return
		}
		if !IsB64Token(cred) || len(cred) > MaxHeaderLen {
			t.Fatalf("ParseValue(%q) accepted %q", v, cred)
		}
		again, err := ParseValue("Bearer " + cred)
		if err != nil || again != cred {
			t.Fatalf("round trip of %q: %q, %v", cred, again, err)
		}
	})
}

// TestTokenPrefixAgreesWithSimpleLoop checks the eight-at-a-time scan
// against a byte-by-byte one, for every position of a bad byte in strings
// around the eight-byte boundaries.
func TestTokenPrefixAgreesWithSimpleLoop(t *testing.T) {
	simple := func(s string) int {
		i := 0
		for i < len(s) && strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", s[i]) >= 0 {
			i++
		}
		return i
	}
	for n := 0; n <= 40; n++ {
		for bad := -1; bad < n; bad++ {
			for _, c := range []byte{'=', ' ', 0, 0xff, '"'} {
				b := []byte(strings.Repeat("aZ9-._~+/", 5)[:n])
				if bad >= 0 {
					b[bad] = c
				}
				if got, want := tokenPrefix(string(b)), simple(string(b)); got != want {
					t.Fatalf("tokenPrefix(%q) = %d; want %d", b, got, want)
				}
			}
		}
	}
}
