// Package tokencache remembers tokens that verified, so that a token
// presented again is not parsed and its signature not checked again.
//
// Entries are keyed by the SHA-256 of the raw token (the token itself is
// never kept), end at the token's exp, and are bounded in number. The
// entries of a signing key can be dropped at once when the key is revoked.
//
// A verifier offers each token it verified ([Cache.Offer]); the cache
// remembers a token from its second offer on. A token presented only once
// (a client that signs one per request, or a flood of them) then costs
// neither an entry nor the garbage collector's work over a full cache,
// which every other request of the instance would pay; a token used again
// costs one more verification.
package tokencache

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
	"unsafe"
)

// Key is the cache key of a raw token: its SHA-256.
type Key [sha256.Size]byte

// KeyOf returns the cache key of raw. It hashes the string's bytes in
// place: Sum256 only reads them, and copying a token on every request
// would cost as much as a third of the hash.
func KeyOf(raw string) Key { return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw))) }

type entry[V any] struct {
	val V
	exp time.Time
	kid string
}

// Cache maps verified tokens to what they proved. It is safe for
// concurrent use; Get takes only a read lock.
type Cache[V any] struct {
	max int
	now func() time.Time

	mu  sync.RWMutex
	m   map[Key]entry[V]
	gen uint64 // counts DropKids calls
	// seen holds the keys of tokens offered once, each in the slot its
	// first bytes pick: no pointers, so the collector never scans it.
	seen []Key
}

// maxSeen bounds the slots of seen: 2 MiB.
const maxSeen = 1 << 16

// DefaultSize is the size TOKEN_CACHE_SIZE defaults to.
const DefaultSize = 10000

// New returns a cache of at most size entries (at least 1); now is the
// clock (nil: time.Now).
func New[V any](size int, now func() time.Time) *Cache[V] {
	if now == nil {
		now = time.Now
	}
	size = max(size, 1)
	return &Cache[V]{max: size, now: now, m: make(map[Key]entry[V]), seen: make([]Key, min(size, maxSeen))}
}

// Get returns what the token with key k proved, while it has not expired.
func (c *Cache[V]) Get(k Key) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Generation returns a number that changes with every DropKids. Take it
// before verifying a token, and give it to Put.
func (c *Cache[V]) Generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Put remembers v for the token with key k, signed by kid, until exp, and
// reports whether it did: not for an expired token, nor when keys were
// dropped since gen was taken (the token may have been verified with a key
// dropped meanwhile: it must not be remembered after the drop). A full
// cache first drops its expired entries, then, if still full, an eighth of
// the others (the map's order: effectively at random).
func (c *Cache[V]) Put(gen uint64, k Key, v V, exp time.Time, kid string) bool {
	now := c.now()
	if !now.Before(exp) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return false
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = entry[V]{val: v, exp: exp, kid: kid}
	return true
}

// Offer is Put for a token that was just verified, from its second offer
// on; it reports whether the token is now remembered. The first offer
// records only the token's key, in a table where a later offer of another
// token may take its slot (that token then needs one more offer).
func (c *Cache[V]) Offer(gen uint64, k Key, v V, exp time.Time, kid string) bool {
	c.mu.Lock()
	slot := &c.seen[binary.LittleEndian.Uint64(k[:8])%uint64(len(c.seen))]
	again := *slot == k
	*slot = k
	c.mu.Unlock()
	if !again {
		return false
	}
	return c.Put(gen, k, v, exp, kid)
}

// DropKids forgets every token signed by one of kids.
func (c *Cache[V]) DropKids(kids []string) {
	drop := make(map[string]bool, len(kids))
	for _, k := range kids {
		drop[k] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for key, e := range c.m {
		if drop[e.kid] {
			delete(c.m, key)
		}
	}
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
