package main

import (
	"math"
	"strings"
	"testing"
)

// recorded is `perf script -F pid,ip,sym` of a recording of the bare
// server (pid 25842) under wrk, a few of its samples: one inside the
// Handler, one of net/http finishing the request, one of a GC worker;
// and one sample of the custom handler (pid 25844) inside its Handler,
// which must not count.
const recorded = `25842 
	           1102b internal/runtime/maps.(*Iter).Next
	          26b05d net/http.(*response).WriteHeader
	          406957 main.identity.write
	          406f9e main.bareHandler.func1
	          2705c9 net/http.HandlerFunc.ServeHTTP
	          28e5ce net/http.serverHandler.ServeHTTP
	          26e990 net/http.(*conn).serve
	          2736df net/http.(*Server).Serve.gowrap3
	           8e3e1 runtime.goexit.abi0

25842 
	           886ea sync.runtime_notifyListAdd
	          268956 net/http.(*connReader).abortPendingRead
	          26dc87 net/http.(*response).finishRequest
	          26e9d5 net/http.(*conn).serve
	          2736df net/http.(*Server).Serve.gowrap3
	           8e3e1 runtime.goexit.abi0

25844 
	           20f9d runtime.mallocgcSmallNoscan
	           822cc runtime.mallocgc
	           872d3 runtime.growslice
	          2bb4a5 encoding/json.Marshal
	          331485 github.com/modelauth/modelauth/shared/apierror.Prepare
	          330f28 github.com/modelauth/modelauth/shared/apierror.Write
	          440fbc github.com/modelauth/modelauth/functions/validate.(*Function).Serve
	          444db8 github.com/modelauth/modelauth/functions.(*router).ServeHTTP
	          291f8e net/http.serverHandler.ServeHTTP
	          2716d0 net/http.(*conn).serve
	          27709f net/http.(*Server).Serve.gowrap3
	           8bd21 runtime.goexit.abi0

25842 
	           33a7a runtime.gcDrain
	           2f97c runtime.gcBgMarkWorker.func2
	           8c80a runtime.systemstack.abi0
	           2f79f runtime.gcBgMarkWorker
	           2f597 runtime.gcBgMarkStartWorkers.gowrap1
	           8e3e1 runtime.goexit.abi0

 4301 
	          406f9e main.bareHandler.func1
	          28e5ce net/http.serverHandler.ServeHTTP
	          26e990 net/http.(*conn).serve
`

func TestParseSamples(t *testing.T) {
	c, err := parseSamples(strings.NewReader(recorded), []int{25842})
	if err != nil {
		t.Fatal(err)
	}
	if want := (cpuSamples{all: 3, handler: 1, gc: 1}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if s := c.handlerShare(); math.Abs(s-1.0/3) > 1e-9 {
		t.Errorf("handler share %v, want 1/3", s)
	}
	if s := c.ownShare(); math.Abs(s-2.0/3) > 1e-9 {
		t.Errorf("own share (Handler and GC) %v, want 2/3", s)
	}
	for _, tt := range []struct {
		why  string
		pids []int
		want cpuSamples
	}{
		{"another process", []int{25844}, cpuSamples{all: 1, handler: 1}},
		// Behind nginx: all the samples of both processes, the Handler's
		// and the GC's of the first.
		{"two processes", []int{25842, 25844}, cpuSamples{all: 4, handler: 1, gc: 1}},
		{"perf pads a shorter pid with spaces", []int{4301}, cpuSamples{all: 1, handler: 1}},
	} {
		got, err := parseSamples(strings.NewReader(recorded), tt.pids)
		if err != nil || got != tt.want {
			t.Errorf("%s: pids %v: got %+v, %v; want %+v", tt.why, tt.pids, got, err, tt.want)
		}
	}
	// num spends half its time in its Handler, den two thirds in its
	// Handler and GC: num does 1.5 times den's requests.
	num := cpuSamples{all: 4, handler: 2}
	if e := shareEstimate(num, c); math.Abs(e-1.5) > 1e-9 {
		t.Errorf("estimate %v, want 1.5", e)
	}
	if _, err := parseSamples(strings.NewReader(recorded), []int{1}); err == nil {
		t.Error("no sample of pid 1: want an error")
	}
	// Symbols lost: no sample inside the Handler.
	second := strings.Split(recorded, "\n\n")[1]
	if _, err := parseSamples(strings.NewReader(second), []int{25842}); err == nil {
		t.Error("no sample inside the Handler: want an error")
	}
	if _, err := parseSamples(strings.NewReader("perf: no such file\n"), []int{1}); err == nil {
		t.Error("not perf script's output: want an error")
	}
}

// The two targets of each ratio run side by side in every repeat, and
// in odd repeats in the other order.
func TestRunOrder(t *testing.T) {
	n := firstGateway + len(gatewaySetups("", ""))
	pairs := [][2]int{
		{validateKey, bareKey}, {bareAgain, bareKey},
		{oneToken, bareToken}, {oneToken, peerOneToken}, {newTokens, peerNewTokens},
		{firstGateway + gwValidate, firstGateway + gwBare},
	}
	firsts := map[[2]int][]int{}
	for rep := range 4 {
		order := runOrder(n, rep)
		pos := make([]int, n)
		seen := map[int]bool{}
		for p, i := range order {
			pos[i] = p
			seen[i] = true
		}
		if len(order) != n || len(seen) != n {
			t.Fatalf("repeat %d runs %v, not each of %d targets once", rep, order, n)
		}
		for _, pr := range pairs {
			a, b := pos[pr[0]], pos[pr[1]]
			if a-b != 1 && b-a != 1 {
				t.Errorf("repeat %d: targets %d and %d run at %d and %d, not side by side", rep, pr[0], pr[1], a, b)
			}
			first := pr[0]
			if b < a {
				first = pr[1]
			}
			firsts[pr] = append(firsts[pr], first)
		}
	}
	for pr, f := range firsts {
		for rep := 1; rep < len(f); rep++ {
			if f[rep] == f[rep-1] {
				t.Errorf("targets %v: %d runs first in runs %d and %d", pr, f[rep], rep, rep+1)
			}
		}
	}
}
