package keyvaulttest

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Op names an operation of the server, for [Server.InjectFault] and
// [Stats].
type Op string

// The operations. OpList is one request for one page of versions.
const (
	OpSet  Op = "set"  // PUT /secrets/{name} (SetSecret)
	OpGet  Op = "get"  // GET /secrets/{name}/{version} (GetSecret)
	OpList Op = "list" // GET /secrets/{name}/versions and its nextLinks
	// OpListSecrets is one request for one page of the vault's secrets.
	OpListSecrets Op = "list-secrets" // GET /secrets and its nextLinks (ListSecretProperties)
	OpUpdate      Op = "update"       // PATCH /secrets/{name}/{version} (UpdateSecretProperties)
	OpToken       Op = "token"        // POST /{tenant}/oauth2/v2.0/token
)

// Fault makes the server misbehave on requests of one [Op]. Vault
// operations meet faults only once authenticated (after the challenge and
// the token check); OpToken meets them on every token request.
//
// A fault first waits Delay, then does the first of these that is set:
// Reset closes the connection with a TCP reset and no response; Hang
// blocks until the client gives up (its context ends or it closes the
// connection) or the server closes; Status answers with that status, a
// Key Vault error body (an Entra error body for OpToken) and, if RetryAfter
// is set, a Retry-After header in whole seconds, rounded up. A fault with
// none of these set only delays: the request is then served normally.
//
// Note that Go's HTTP client resends an idempotent request (GET) once when
// a reused connection is reset before any response, so it takes two
// resets on a GET before the caller sees an error.
type Fault struct {
	// Times is how many requests the fault applies to; 0 means every
	// request until [Server.ClearFaults].
	Times int
	// Secret, if set, limits the fault to requests for secrets whose
	// name starts with it (case-insensitive), such as "svc-": others pass
	// it by, to the next fault queued.
	Secret     string
	Delay      time.Duration
	Reset      bool
	Hang       bool
	Status     int
	RetryAfter time.Duration
}

type faultEntry struct {
	f    Fault
	left int // requests left when f.Times > 0
}

// faults holds, per operation, a queue of faults: a request meets the first
// one, which leaves the queue once it has applied Times times.
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
	fs.q[op] = append(fs.q[op], &faultEntry{f: f, left: f.Times})
}

func (fs *faults) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.q = nil
}

// take returns the fault the next request of op for the secret name
// meets, if any: the first queued that applies to name.
func (fs *faults) take(op Op, name string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	q := fs.q[op]
	for i, e := range q {
		if e.f.Secret != "" && !strings.HasPrefix(strings.ToLower(name), strings.ToLower(e.f.Secret)) {
			continue
		}
		if e.f.Times > 0 {
			e.left--
			if e.left == 0 {
				fs.q[op] = append(q[:i:i], q[i+1:]...)
			}
		}
		return e.f, true
	}
	return Fault{}, false
}

// Stats counts requests since the server started.
type Stats struct {
	// Authenticated requests per vault operation, including those that met
	// a fault or were refused (400, 403, 404): the store calls a client
	// made. Each page of a listing counts once.
	Set, Get, List, Update int64
	// JournalSet and JournalList count the Set and List requests for the
	// change journal's secrets (journal-*, package journal), which Set
	// and List include.
	JournalSet, JournalList int64
	// ListSecrets counts pages of the vault's secrets (GET /secrets).
	ListSecrets int64
	// Challenges counts 401 answers with a Bearer challenge: requests
	// without a token (every new client's first request) or with a token
	// this server did not issue, that expired or is for another resource.
	Challenges int64
	// TokenRequests counts POSTs to the token endpoint; TokensIssued those
	// that returned an access token.
	TokenRequests, TokensIssued int64
	// Discovery counts GETs of the OpenID configuration and of instance
	// discovery.
	Discovery int64
}

type counters struct {
	set, get, list, update      atomic.Int64
	journalSet, journalList     atomic.Int64
	listSecrets                 atomic.Int64
	challenges                  atomic.Int64
	tokenRequests, tokensIssued atomic.Int64
	discovery                   atomic.Int64
}

// op is the counter of a vault operation.
func (c *counters) op(op Op) *atomic.Int64 {
	switch op {
	case OpSet:
		return &c.set
	case OpGet:
		return &c.get
	case OpList:
		return &c.list
	case OpUpdate:
		return &c.update
	case OpListSecrets:
		return &c.listSecrets
	}
	return nil
}

func (c *counters) stats() Stats {
	return Stats{
		Set:           c.set.Load(),
		Get:           c.get.Load(),
		List:          c.list.Load(),
		Update:        c.update.Load(),
		JournalSet:    c.journalSet.Load(),
		JournalList:   c.journalList.Load(),
		ListSecrets:   c.listSecrets.Load(),
		Challenges:    c.challenges.Load(),
		TokenRequests: c.tokenRequests.Load(),
		TokensIssued:  c.tokensIssued.Load(),
		Discovery:     c.discovery.Load(),
	}
}
