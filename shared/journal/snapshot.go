package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
)

// The snapshot is what an instance knows, written by the timer so that a
// cold start reads a few secrets instead of every one: shards
// journal-snapshot-1, -2, ... each a JSON list of secrets, then the index
// journal-snapshot naming the shards' versions and the last slot listed.

// errNoSnapshot: the vault holds no snapshot.
var errNoSnapshot = errors.New("journal: no snapshot")

// shardBytes bounds a shard's value, below Key Vault's 25 KiB.
const shardBytes = 20 * 1024

type snapIndex struct {
	Format int         `json:"format"`
	Listed int64       `json:"listed"`
	Slot   int64       `json:"slotMillis"`
	Shards []snapShard `json:"shards"`
}

type snapShard struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type snapSecret struct {
	Name     string      `json:"n"`
	Newest   string      `json:"newest,omitempty"`
	Floor    int64       `json:"floor,omitempty"`
	Versions []snapEntry `json:"v"`
}

type snapEntry struct {
	Version    string            `json:"v"`
	Created    int64             `json:"c"`
	Updated    int64             `json:"u"`
	Enabled    bool              `json:"e"`
	Tags       map[string]string `json:"t,omitempty"`
	Digest     string            `json:"h,omitempty"`
	KeyVersion string            `json:"k,omitempty"`
	Public     string            `json:"p,omitempty"`
}

// snapshotEvery is how many slots a snapshot may lag before the timer
// writes it again when nothing changed.
const snapshotEvery = 4

// WriteSnapshot writes what this instance knows as the vault's snapshot,
// unless it wrote an identical one (save the slots listed, up to
// snapshotEvery of them) before. The timer calls it each run.
func (j *Journal) WriteSnapshot(ctx context.Context) error {
	st, err := j.Reload(ctx)
	if err != nil {
		return err
	}
	j.snapMu.Lock()
	defer j.snapMu.Unlock()
	if last := j.snapshot; last != nil && sameSecrets(last, st) && st.listed-last.listed < snapshotEvery {
		return nil
	}
	shards, err := encodeShards(st)
	if err != nil {
		return err
	}
	idx := snapIndex{Format: 1, Listed: st.listed, Slot: st.slot.Milliseconds()}
	for i, sh := range shards {
		name := SnapshotSecret + "-" + strconv.Itoa(i+1)
		p, err := j.store.SetSecret(ctx, name, secretstore.SetParams{Value: sh, Enabled: true, Tags: map[string]string{"managed-by": "modelauth", "kind": "journal-snapshot"}})
		if err != nil {
			return fmt.Errorf("journal: writing the snapshot: %w", err)
		}
		idx.Shards = append(idx.Shards, snapShard{Name: name, Version: p.Version})
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if _, err := j.store.SetSecret(ctx, SnapshotSecret, secretstore.SetParams{Value: string(b), Enabled: true, Tags: map[string]string{"managed-by": "modelauth", "kind": "journal-snapshot", "listed": strconv.FormatInt(st.listed, 10)}}); err != nil {
		return fmt.Errorf("journal: writing the snapshot: %w", err)
	}
	j.snapshot = st
	j.opts.Logger.Info("journal_snapshot_written", "shards", len(shards), "secrets", len(st.secrets))
	return nil
}

// sameSecrets reports whether a and b know the same of every secret.
func sameSecrets(a, b *View) bool {
	if len(a.secrets) != len(b.secrets) {
		return false
	}
	for name, sa := range a.secrets {
		sb := b.secrets[name]
		if sb == nil || sa.newest != sb.newest || sa.conflict != sb.conflict || !sa.floor.Equal(sb.floor) || len(sa.versions) != len(sb.versions) {
			return false
		}
		for v, e := range sa.versions {
			if o, ok := sb.versions[v]; !ok || !o.same(e) {
				return false
			}
		}
	}
	return true
}

// encodeShards splits st's secrets into shards of at most shardBytes.
func encodeShards(st *View) ([]string, error) {
	var shards []string
	var cur []snapSecret
	size := 2
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		shards, cur, size = append(shards, string(b)), nil, 2
		return nil
	}
	for _, name := range sortedNames(st) {
		ss := st.secrets[name]
		if ss.conflict {
			continue // unknown until read: a cold start reads it
		}
		s := snapSecret{Name: name, Newest: ss.newest}
		if !ss.floor.IsZero() {
			s.Floor = ss.floor.Unix()
		}
		for _, e := range st.Versions(name) {
			s.Versions = append(s.Versions, snapEntry{
				Version: e.Version, Created: e.Created.Unix(), Updated: e.Updated.Unix(), Enabled: e.Enabled,
				Tags: e.Tags, Digest: e.Digest, KeyVersion: e.KeyVersion, Public: e.Public,
			})
		}
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		if len(b)+3 > shardBytes {
			return nil, fmt.Errorf("journal: %s is too large for a snapshot shard", name)
		}
		if size+len(b)+1 > shardBytes {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		cur, size = append(cur, s), size+len(b)+1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return shards, nil
}

// readSnapshot reads the vault's snapshot into a view over base (the
// journal key).
func (j *Journal) readSnapshot(ctx context.Context, base *View) (*View, error) {
	sec, err := j.store.GetSecret(ctx, SnapshotSecret, "")
	if secretstore.Code(err) == secretstore.NotFound {
		return nil, errNoSnapshot
	}
	if err != nil {
		return nil, err
	}
	var idx snapIndex
	if err := json.Unmarshal([]byte(sec.Value), &idx); err != nil || idx.Format != 1 || time.Duration(idx.Slot)*time.Millisecond != base.slot {
		return nil, fmt.Errorf("journal: %s version %s is not a snapshot of this journal", SnapshotSecret, sec.Version)
	}
	st := base.clone()
	st.listed = idx.Listed
	for _, sh := range idx.Shards {
		if n, ok := strings.CutPrefix(sh.Name, SnapshotSecret+"-"); !ok || !isDigits(n) {
			return nil, fmt.Errorf("journal: the snapshot names a shard %q", sh.Name)
		}
		sec, err := j.store.GetSecret(ctx, sh.Name, sh.Version)
		if err != nil {
			return nil, err
		}
		var secrets []snapSecret
		if err := json.Unmarshal([]byte(sec.Value), &secrets); err != nil {
			return nil, fmt.Errorf("journal: snapshot shard %s: %w", sh.Name, err)
		}
		for _, s := range secrets {
			ss := &secretState{versions: map[string]Entry{}, newest: s.Newest}
			if s.Floor != 0 {
				ss.floor = time.Unix(s.Floor, 0).UTC()
			}
			for _, e := range s.Versions {
				tags := e.Tags
				if tags == nil {
					tags = map[string]string{}
				}
				ss.versions[e.Version] = Entry{
					Name: s.Name, Version: e.Version, Created: time.Unix(e.Created, 0).UTC(), Updated: time.Unix(e.Updated, 0).UTC(),
					Enabled: e.Enabled, Tags: tags, Digest: e.Digest, KeyVersion: e.KeyVersion, Public: e.Public,
				}
			}
			st.secrets[s.Name] = ss
		}
	}
	if err := j.settle(ctx, st, nil); err != nil {
		return nil, err
	}
	return st, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > 4 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
