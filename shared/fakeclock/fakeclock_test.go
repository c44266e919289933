package fakeclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
)

func TestClock(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := fakeclock.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v; want %v", got, start)
	}
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() again = %v; want %v (the clock moves only when told)", got, start)
	}
	c.Advance(time.Hour)
	if got, want := c.Now(), start.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("after Advance(1h), Now() = %v; want %v", got, want)
	}
}

func TestStep(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := fakeclock.New(start)
	c.SetStep(time.Minute)
	for i := 1; i <= 3; i++ {
		if got, want := c.Now(), start.Add(time.Duration(i)*time.Minute); !got.Equal(want) {
			t.Fatalf("Now() #%d with a 1m step = %v; want %v", i, got, want)
		}
	}
	c.SetStep(0)
	if got, want := c.Now(), start.Add(3*time.Minute); !got.Equal(want) {
		t.Fatalf("Now() after SetStep(0) = %v; want %v", got, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	start := time.Unix(0, 0)
	c := fakeclock.New(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Fatalf("after 800 concurrent Advance(1s), Now() = %v; want %v", got, want)
	}
}
