// Package journal tells every instance of the changes to the secrets that
// validators need (service keys, their active copies, the administrator
// key, the signing keys) for one vault read per slot, whatever the number
// of services, changes or requests (docs/design.md section 14).
//
// # The change journal
//
// Every write of such a secret through a [secretstore.Store] carrying
// [Journal.Hook] appends a record: a new version of the journal secret of
// the current time slot, journal-<yyyymmdd>-<hhmmss><mmm> (the slot's
// start, UTC, to the millisecond; slots are a key-cache TTL less 250 ms). The record's tags are the
// written version's own tags plus its name, version id, times, enabled
// flag and the HMAC-SHA256 of its value under the journal key (the secret
// journal-key; never a plain hash, since tags are visible to anyone who
// may read metadata). A private key's record carries its public key
// instead. Records need no order and no compare-and-swap: a slot's records
// are a set, read with one listing of the slot's versions.
//
// A writer returns only after its record is written; a record finished
// too late for readers that already listed its slot is written again in
// the current slot. Its failure is the write's failure, with code
// secretstore.Unpublished: the version is written, not yet published.
//
// # Readers
//
// An instance lists each slot once, Grace after it closes, at most one
// slot per poll period (the TTL less Grace), and applies the records to
// what it knows ([View]). A key that matches nothing lists the open slot
// at once, at most once per KEY_REFRESH_MIN_INTERVAL for the whole
// instance. A cold start reads the journal key and the snapshot the timer
// keeps ([Journal.WriteSnapshot]), then lists the slots since; without a
// usable snapshot it reads every secret once ([Journal.Options.Names]).
// Two records of one secret that Key Vault's times cannot order (the same
// second) are resolved by reading that secret.
//
// So a change written at t is known everywhere by t + [Journal.Bound]
// (two slots), on an instance that can read the vault.
package journal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// Secret names.
const (
	// Prefix starts every secret of the journal.
	Prefix = "journal-"
	// KeySecret holds the journal key: 32 random bytes, base64url, whose
	// versions digest the records; its tag slot-seconds is the journal's
	// slot length.
	KeySecret = "journal-key"
	// SnapshotSecret is the index of the snapshot; its shards are
	// journal-snapshot-1, -2, ...
	SnapshotSecret = "journal-snapshot"

	tagSlotMillis = "slot-ms"
	recordValue   = "r"
)

// Options tune a Journal. They are used as given (see [DefaultOptions]).
type Options struct {
	// Bounds: TTL is the slot length of a journal this instance creates,
	// and the poll period (less Grace); RefreshMinInterval spaces the
	// reads of unknown keys (instance-wide); MaxStale and ReadTimeout as
	// for every key cache.
	cache.Bounds
	// Gate is the instance's back-off over the store (nil: its own).
	Gate   *cache.Gate
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
	// Tracked reports whether validators need to know of writes of a
	// secret; only those are recorded. nil: none.
	Tracked func(name string) bool
	// AllVersions reports whether every version of a secret matters (the
	// signing keys), not only the newest.
	AllVersions func(name string) bool
	// Private reports whether a secret's values are private keys, whose
	// records carry Public(value) instead of a digest.
	Private func(name string) bool
	Public  func(value string) (string, bool)
	// Names returns the secrets a cold start without a snapshot reads.
	Names func() []string
	// MaxCatchUp is the most slots a poll lists; an instance that missed
	// more starts again from the snapshot.
	MaxCatchUp int
	// ResyncBatch is how many secrets a [Journal.Resync] reads.
	ResyncBatch int
	// Phase draws the instance's poll phase in [0, n) (nil: at random).
	Phase func(n time.Duration) time.Duration
}

// DefaultOptions returns the defaults: [cache.DefaultBounds], catch-up of
// 20 slots, resync of 10 secrets a run.
func DefaultOptions() Options {
	return Options{Bounds: cache.DefaultBounds(), MaxCatchUp: 20, ResyncBatch: 10}
}

// Journal is one instance's view of the vault's journal, and its writer.
// It is safe for concurrent use.
type Journal struct {
	store *secretstore.Store
	opts  Options
	cache *cache.Value[*View]

	missMu   sync.Mutex
	nextMiss time.Time // when a miss may read again

	// phase places this instance's polls in each slot: Grace + phase
	// after a slot closes, with phase in [0, poll period), drawn at
	// random so that instances started at once do not poll at once.
	phase time.Duration

	snapMu   sync.Mutex
	snapshot *View // the last snapshot written from this instance

	resyncMu   sync.Mutex
	resyncNext int // the index in Names of the next secret Resync reads
}

// New returns a Journal over store. Call store.OnWrite(j.Hook) so that
// writes are recorded.
func New(store *secretstore.Store, opts *Options) *Journal {
	j := &Journal{store: store, opts: DefaultOptions()}
	if opts != nil {
		j.opts = *opts
	}
	o := &j.opts
	if o.TTL < 10*time.Millisecond {
		o.TTL = 10 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, f := range []*func(string) bool{&o.Tracked, &o.AllVersions, &o.Private} {
		if *f == nil {
			*f = func(string) bool { return false }
		}
	}
	if o.Gate == nil {
		o.Gate = cache.NewGate(o.Bounds, secretstore.IsThrottled)
	}
	if o.Phase == nil {
		o.Phase = func(n time.Duration) time.Duration { return time.Duration(mrand.Int64N(int64(n))) }
	}
	j.phase = o.Phase(SlotFor(o.TTL))
	b := o.Bounds
	b.TTL = SlotFor(o.TTL) // with Fresh: how long past a slot stale views serve
	j.cache = cache.New(j.load, cache.Options[*View]{
		Bounds: b, Now: o.Now, Gate: o.Gate, Fresh: j.fresh,
		OnStale: func(age time.Duration, err error) {
			o.Logger.Warn("journal_unavailable", "age", age.Round(time.Second).String(), "error", err.Error())
		},
	})
	return j
}

// fresh reports whether a view read at loaded is fresh at now: no poll
// was due since. Polls are due Grace + phase after each slot closes.
func (j *Journal) fresh(loaded, now time.Time) bool {
	slot := j.slot()
	g := Grace(slot)
	due := slotEnd(slotOf(now.Add(-g-j.phase), slot)-1, slot).Add(g + j.phase)
	return !loaded.Before(due)
}

// slot is the journal's slot length: the vault's, once known.
func (j *Journal) slot() time.Duration {
	if p := j.Peek(); p != nil {
		return p.slot
	}
	return SlotFor(j.opts.TTL)
}

// minSlot is the shortest slot. KEY_CACHE_TTL's own minimum (1 s) gives
// 750 ms; shorter TTLs come only from tests, and a slot must still outlast
// a store write (an fsync or two on a loaded machine), since a record
// written after its slot's grace is retried in the next.
const minSlot = 20 * time.Millisecond

// SlotFor is the slot length of a journal whose creator's KEY_CACHE_TTL
// is ttl: ttl less half its Grace, so that two slots and a Grace are ttl
// twice (the bound), in whole milliseconds.
func SlotFor(ttl time.Duration) time.Duration {
	slot := ttl - 250*time.Millisecond // Grace 500ms
	if Grace(slot) < 500*time.Millisecond {
		slot = ttl * 8 / 9 // Grace slot/4
	}
	return max(slot.Truncate(time.Millisecond), minSlot)
}

// Grace is how long after a slot closes readers list it: records finished
// later than half of it are written again in the current slot, so clocks
// may differ by that much.
func Grace(slot time.Duration) time.Duration { return min(500*time.Millisecond, slot/4) }

// Bound returns how long after a write returns every instance that can
// read the vault knows of it: the record's slot, Grace, and at most a slot
// more until the instance's poll (2 x KEY_CACHE_TTL).
func (j *Journal) Bound() time.Duration {
	slot := j.slot()
	return 2*slot + Grace(slot)
}

// View returns what this instance knows, read from the vault when a poll
// is due (within ReadTimeout, else the last view within MaxStale).
func (j *Journal) View(ctx context.Context) (*View, error) {
	s, err := j.cache.Get(ctx)
	if err != nil {
		return nil, err
	}
	return s.Value, nil
}

// Peek returns what this instance knows without reading, or nil.
func (j *Journal) Peek() *View {
	if s := j.cache.Peek(); s != nil {
		return s.Value
	}
	return nil
}

// Miss reports that a key matched nothing in seen: the slots not yet
// listed (the open one, and one that closed since the last poll) are
// listed now, unless the store is backing off or a miss read less than
// RefreshMinInterval per slot it listed ago. So misses cost at most one
// read per RefreshMinInterval, for the whole instance. It returns the view
// after it.
func (j *Journal) Miss(ctx context.Context, seen *View) (*View, error) {
	if seen == nil {
		return j.View(ctx)
	}
	if cur := j.Peek(); cur != nil && cur.reads > seen.reads {
		return cur, nil // read since seen
	}
	now := j.opts.Now()
	if d, _ := j.opts.Gate.Closed(now); d > 0 {
		return seen, nil // the store is left alone: no read is spent
	}
	j.missMu.Lock()
	if now.Before(j.nextMiss) {
		j.missMu.Unlock()
		return seen, nil
	}
	first, last := seen.listed+1, slotOf(now, seen.slot)
	j.nextMiss = now.Add(time.Duration(last-first+1) * j.opts.RefreshMinInterval)
	j.missMu.Unlock()
	// The read may outlive the caller (ReadTimeout): it goes on in the
	// background for at most cache.MaxBackgroundRead, and its result is
	// merged into the view when it ends.
	done := make(chan error, 1)
	go func() {
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), cache.MaxBackgroundRead)
		defer cancel()
		err := j.listOpen(bg, seen, first, last, now)
		if err != nil {
			j.opts.Gate.Failed(now, err)
			j.opts.Logger.Warn("journal_miss_read_failed", "error", err.Error())
		}
		done <- err
	}()
	var timeout <-chan time.Time
	if t := j.opts.ReadTimeout; t > 0 {
		tm := time.NewTimer(t)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case err := <-done:
		if err != nil {
			return seen, nil // the answer comes from what is known
		}
		return j.Peek(), nil
	case <-timeout:
		return seen, nil
	case <-ctx.Done():
		return seen, nil
	}
}

// Reload reads the journal now (a poll), whatever is cached.
func (j *Journal) Reload(ctx context.Context) (*View, error) {
	s, err := j.cache.Reload(ctx)
	if err != nil {
		return nil, err
	}
	return s.Value, nil
}

// slotOf is the slot holding t.
func slotOf(t time.Time, slot time.Duration) int64 {
	return t.UnixMilli() / slot.Milliseconds()
}

// slotName is the name of slot k's journal secret: its start, UTC, to the
// millisecond.
func slotName(k int64, slot time.Duration) string {
	start := time.UnixMilli(k * slot.Milliseconds()).UTC()
	return Prefix + start.Format("20060102-150405") + fmt.Sprintf("%03d", start.Nanosecond()/1e6)
}

// slotEnd is when slot k closes.
func slotEnd(k int64, slot time.Duration) time.Time {
	return time.UnixMilli((k + 1) * slot.Milliseconds())
}

// lastClosed is the last slot that closed Grace or more before now.
func lastClosed(now time.Time, slot time.Duration) int64 {
	return slotOf(now.Add(-Grace(slot)), slot) - 1
}

// load is a poll: a cold start first, then every slot closed since the
// last one listed, then the conflicts.
func (j *Journal) load(ctx context.Context) (*View, error) {
	var st *View
	if p := j.Peek(); p != nil {
		st = p.clone()
	}
	now := j.opts.Now()
	if st == nil || lastClosed(now, st.slot)-st.listed > int64(j.opts.MaxCatchUp) {
		var err error
		if st, err = j.coldStart(ctx, now); err != nil {
			return nil, err
		}
	}
	touched := map[string]bool{}
	for k := st.listed + 1; k <= lastClosed(now, st.slot); k++ {
		if err := j.listSlot(ctx, st, k, touched); err != nil {
			return nil, err
		}
		st.listed = k
	}
	if err := j.settle(ctx, st, touched); err != nil {
		return nil, err
	}
	st.reads++
	return st, nil
}

// listOpen lists slots first to last, not all of them closed, and applies
// what they hold to the cached view. The closed ones listed after their
// grace count as listed, as a poll's.
func (j *Journal) listOpen(ctx context.Context, seen *View, first, last int64, now time.Time) error {
	st := seen.clone()
	touched := map[string]bool{}
	for k := first; k <= last; k++ {
		if err := j.listSlot(ctx, st, k, touched); err != nil {
			return err
		}
		if k <= lastClosed(now, st.slot) {
			st.listed = k
		}
	}
	if err := j.settle(ctx, st, touched); err != nil {
		return err
	}
	st.reads++
	j.merge(seen.listed, st, touched)
	return nil
}

// merge applies what st, a view made from one whose last listed slot was
// from, knows of the secrets named to the cached view (the records are a
// set: applying them again, in any order, changes nothing), and the slots
// st listed.
func (j *Journal) merge(from int64, st *View, names map[string]bool) {
	j.cache.Update(func(cur *View) *View {
		out := cur.clone()
		if out.listed >= from && st.listed > out.listed {
			out.listed = st.listed
		}
		out.reads = max(out.reads, st.reads)
		for name := range names {
			ss := st.secrets[name]
			if ss == nil {
				continue
			}
			for _, e := range ss.versions {
				out.apply(e, j.opts.AllVersions(name))
			}
			if !ss.conflict {
				if e, ok := ss.versions[ss.newest]; ok {
					if c := out.secrets[name]; c != nil && c.conflict {
						out.resolved(name, &e, j.opts.AllVersions(name), time.Time{})
					}
				}
			}
		}
		for v, k := range st.keys {
			out.keys[v] = k
		}
		return out
	})
}

// listSlot applies the records of slot k to st, and adds the names of the
// secrets they concern to touched.
func (j *Journal) listSlot(ctx context.Context, st *View, k int64, touched map[string]bool) error {
	props, err := j.store.ListVersions(ctx, slotName(k, st.slot))
	if secretstore.Code(err) == secretstore.NotFound {
		return nil // nothing changed in that slot
	}
	if err != nil {
		return err
	}
	for _, p := range props {
		e, err := parseRecord(p.Tags)
		if err != nil {
			j.opts.Logger.Warn("journal_record_ignored", "slot", slotName(k, st.slot), "version", p.Version, "error", err.Error())
			continue
		}
		st.apply(e, j.opts.AllVersions(e.Name))
		touched[e.Name] = true
	}
	return nil
}

// settle reads what st cannot tell by itself of the secrets named (nil:
// all): the journal key versions their entries name, and the newest
// version of each in conflict.
func (j *Journal) settle(ctx context.Context, st *View, names map[string]bool) error {
	for _, name := range st.conflicts() {
		if names != nil && !names[name] {
			continue
		}
		if err := j.resolve(ctx, st, name); err != nil {
			return err
		}
	}
	for name, ss := range st.secrets {
		if names != nil && !names[name] {
			continue
		}
		for _, e := range ss.versions {
			if e.KeyVersion == "" || st.keys[e.KeyVersion] != nil {
				continue
			}
			k, err := j.readKey(ctx, e.KeyVersion)
			if err != nil {
				return err
			}
			st.keys[k.version] = k.value
		}
	}
	return nil
}

// resolve reads name's newest version into st.
func (j *Journal) resolve(ctx context.Context, st *View, name string) error {
	sec, err := j.store.GetSecret(ctx, name, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err != nil {
			return err
		}
		e := j.entryOf(sec.Properties, sec.Value, st.key)
		st.resolved(name, &e, j.opts.AllVersions(name), time.Time{})
		return nil
	case secretstore.Disabled:
		// The newest is disabled, and Key Vault's 403 names no version:
		// the versions' times say which are older.
		props, err := j.store.ListVersions(ctx, name)
		if err != nil {
			return err
		}
		st.resolved(name, nil, j.opts.AllVersions(name), latestCreated(props))
		return nil
	case secretstore.NotFound:
		delete(st.secrets, name) // deleted from outside the app
		return nil
	}
	return err
}

// journalKey is one version of the journal key.
type journalKey struct {
	version string
	value   []byte
	slot    time.Duration
}

// readKey reads a version of the journal key ("" the newest).
func (j *Journal) readKey(ctx context.Context, version string) (journalKey, error) {
	sec, err := j.store.GetSecret(ctx, KeySecret, version)
	if err != nil {
		return journalKey{}, err
	}
	v, err := base64.RawURLEncoding.DecodeString(sec.Value)
	if err != nil || len(v) < 16 {
		return journalKey{}, fmt.Errorf("journal: %s version %s is not a key", KeySecret, sec.Version)
	}
	k := journalKey{version: sec.Version, value: v, slot: SlotFor(j.opts.TTL)}
	if n, err := strconv.ParseInt(sec.Tags[tagSlotMillis], 10, 64); err == nil && n > 0 {
		k.slot = time.Duration(n) * time.Millisecond
	}
	return k, nil
}

// currentKey reads the journal key, creating it if the vault has none.
func (j *Journal) currentKey(ctx context.Context) (journalKey, error) {
	k, err := j.readKey(ctx, "")
	if secretstore.Code(err) != secretstore.NotFound {
		return k, err
	}
	var b [32]byte
	rand.Read(b[:])
	tags := map[string]string{"managed-by": "modelauth", "kind": "journal-key", tagSlotMillis: strconv.FormatInt(SlotFor(j.opts.TTL).Milliseconds(), 10)}
	if _, err := j.store.SetSecret(ctx, KeySecret, secretstore.SetParams{Value: base64.RawURLEncoding.EncodeToString(b[:]), Enabled: true, Tags: tags}); err != nil {
		return k, err
	}
	j.opts.Logger.Info("journal_key_created")
	// Another instance may have created one at the same moment: every
	// instance uses the newest, and records name the version they used.
	return j.readKey(ctx, "")
}

// coldStart builds a view from the journal key and the snapshot, or from a
// read of every secret when there is no usable snapshot.
func (j *Journal) coldStart(ctx context.Context, now time.Time) (*View, error) {
	key, err := j.currentKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal: reading the journal key: %w", err)
	}
	st := &View{secrets: map[string]*secretState{}, keys: map[string][]byte{key.version: key.value}, key: key, slot: key.slot}
	if key.slot != SlotFor(j.opts.TTL) {
		j.opts.Logger.Warn("journal_slot_differs", "vault_slot", key.slot.String(), "ttl", j.opts.TTL.String())
	}
	snap, err := j.readSnapshot(ctx, st)
	switch {
	case err == nil && lastClosed(now, st.slot)-snap.listed <= int64(j.opts.MaxCatchUp):
		return snap, nil
	case err != nil && !errors.Is(err, errNoSnapshot):
		j.opts.Logger.Warn("journal_snapshot_unusable", "error", err.Error())
	}
	return j.scan(ctx, st, now)
}

// scan reads every secret of Options.Names into st: the cold start without
// a snapshot, and the timer's resync.
func (j *Journal) scan(ctx context.Context, st *View, now time.Time) (*View, error) {
	// Changes made while the scan runs are in slots from the one before
	// it began: those are listed after it.
	st.listed = slotOf(now.Add(-Grace(st.slot)), st.slot) - 2
	if j.opts.Names == nil {
		return st, nil
	}
	for _, name := range j.opts.Names() {
		name = strings.ToLower(name)
		if err := j.scanSecret(ctx, st, name); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// scanSecret reads one secret into st.
func (j *Journal) scanSecret(ctx context.Context, st *View, name string) error {
	if !j.opts.AllVersions(name) {
		return j.resolve(ctx, st, name)
	}
	props, err := j.store.ListVersions(ctx, name)
	if secretstore.Code(err) == secretstore.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range props {
		e := entryOfProps(p)
		if p.Enabled {
			sec, err := j.store.GetSecret(ctx, name, p.Version)
			switch secretstore.Code(err) {
			case secretstore.Unknown:
				e = j.entryOf(sec.Properties, sec.Value, st.key)
			case secretstore.Disabled, secretstore.NotFound:
				e.Enabled = false
			default:
				return err
			}
		}
		st.apply(e, true)
	}
	return nil
}

// Resync reads the next Options.ResyncBatch secrets of Options.Names
// (round the list, from where the last call stopped) and records what the
// journal does not say of them: versions disabled, or written from outside
// the app with no event. The timer's backstop: every secret is read once
// per len(Names)/ResyncBatch runs (the resync period).
func (j *Journal) Resync(ctx context.Context) error {
	cur, err := j.View(ctx)
	if err != nil || j.opts.Names == nil {
		return err
	}
	names := j.opts.Names()
	if len(names) == 0 {
		return nil
	}
	j.resyncMu.Lock()
	defer j.resyncMu.Unlock()
	fresh := &View{secrets: map[string]*secretState{}, keys: cur.keys, key: cur.key, slot: cur.slot}
	batch := min(max(j.opts.ResyncBatch, 1), len(names))
	for range batch {
		name := strings.ToLower(names[j.resyncNext%len(names)])
		j.resyncNext++
		if err := j.scanSecret(ctx, fresh, name); err != nil {
			return err
		}
	}
	n := 0
	for name, ss := range fresh.secrets {
		for _, e := range ss.versions {
			if known, ok := cur.secrets[name].version(e.Version); ok && known.same(e) {
				continue
			}
			if !j.opts.AllVersions(name) && e.Version != ss.newest {
				continue
			}
			if err := j.publish(ctx, e); err != nil {
				return err
			}
			n++
		}
		if !j.opts.AllVersions(name) && ss.newest == "" {
			// The newest is disabled and unreadable: record it from its
			// listing, so that no older version counts anywhere.
			if err := j.recordUnreadable(ctx, cur, name); err != nil {
				return err
			}
		}
	}
	j.opts.Logger.Info("journal_resynced", "secrets", batch, "records", n)
	return nil
}

// recordUnreadable records the disabled newest version of name, found by
// listing its versions: every disabled version of the latest second
// (Created alone cannot order same-second ones), so that no older version
// counts anywhere until a newer one is written.
func (j *Journal) recordUnreadable(ctx context.Context, cur *View, name string) error {
	props, err := j.store.ListVersions(ctx, name)
	if err != nil {
		return err
	}
	latest := latestCreated(props)
	for _, p := range props {
		if p.Enabled || !driver.WholeSecond(p.Created).Equal(latest) {
			continue
		}
		e := entryOfProps(p)
		if known, ok := cur.secrets[name].version(e.Version); ok && known.same(e) {
			continue
		}
		if err := j.publish(ctx, e); err != nil {
			return err
		}
	}
	return nil
}
