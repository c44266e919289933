package amltest

import (
	"sync"
	"sync/atomic"
	"time"
)

// Op names an operation of the server, for [Server.InjectFault] and
// [Stats].
type Op string

// The operations.
const (
	OpGet            Op = "get"            // GET .../onlineEndpoints/{name} (and the list, PUT and DELETE)
	OpListKeys       Op = "listKeys"       // POST .../onlineEndpoints/{name}/listKeys
	OpRegenerateKeys Op = "regenerateKeys" // POST .../onlineEndpoints/{name}/regenerateKeys
	OpPoll           Op = "poll"           // GET of an Azure-AsyncOperation or Location URL
	OpToken          Op = "token"          // POST .../onlineEndpoints/{name}/token
	OpScore          Op = "score"          // POST <scoringUri>
)

// Fault makes the server misbehave on requests of one [Op]. Management
// operations (all but OpScore) meet faults once authenticated, after the
// bearer token and api-version checks; OpScore meets them before the key
// check.
//
// A fault first waits Delay, then does the first of these that is set:
// Reset closes the connection with a TCP reset and no response; Hang
// blocks until the client gives up or the server closes; Status answers
// with that status, ARM's error body with Code (by default one for the
// status: TooManyRequests, InternalServerError, ServiceUnavailable, ...)
// and, if RetryAfter > 0, a Retry-After header of that many seconds. A
// fault with none of these set only delays the request, which is then
// served normally.
//
// Go's HTTP client resends an idempotent request (GET) once when a reused
// connection is reset before any response, and azcore's retry policy
// retries 408, 429, 500, 502, 503 and 504 and connection errors: count
// Times accordingly.
type Fault struct {
	Status     int
	Code       string
	RetryAfter int // seconds
	Delay      time.Duration
	Reset      bool
	Hang       bool
	// Times is how many requests the fault applies to: 0 means once, a
	// negative number every request until [Server.ClearFaults].
	Times int
}

type faultEntry struct {
	f    Fault
	left int
}

// faults holds, per operation, a queue of faults: a request meets the
// first, which leaves the queue once it has applied Times times.
type faults struct {
	mu sync.Mutex
	q  map[Op][]*faultEntry
}

func (fs *faults) add(op Op, f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.q == nil {
		fs.q = map[Op][]*faultEntry{}
	}
	left := f.Times
	if left == 0 {
		left = 1
	}
	fs.q[op] = append(fs.q[op], &faultEntry{f: f, left: left})
}

func (fs *faults) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.q = nil
}

// take returns the fault the next request of op meets, if any.
func (fs *faults) take(op Op) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	q := fs.q[op]
	if len(q) == 0 {
		return Fault{}, false
	}
	e := q[0]
	if e.left > 0 {
		e.left--
		if e.left == 0 {
			fs.q[op] = q[1:]
		}
	}
	return e.f, true
}

// Stats counts requests and operations since the server started.
type Stats struct {
	// Requests per operation that passed authentication (including those
	// that met a fault or were refused with 400, 403 or 404).
	Get, ListKeys, RegenerateKeys, Poll, Token int64
	// Challenges counts management requests answered 401 (no token, or
	// one kv did not issue for Audience or that expired).
	Challenges int64
	// Regeneration operations started (202 Accepted), and ended Succeeded
	// or Failed (as a status poll first reports it).
	OperationsStarted, OperationsSucceeded, OperationsFailed int64
	// Scoring requests answered 200 (a current key) and 401.
	Scored, ScoreRejected int64
}

type counters struct {
	get, listKeys, regen, poll, token atomic.Int64
	challenges                        atomic.Int64
	started, succeeded, failed        atomic.Int64
	scored, rejected                  atomic.Int64
}

func (c *counters) op(op Op) *atomic.Int64 {
	switch op {
	case OpGet:
		return &c.get
	case OpListKeys:
		return &c.listKeys
	case OpRegenerateKeys:
		return &c.regen
	case OpPoll:
		return &c.poll
	case OpToken:
		return &c.token
	}
	return nil
}

func (c *counters) stats() Stats {
	return Stats{
		Get:                 c.get.Load(),
		ListKeys:            c.listKeys.Load(),
		RegenerateKeys:      c.regen.Load(),
		Poll:                c.poll.Load(),
		Token:               c.token.Load(),
		Challenges:          c.challenges.Load(),
		OperationsStarted:   c.started.Load(),
		OperationsSucceeded: c.succeeded.Load(),
		OperationsFailed:    c.failed.Load(),
		Scored:              c.scored.Load(),
		ScoreRejected:       c.rejected.Load(),
	}
}
