package tokencache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/tokencache"
)

func TestEntriesEndAtExp(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	c := tokencache.New[string](10, clk.Now)
	k := tokencache.KeyOf("a.b.c")
	c.Put(c.Generation(), k, "alice", clk.Now().Add(time.Minute), "kid1")
	if v, ok := c.Get(k); !ok || v != "alice" {
		t.Fatalf("Get = %q, %v; want alice", v, ok)
	}
	if _, ok := c.Get(tokencache.KeyOf("a.b.d")); ok {
		t.Fatal("another token hit")
	}
	clk.Advance(time.Minute)
	if _, ok := c.Get(k); ok {
		t.Fatal("hit at the token's exp")
	}
	c.Put(c.Generation(), tokencache.KeyOf("x"), "late", clk.Now(), "kid1")
	if c.Len() != 1 {
		t.Fatalf("an expired token was stored: Len = %d", c.Len())
	}
}

func TestBounded(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	c := tokencache.New[int](100, clk.Now)
	for i := range 1000 {
		c.Put(c.Generation(), tokencache.KeyOf(fmt.Sprint(i)), i, clk.Now().Add(time.Hour), "k")
		if c.Len() > 100 {
			t.Fatalf("Len = %d after %d puts; want at most 100", c.Len(), i+1)
		}
	}
	last := tokencache.KeyOf("999")
	if v, ok := c.Get(last); !ok || v != 999 {
		t.Fatal("the newest entry was evicted")
	}
	// Expired entries go first.
	c2 := tokencache.New[int](4, clk.Now)
	for i := range 3 {
		c2.Put(c2.Generation(), tokencache.KeyOf(fmt.Sprint("old", i)), i, clk.Now().Add(time.Second), "k")
	}
	c2.Put(c2.Generation(), tokencache.KeyOf("live"), 9, clk.Now().Add(time.Hour), "k")
	clk.Advance(2 * time.Second)
	c2.Put(c2.Generation(), tokencache.KeyOf("new"), 10, clk.Now().Add(time.Hour), "k")
	if _, ok := c2.Get(tokencache.KeyOf("live")); !ok || c2.Len() != 2 {
		t.Fatalf("after eviction Len = %d (want 2) and the live entry must remain", c2.Len())
	}
}

func TestDropKids(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	c := tokencache.New[int](100, clk.Now)
	for i := range 10 {
		c.Put(c.Generation(), tokencache.KeyOf(fmt.Sprint(i)), i, clk.Now().Add(time.Hour), fmt.Sprint("kid", i%3))
	}
	c.DropKids([]string{"kid0", "kid2"})
	for i := range 10 {
		_, ok := c.Get(tokencache.KeyOf(fmt.Sprint(i)))
		if want := i%3 == 1; ok != want {
			t.Errorf("token %d (kid%d) cached = %v; want %v", i, i%3, ok, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := tokencache.New[int](50, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := tokencache.KeyOf(fmt.Sprint(g, i))
				c.Put(c.Generation(), k, i, time.Now().Add(time.Hour), "k")
				c.Get(k)
				if i%100 == 0 {
					c.DropKids([]string{"other"})
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 50 {
		t.Fatalf("Len = %d; want at most 50", c.Len())
	}
}

func TestPutAfterDropIsRefused(t *testing.T) {
	c := tokencache.New[int](10, nil)
	gen := c.Generation() // a verification starts
	c.DropKids([]string{"revoked"})
	k := tokencache.KeyOf("t")
	c.Put(gen, k, 1, time.Now().Add(time.Hour), "revoked") // it ends after the drop
	if _, ok := c.Get(k); ok {
		t.Fatal("a token verified before a drop was remembered after it")
	}
	c.Put(c.Generation(), k, 1, time.Now().Add(time.Hour), "other")
	if _, ok := c.Get(k); !ok {
		t.Fatal("a Put with the current generation was refused")
	}
}

// TestOfferRemembersFromTheSecondOffer: a token offered once is not
// remembered, offered again it is; a full table of tokens offered once
// leaves the cache empty.
func TestOfferRemembersFromTheSecondOffer(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	c := tokencache.New[string](100, clk.Now)
	exp := clk.Now().Add(time.Hour)
	k := tokencache.KeyOf("a.b.c")
	if c.Offer(c.Generation(), k, "alice", exp, "kid1") {
		t.Fatal("the first offer remembered the token")
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("a token offered once hit")
	}
	if !c.Offer(c.Generation(), k, "alice", exp, "kid1") {
		t.Fatal("the second offer did not remember the token")
	}
	if v, ok := c.Get(k); !ok || v != "alice" {
		t.Fatalf("Get = %q, %v; want alice", v, ok)
	}
	for i := range 10000 {
		c.Offer(c.Generation(), tokencache.KeyOf(fmt.Sprint("once", i)), "x", exp, "kid1")
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after tokens offered once; want 1", c.Len())
	}
}

// TestOfferHonoursGenerationAndExpiry: the second offer stores nothing for
// a token verified before a DropKids, or expired.
func TestOfferHonoursGenerationAndExpiry(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	c := tokencache.New[string](100, clk.Now)
	exp := clk.Now().Add(time.Hour)
	k := tokencache.KeyOf("a.b.c")
	c.Offer(c.Generation(), k, "alice", exp, "kid1")
	gen := c.Generation()
	c.DropKids([]string{"kid1"})
	if c.Offer(gen, k, "alice", exp, "kid1") {
		t.Fatal("a token verified before a DropKids was remembered")
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("it hits")
	}
	late := tokencache.KeyOf("late")
	c.Offer(c.Generation(), late, "bob", clk.Now().Add(time.Second), "kid2")
	clk.Advance(time.Second)
	if c.Offer(c.Generation(), late, "bob", clk.Now(), "kid2") || c.Len() != 0 {
		t.Fatalf("an expired token was remembered: Len = %d", c.Len())
	}
}

// TestOfferSlotsAreShared: two tokens whose keys pick one slot of the
// table take it from each other, so neither is remembered while they
// alternate.
func TestOfferSlotsAreShared(t *testing.T) {
	c := tokencache.New[int](1, nil)
	exp := time.Now().Add(time.Hour)
	a, b := tokencache.KeyOf("a"), tokencache.KeyOf("b") // a table of one slot
	for range 3 {
		if c.Offer(c.Generation(), a, 1, exp, "k") || c.Offer(c.Generation(), b, 2, exp, "k") {
			t.Fatal("a token was remembered though the other took its slot between offers")
		}
	}
	if !c.Offer(c.Generation(), b, 2, exp, "k") {
		t.Fatal("b offered twice in a row was not remembered")
	}
}
