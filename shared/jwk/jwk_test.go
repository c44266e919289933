package jwk

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
)

// rsaKey is one RSA 2048 key shared by the tests: generating keys is slow.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// oddModulus returns a public key whose modulus is an odd number of
// exactly bits bits. It is no real RSA key, but the checks of this package
// cannot tell, and it costs nothing to make.
func oddModulus(t testing.TB, bits int) *rsa.PublicKey {
	t.Helper()
	b := make([]byte, (bits+7)/8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	n := new(big.Int).SetBytes(b)
	n.SetBit(n, bits-1, 1)
	for i := bits; i < len(b)*8; i++ {
		n.SetBit(n, i, 0)
	}
	n.SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: 65537}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type equaler interface{ Equal(crypto.PublicKey) bool }

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		alg     string
		pub     crypto.PublicKey
		wantKty string
	}{
		{"RSA 2048", "RS256", &rsaKey().PublicKey, KtyRSA},
		{"RSA 2048 no alg", "", &rsaKey().PublicKey, KtyRSA},
		{"RSA 8192 modulus", "PS512", oddModulus(t, 8192), KtyRSA},
		{"RSA exponent 3", "RS256", &rsa.PublicKey{N: rsaKey().N, E: 3}, KtyRSA},
		{"EC P-256", "ES256", &ecKey(t).PublicKey, KtyEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := FromPublic("kid-1", tt.alg, tt.pub)
			if err != nil {
				t.Fatalf("FromPublic: %v", err)
			}
			if k.Kty != tt.wantKty || k.Kid != "kid-1" || k.Alg != tt.alg || k.Use != UseSig {
				t.Errorf("FromPublic = %+v; want kty %s, kid kid-1, alg %q, use sig", k, tt.wantKty, tt.alg)
			}
			data, err := json.Marshal(Set{Keys: []Key{k}})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := ParseSet(data)
			if err != nil {
				t.Fatalf("ParseSet: %v", err)
			}
			if len(keys) != 1 || keys[0] != k {
				t.Fatalf("ParseSet(Marshal(k)) = %+v; want [%+v]", keys, k)
			}
			got, err := keys[0].PublicKey()
			if err != nil {
				t.Fatalf("PublicKey: %v", err)
			}
			if !got.(equaler).Equal(tt.pub) {
				t.Errorf("PublicKey() differs from the key given to FromPublic")
			}
		})
	}
}

func TestFromPublicEncoding(t *testing.T) {
	// A P-256 point whose x has a leading zero byte must still be encoded
	// as 32 bytes (RFC 7518 section 6.2.1.2).
	for i := 0; ; i++ {
		k := ecKey(t)
		if k.X.BitLen() > 248 {
			if i > 2000 {
				t.Fatal("no key with a short x in 2000 tries")
			}
			continue
		}
		j, err := FromPublic("", "ES256", &k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if x, _ := base64.RawURLEncoding.DecodeString(j.X); len(x) != 32 || x[0] != 0 {
			t.Errorf("x encoded as %d bytes starting %#x; want 32 bytes starting 0", len(x), x[0])
		}
		break
	}
	j, err := FromPublic("", "", &rsa.PublicKey{N: rsaKey().N, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if j.E != "AQAB" {
		t.Errorf("e = %q; want AQAB", j.E)
	}
	if strings.ContainsAny(j.N, "=+/") {
		t.Errorf("n = %q is not base64url without padding", j.N)
	}
}

func TestFromPublicRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		alg  string
		pub  crypto.PublicKey
	}{
		{"nil", "", nil},
		{"nil RSA", "", (*rsa.PublicKey)(nil)},
		{"RSA 1024", "RS256", oddModulus(t, 1024)},
		{"RSA with EC alg", "ES256", &rsaKey().PublicKey},
		{"EC with RSA alg", "RS256", &ecKey(t).PublicKey},
		{"EC P-384", "ES384", &p384.PublicKey},
		{"Ed25519", "EdDSA", edPub},
		{"private key", "RS256", rsaKey()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := FromPublic("k", tt.alg, tt.pub); !errors.Is(err, ErrInvalid) {
				t.Errorf("FromPublic = %+v, %v; want ErrInvalid", k, err)
			}
		})
	}
}

func TestRFC7517Golden(t *testing.T) {
	data := readFile(t, "testdata/rfc7517-a1-public.json")

	var set Set
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("got %d keys; want 2", len(set.Keys))
	}

	ec, err := set.Keys[0].PublicKey()
	if err != nil {
		t.Fatalf("EC key: %v", err)
	}
	// Appendix A.2 gives the private scalar of the same key: d·G must be
	// the public point of A.1.
	var priv struct{ D string }
	if err := json.Unmarshal(readFile(t, "testdata/rfc7517-a2-private-ec.json"), &priv); err != nil {
		t.Fatal(err)
	}
	d, _ := base64.RawURLEncoding.DecodeString(priv.D)
	sk, err := ecdh.P256().NewPrivateKey(d)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ec.(*ecdsa.PublicKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt, sk.PublicKey().Bytes()) {
		t.Error("EC key of A.1 is not d·G with d of A.2")
	}

	rk, err := set.Keys[1].PublicKey()
	if err != nil {
		t.Fatalf("RSA key: %v", err)
	}
	if got := rk.(*rsa.PublicKey); got.N.BitLen() != 2048 || got.E != 65537 {
		t.Errorf("RSA key: %d bits, e=%d; want 2048, 65537", got.N.BitLen(), got.E)
	}

	// ParseSet keeps only signature keys: the EC key is "use":"enc".
	keys, err := ParseSet(data)
	if err != nil {
		t.Fatalf("ParseSet: %v", err)
	}
	if len(keys) != 1 || keys[0].Kid != "2011-04-29" || keys[0].Alg != "RS256" {
		t.Errorf("ParseSet = %+v; want only kid 2011-04-29", keys)
	}
}

func TestPrivateMembersRefused(t *testing.T) {
	t.Run("RFC 7517 A.2", func(t *testing.T) {
		var k Key
		err := json.Unmarshal(readFile(t, "testdata/rfc7517-a2-private-ec.json"), &k)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Unmarshal(private EC key) = %v; want ErrInvalid", err)
		}
		if err != nil && strings.Contains(err.Error(), "870MB6") {
			t.Errorf("error %q contains key material", err)
		}
	})
	pub, err := FromPublic("pub", "RS256", &rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	base, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "D"} {
		t.Run(m, func(t *testing.T) {
			obj := string(base[:len(base)-1]) + `,"` + m + `":"AQAB"}`
			var k Key
			if err := json.Unmarshal([]byte(obj), &k); !errors.Is(err, ErrInvalid) {
				t.Errorf("Unmarshal(key with %q) = %v; want ErrInvalid", m, err)
			}
			keys, err := ParseSet([]byte(`{"keys":[` + obj + `,` + string(base) + `]}`))
			if err != nil {
				t.Fatalf("ParseSet: %v", err)
			}
			if len(keys) != 1 {
				t.Errorf("ParseSet kept %d keys; want 1 (the key with %q skipped)", len(keys), m)
			}
		})
	}
}

func TestPublicKeyRefuses(t *testing.T) {
	good, err := FromPublic("k", "RS256", &rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	goodEC, err := FromPublic("k", "ES256", &ecKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaWith := func(f func(*Key)) Key { k := good; f(&k); return k }
	ecWith := func(f func(*Key)) Key { k := goodEC; f(&k); return k }
	modulus := func(pub *rsa.PublicKey) string { return b64(pub.N.Bytes()) }
	even := new(big.Int).SetBit(rsaKey().N, 0, 0)
	flipped := func(s string) string {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		b[len(b)-1] ^= 1
		return b64(b)
	}

	tests := []struct {
		name            string
		key             Key
		wantUnsupported bool
	}{
		{"RSA 1024", rsaWith(func(k *Key) { k.N = modulus(oddModulus(t, 1024)) }), false},
		{"RSA 2047", rsaWith(func(k *Key) { k.N = modulus(oddModulus(t, 2047)) }), false},
		{"RSA 8193", rsaWith(func(k *Key) { k.N = modulus(oddModulus(t, 8193)) }), false},
		{"RSA even modulus", rsaWith(func(k *Key) { k.N = b64(even.Bytes()) }), false},
		{"RSA e=1", rsaWith(func(k *Key) { k.E = "AQ" }), false},
		{"RSA e=2", rsaWith(func(k *Key) { k.E = "Ag" }), false},
		{"RSA e=65536", rsaWith(func(k *Key) { k.E = "AQAA" }), false},
		{"RSA e=2^31+1", rsaWith(func(k *Key) { k.E = b64([]byte{0x80, 0, 0, 1}) }), false},
		{"RSA e huge", rsaWith(func(k *Key) { k.E = b64(bytes.Repeat([]byte{0xff}, 16)) }), false},
		{"RSA no n", rsaWith(func(k *Key) { k.N = "" }), false},
		{"RSA no e", rsaWith(func(k *Key) { k.E = "" }), false},
		{"RSA padded e", rsaWith(func(k *Key) { k.E = "AQAB=" }), false},
		{"RSA standard base64", rsaWith(func(k *Key) { k.N = strings.NewReplacer("-", "+", "_", "/").Replace(k.N) + "+/" }), false},
		{"RSA not base64", rsaWith(func(k *Key) { k.N = "!!!!" }), false},
		{"RSA with ES256 alg", rsaWith(func(k *Key) { k.Alg = "ES256" }), true},
		{"RSA with HS256 alg", rsaWith(func(k *Key) { k.Alg = "HS256" }), true},
		{"RSA with none alg", rsaWith(func(k *Key) { k.Alg = "none" }), true},
		{"EC off curve", ecWith(func(k *Key) { k.Y = flipped(k.Y) }), false},
		{"EC zero point", ecWith(func(k *Key) { k.X, k.Y = b64(make([]byte, 32)), b64(make([]byte, 32)) }), false},
		{"EC short x", ecWith(func(k *Key) { b, _ := base64.RawURLEncoding.DecodeString(k.X); k.X = b64(b[1:]) }), false},
		{"EC long y", ecWith(func(k *Key) { b, _ := base64.RawURLEncoding.DecodeString(k.Y); k.Y = b64(append([]byte{0}, b...)) }), false},
		{"EC no y", ecWith(func(k *Key) { k.Y = "" }), false},
		{"RSA with crv", rsaWith(func(k *Key) { k.Crv = "P-256" }), false},
		{"RSA with x", rsaWith(func(k *Key) { k.X = goodEC.X }), false},
		{"EC with n", ecWith(func(k *Key) { k.N = good.N }), false},
		{"EC with e", ecWith(func(k *Key) { k.E = "AQAB" }), false},
		{"EC P-384", ecWith(func(k *Key) { k.Crv = "P-384" }), true},
		{"EC with RS256 alg", ecWith(func(k *Key) { k.Alg = "RS256" }), true},
		{"kty oct", Key{Kty: "oct", Kid: "k"}, true},
		{"kty OKP", Key{Kty: "OKP", Crv: "Ed25519", X: goodEC.X}, true},
		{"kty lower case", rsaWith(func(k *Key) { k.Kty = "rsa" }), true},
		{"kty empty", Key{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := tt.key.PublicKey()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("PublicKey() = %T, %v; want ErrInvalid", pub, err)
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.wantUnsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v; want %v", err, got, tt.wantUnsupported)
			}
			for _, v := range []string{tt.key.N, tt.key.X, tt.key.Y} {
				if len(v) > 8 && strings.Contains(err.Error(), v) {
					t.Errorf("error %q contains key material", err)
				}
			}
			// ParseSet skips what PublicKey refuses.
			data, _ := json.Marshal(Set{Keys: []Key{tt.key}})
			if keys, err := ParseSet(data); err != nil || len(keys) != 0 {
				t.Errorf("ParseSet = %+v, %v; want no keys, nil", keys, err)
			}
		})
	}
}

func TestParseSet(t *testing.T) {
	rk, err := FromPublic("r", "RS256", &rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := FromPublic("e", "ES256", &ecKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	js := func(k Key) string { b, _ := json.Marshal(k); return string(b) }
	with := func(k Key, f func(*Key)) string { f(&k); return js(k) }
	set := func(members ...string) string { return `{"keys":[` + strings.Join(members, ",") + `]}` }
	big := set(js(rk), `{"kty":"RSA","x5c":["`+strings.Repeat("A", MaxSetBytes)+`"]}`)

	tests := []struct {
		name     string
		doc      string
		wantKids []string
		wantErr  bool
	}{
		{"empty set", `{"keys":[]}`, nil, false},
		{"RSA and EC", set(js(rk), js(ek)), []string{"r", "e"}, false},
		{"order kept", set(js(ek), js(rk)), []string{"e", "r"}, false},
		{"use enc skipped", set(with(rk, func(k *Key) { k.Use = "enc" }), js(ek)), []string{"e"}, false},
		{"use empty kept", set(with(rk, func(k *Key) { k.Use = "" })), []string{"r"}, false},
		{"kty oct skipped", set(`{"kty":"oct","kid":"s","k":"c2VjcmV0"}`, js(rk)), []string{"r"}, false},
		{"alg RSA-OAEP skipped", set(with(rk, func(k *Key) { k.Alg = "RSA-OAEP" }), js(ek)), []string{"e"}, false},
		{"non-object member skipped", set(`42`, `"x"`, `null`, js(rk)), []string{"r"}, false},
		{"wrong member type skipped", set(`{"kty":"RSA","n":1,"e":"AQAB"}`, js(rk)), []string{"r"}, false},
		{"unknown members ignored", set(`{"x5t":"abc","issuer":"https://x/",` + js(rk)[1:]), []string{"r"}, false},
		{"malformed JSON", `{"keys":[`, nil, true},
		{"not JSON", `keys`, nil, true},
		{"trailing data", `{"keys":[]} {}`, nil, true},
		{"no keys", `{}`, nil, true},
		{"keys null", `{"keys":null}`, nil, true},
		{"keys not array", `{"keys":{}}`, nil, true},
		{"array at top", `[]`, nil, true},
		{"too large", big, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseSet([]byte(tt.doc))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("ParseSet = %+v, %v; want ErrInvalid", keys, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSet: %v", err)
			}
			var kids []string
			for _, k := range keys {
				kids = append(kids, k.Kid)
			}
			if strings.Join(kids, ",") != strings.Join(tt.wantKids, ",") {
				t.Errorf("ParseSet kids = %q; want %q", kids, tt.wantKids)
			}
		})
	}
}

func FuzzParseSet(f *testing.F) {
	f.Add(readFile(f, "testdata/rfc7517-a1-public.json"))
	f.Add(readFile(f, "testdata/rfc7517-a2-private-ec.json"))
	rk, _ := FromPublic("r", "RS256", &rsaKey().PublicKey)
	ek, _ := FromPublic("e", "ES256", &ecKey(f).PublicKey)
	seed, _ := json.Marshal(Set{Keys: []Key{rk, ek}})
	f.Add(seed)
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseSet(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseSet error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, k := range keys {
			pub, err := k.PublicKey()
			if err != nil {
				t.Fatalf("ParseSet returned key %+v that PublicKey refuses: %v", k, err)
			}
			if k.Use != "" && k.Use != UseSig {
				t.Fatalf("ParseSet returned key with use %q", k.Use)
			}
			back, err := FromPublic(k.Kid, k.Alg, pub)
			if err != nil {
				t.Fatalf("FromPublic(PublicKey()) of %+v: %v", k, err)
			}
			pub2, err := back.PublicKey()
			if err != nil {
				t.Fatalf("round trip of %+v: %v", k, err)
			}
			if !pub2.(equaler).Equal(pub) {
				t.Fatalf("round trip of %+v changed the key", k)
			}
			if back.Kty != k.Kty || back.Kid != k.Kid || back.Alg != k.Alg || back.Crv != k.Crv {
				t.Fatalf("round trip of %+v gave %+v", k, back)
			}
		}
	})
}
