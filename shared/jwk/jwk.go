// Package jwk converts public keys to and from JSON Web Keys (RFC 7517,
// with the parameters of RFC 7518 section 6) and parses JWK Sets.
//
// Only public signature keys are handled: RSA keys of 2048 to 8192 bits and
// EC keys on P-256. A key that carries a private member ("d", "p", "q",
// "dp", "dq", "qi", "oth" or "k") is refused, so a JWKS document can never be
// used to smuggle secret material into a verifier.
//
// # Errors
//
// Every refusal of a key wraps [ErrInvalid]; refusals of a key that is well
// formed but of a kind this package does not handle also wrap
// [ErrUnsupported]. Error messages never contain key material.
package jwk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// MaxSetBytes is the largest JWK Set document [ParseSet] accepts.
const MaxSetBytes = 256 << 10

// Bounds on the RSA keys that [Key.PublicKey] accepts.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// maxRSAExponent is the largest public exponent accepted: 2^31-1, the
// limit crypto/rsa itself enforces.
const maxRSAExponent = 1<<31 - 1

// Key type, curve and use values.
const (
	KtyRSA  = "RSA"
	KtyEC   = "EC"
	CrvP256 = "P-256"
	UseSig  = "sig"
)

var (
	// ErrInvalid means a JWK or JWK Set is malformed, weak, or carries
	// private key material.
	ErrInvalid = errors.New("jwk: invalid key")

	// ErrUnsupported means a JWK is of a key type, curve or algorithm this
	// package does not handle. Errors that wrap it also wrap ErrInvalid.
	ErrUnsupported = errors.New("jwk: unsupported key")
)

// Key is one public JSON Web Key. The zero value is not a valid key.
//
// Decoding a Key with encoding/json fails with [ErrInvalid] when the object
// has a private key member. Like all of encoding/json, decoding matches
// member names without regard to case, so "D" counts as a private member
// too.
type Key struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// Set is a JWK Set document.
type Set struct {
	Keys []Key `json:"keys"`
}

// rawKey is Key plus every private member of RFC 7518, so that decoding can
// notice them. The private members are kept as raw JSON: their presence,
// not their value, is what matters.
type rawKey struct {
	Kty string          `json:"kty"`
	Kid string          `json:"kid"`
	Use string          `json:"use"`
	Alg string          `json:"alg"`
	N   string          `json:"n"`
	E   string          `json:"e"`
	Crv string          `json:"crv"`
	X   string          `json:"x"`
	Y   string          `json:"y"`
	D   json.RawMessage `json:"d"`
	P   json.RawMessage `json:"p"`
	Q   json.RawMessage `json:"q"`
	DP  json.RawMessage `json:"dp"`
	DQ  json.RawMessage `json:"dq"`
	QI  json.RawMessage `json:"qi"`
	Oth json.RawMessage `json:"oth"`
	K   json.RawMessage `json:"k"`
}

// UnmarshalJSON decodes a JWK object, refusing one with a private member.
func (k *Key) UnmarshalJSON(data []byte) error {
	var r rawKey
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: decoding: %w", ErrInvalid, err)
	}
	for _, m := range [...]json.RawMessage{r.D, r.P, r.Q, r.DP, r.DQ, r.QI, r.Oth, r.K} {
		if m != nil {
			return fmt.Errorf("%w: private or symmetric key member present", ErrInvalid)
		}
	}
	*k = Key{Kty: r.Kty, Kid: r.Kid, Use: r.Use, Alg: r.Alg, N: r.N, E: r.E, Crv: r.Crv, X: r.X, Y: r.Y}
	return nil
}

// rsaAlgs and ecAlgs are the "alg" values allowed with each key type.
var (
	rsaAlgs = map[string]bool{"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true}
	ecAlgs  = map[string]bool{"ES256": true}
)

// FromPublic returns the JWK of pub with the given key ID and algorithm and
// use "sig". pub must be an *rsa.PublicKey or an *ecdsa.PublicKey on P-256
// that [Key.PublicKey] would accept; alg, if not empty, must suit the key
// type (RS*/PS* for RSA, ES256 for EC).
func FromPublic(kid, alg string, pub crypto.PublicKey) (Key, error) {
	var k Key
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if pub == nil || pub.N == nil {
			return Key{}, fmt.Errorf("%w: nil RSA key", ErrInvalid)
		}
		k = Key{
			Kty: KtyRSA,
			N:   b64(pub.N.Bytes()),
			E:   b64(big.NewInt(int64(pub.E)).Bytes()),
		}
	case *ecdsa.PublicKey:
		if pub == nil || pub.Curve != elliptic.P256() {
			return Key{}, fmt.Errorf("%w: %w: only P-256 EC keys", ErrInvalid, ErrUnsupported)
		}
		b, err := pub.Bytes() // 0x04 || X || Y, each padded to 32 bytes
		if err != nil {
			return Key{}, fmt.Errorf("%w: EC key: %w", ErrInvalid, err)
		}
		k = Key{Kty: KtyEC, Crv: CrvP256, X: b64(b[1:33]), Y: b64(b[33:65])}
	default:
		return Key{}, fmt.Errorf("%w: %w: public key of type %T", ErrInvalid, ErrUnsupported, pub)
	}
	k.Kid, k.Alg, k.Use = kid, alg, UseSig
	if _, err := k.PublicKey(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// PublicKey returns the public key k describes: an *rsa.PublicKey or an
// *ecdsa.PublicKey. It is strict: the RSA modulus must have 2048 to 8192
// bits and be odd, the exponent must be odd and between 3 and 2^31-1, an
// EC key must be on P-256 with the point on the curve and coordinates of
// exactly 32 bytes, members of the other key type must be absent, and
// "alg", if set, must suit the key type. Every error wraps [ErrInvalid].
// PublicKey does not look at "use".
func (k Key) PublicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case KtyRSA:
		if k.Alg != "" && !rsaAlgs[k.Alg] {
			return nil, fmt.Errorf("%w: %w: alg %q for an RSA key", ErrInvalid, ErrUnsupported, k.Alg)
		}
		if k.Crv != "" || k.X != "" || k.Y != "" {
			return nil, fmt.Errorf("%w: RSA key with EC members", ErrInvalid)
		}
		return k.rsaKey()
	case KtyEC:
		if k.Alg != "" && !ecAlgs[k.Alg] {
			return nil, fmt.Errorf("%w: %w: alg %q for an EC key", ErrInvalid, ErrUnsupported, k.Alg)
		}
		if k.N != "" || k.E != "" {
			return nil, fmt.Errorf("%w: EC key with RSA members", ErrInvalid)
		}
		return k.ecKey()
	default:
		return nil, fmt.Errorf("%w: %w: kty %q", ErrInvalid, ErrUnsupported, k.Kty)
	}
}

func (k Key) rsaKey() (*rsa.PublicKey, error) {
	nb, err := unb64("n", k.N)
	if err != nil {
		return nil, err
	}
	eb, err := unb64("e", k.E)
	if err != nil {
		return nil, err
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("%w: RSA modulus of %d bits, want %d to %d", ErrInvalid, bits, MinRSABits, MaxRSABits)
	}
	if n.Bit(0) == 0 {
		return nil, fmt.Errorf("%w: RSA modulus is even", ErrInvalid)
	}
	e := new(big.Int).SetBytes(eb)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > maxRSAExponent || e.Bit(0) == 0 {
		return nil, fmt.Errorf("%w: RSA exponent must be odd and between 3 and 2^31-1", ErrInvalid)
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

func (k Key) ecKey() (*ecdsa.PublicKey, error) {
	if k.Crv != CrvP256 {
		return nil, fmt.Errorf("%w: %w: curve %q", ErrInvalid, ErrUnsupported, k.Crv)
	}
	x, err := unb64("x", k.X)
	if err != nil {
		return nil, err
	}
	y, err := unb64("y", k.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("%w: P-256 coordinates must be 32 bytes", ErrInvalid)
	}
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		// The error says only that the point is invalid.
		return nil, fmt.Errorf("%w: EC point: %w", ErrInvalid, err)
	}
	return pub, nil
}

// ParseSet decodes a JWK Set document and returns the keys in it that can
// verify signatures, in document order. It refuses (with [ErrInvalid]) a
// document larger than [MaxSetBytes], malformed JSON, or one without a
// "keys" array. It skips, without failing, each key that [Key.PublicKey]
// refuses (unsupported kty, crv or alg, weak or malformed parameters,
// private members) and each key whose "use" is set to anything but "sig",
// so that one odd key does not make a provider's whole set unusable.
func ParseSet(data []byte) ([]Key, error) {
	if len(data) > MaxSetBytes {
		return nil, fmt.Errorf("%w: JWK Set larger than %d bytes", ErrInvalid, MaxSetBytes)
	}
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: decoding JWK Set: %w", ErrInvalid, err)
	}
	if doc.Keys == nil {
		return nil, fmt.Errorf(`%w: JWK Set has no "keys" array`, ErrInvalid)
	}
	keys := make([]Key, 0, len(*doc.Keys))
	for _, raw := range *doc.Keys {
		var k Key
		if err := json.Unmarshal(raw, &k); err != nil {
			continue
		}
		if k.Use != "" && k.Use != UseSig {
			continue
		}
		if _, err := k.PublicKey(); err != nil {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// unb64 decodes a base64url (no padding) member. An empty member is
// refused. The error names the member, never its value.
func unb64(member, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: member %q missing", ErrInvalid, member)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: member %q is not base64url without padding", ErrInvalid, member)
	}
	return b, nil
}
