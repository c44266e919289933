// Package apikey generates, checks and compares service keys.
//
// A generated key is 32 bytes from crypto/rand, base64url without padding
// (43 characters). A key supplied by a user is 32 to 128 characters of
// [A-Za-z0-9_-]. Keys never contain '.', so a Bearer value with a '.' is a
// JWT and one without is a key.
//
// Validators keep only [Hash] values in memory and compare them in constant
// time with [Set.Match].
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
)

// Bounds of a key supplied by a user.
const (
	MinLen = 32
	MaxLen = 128
)

// ErrFormat means a key breaks the format rules.
var ErrFormat = errors.New("apikey: a key must be 32 to 128 characters of A-Z, a-z, 0-9, '-' and '_'")

// Generate returns a new random key of 43 characters.
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("apikey: reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Check reports whether k has the format of a key: it returns nil or
// ErrFormat. The check takes time that depends only on len(k).
func Check(k string) error {
	if len(k) < MinLen || len(k) > MaxLen {
		return ErrFormat
	}
	bad := 0
	for i := 0; i < len(k); i++ {
		bad |= 1 - isKeyByte(k[i])
	}
	if bad != 0 {
		return ErrFormat
	}
	return nil
}

// isKeyByte returns 1 for a byte of the key alphabet and 0 otherwise,
// without branching on the byte's value.
func isKeyByte(c byte) int {
	in := func(lo, hi byte) int {
		// (c-lo) <= (hi-lo) as unsigned, branch-free.
		return int(((uint(c-lo) - uint(hi-lo) - 1) >> 63) & 1)
	}
	return in('A', 'Z') | in('a', 'z') | in('0', '9') | eq(c, '-') | eq(c, '_')
}

func eq(a, b byte) int { return subtle.ConstantTimeByteEq(a, b) }

// Hash is the SHA-256 digest of a key: what validators hold instead of the key.
type Hash [sha256.Size]byte

// HashOf returns the hash of k.
func HashOf(k string) Hash {
	// Copy short keys on the stack: converting the string would allocate.
	var buf [MaxLen]byte
	if len(k) <= len(buf) {
		return sha256.Sum256(append(buf[:0], k...))
	}
	return sha256.Sum256([]byte(k))
}

// Set is a small set of key hashes, each labelled (for example "Primary").
// The zero Set matches nothing. A Set is immutable once built and safe for
// concurrent use.
type Set struct {
	hashes []Hash
	labels []string
}

// Add returns a Set that also holds the hash of k under label.
func (s Set) Add(label, k string) Set {
	return Set{
		hashes: append(s.hashes[:len(s.hashes):len(s.hashes)], HashOf(k)),
		labels: append(s.labels[:len(s.labels):len(s.labels)], label),
	}
}

// Replace returns a Set in which the entries labelled label hold the hash of
// k instead; with no such entry it adds one.
func (s Set) Replace(label, k string) Set {
	out := Set{hashes: slices.Clone(s.hashes), labels: slices.Clone(s.labels)}
	found := false
	for i, l := range out.labels {
		if l == label {
			out.hashes[i], found = HashOf(k), true
		}
	}
	if !found {
		return out.Add(label, k)
	}
	return out
}

// Len returns the number of hashes in the set.
func (s Set) Len() int { return len(s.hashes) }

// Match reports the label of the first entry that matches k. It compares k's
// hash with every entry in constant time, so the time taken does not tell
// which entry matched or how much of a key was right.
func (s Set) Match(k string) (label string, ok bool) {
	h := HashOf(k)
	found := -1
	for i := range s.hashes {
		m := subtle.ConstantTimeCompare(h[:], s.hashes[i][:])
		// Keep the first match without a data-dependent branch.
		first := m & subtle.ConstantTimeEq(int32(found), -1)
		found = subtle.ConstantTimeSelect(first, i, found)
	}
	if found < 0 {
		return "", false
	}
	return s.labels[found], true
}

// DigestSet is a small set of keyed digests of keys (HMAC-SHA256, each
// under one of a few digest keys), each labelled: what validators hold when
// they learn keys from records that anyone with metadata rights can read
// (package journal). The zero DigestSet matches nothing. It is immutable
// once built and safe for concurrent use.
type DigestSet struct {
	keys    [][]byte    // distinct digest keys
	pads    []digestKey // keys[i]'s HMAC pads
	entries []digestEntry
}

// digestKey is a digest key's HMAC-SHA256 pads (RFC 2104), so that a
// digest takes two SHA-256 sums of stack buffers and no allocation.
type digestKey struct {
	ipad, opad [sha256.BlockSize]byte
}

func newDigestKey(key []byte) digestKey {
	if len(key) > sha256.BlockSize {
		h := sha256.Sum256(key)
		key = h[:]
	}
	var d digestKey
	copy(d.ipad[:], key)
	copy(d.opad[:], key)
	for i := range d.ipad {
		d.ipad[i] ^= 0x36
		d.opad[i] ^= 0x5c
	}
	return d
}

// sum is HMAC-SHA256 of k (at most MaxLen bytes) under d's key, as
// crypto/hmac computes it.
func (d *digestKey) sum(k string) Hash {
	var in [sha256.BlockSize + MaxLen]byte
	n := copy(in[:], d.ipad[:])
	n += copy(in[n:], k)
	inner := sha256.Sum256(in[:n])
	var out [sha256.BlockSize + sha256.Size]byte
	copy(out[:], d.opad[:])
	copy(out[sha256.BlockSize:], inner[:])
	return sha256.Sum256(out[:])
}

type digestEntry struct {
	key    int // index in keys
	digest Hash
	label  string
}

// Add returns a DigestSet that also holds digest, HMAC-SHA256 of a key
// under key, labelled label.
func (s DigestSet) Add(label string, key []byte, digest Hash) DigestSet {
	out := DigestSet{keys: s.keys[:len(s.keys):len(s.keys)], pads: s.pads[:len(s.pads):len(s.pads)],
		entries: s.entries[:len(s.entries):len(s.entries)]}
	i := slices.IndexFunc(out.keys, func(k []byte) bool { return hmac.Equal(k, key) })
	if i < 0 {
		i = len(out.keys)
		out.keys = append(out.keys, key)
		out.pads = append(out.pads, newDigestKey(key))
	}
	out.entries = append(out.entries, digestEntry{key: i, digest: digest, label: label})
	return out
}

// Len returns the number of digests in the set.
func (s DigestSet) Len() int { return len(s.entries) }

// Match reports the label of the first entry that k's digest matches. It
// computes k's digest under each digest key and compares it with every
// entry in constant time, so the time taken does not tell which entry
// matched or how much of a key was right. It allocates nothing (for up to
// four digest keys). A k longer than MaxLen matches nothing: no key is
// that long.
func (s DigestSet) Match(k string) (label string, ok bool) {
	if len(s.entries) == 0 || len(k) > MaxLen {
		return "", false
	}
	var few [4]Hash
	digests := few[:0]
	if len(s.pads) > len(few) {
		digests = make([]Hash, 0, len(s.pads))
	}
	for i := range s.pads {
		digests = append(digests, s.pads[i].sum(k))
	}
	found := -1
	for i, e := range s.entries {
		m := subtle.ConstantTimeCompare(digests[e.key][:], e.digest[:])
		first := m & subtle.ConstantTimeEq(int32(found), -1)
		found = subtle.ConstantTimeSelect(first, i, found)
	}
	if found < 0 {
		return "", false
	}
	return s.entries[found].label, true
}
