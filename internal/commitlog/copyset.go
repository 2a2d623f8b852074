package commitlog

import (
	"context"
	"fmt"
	"sort"

	"github.com/twoway/twoway/bucket"
)

// CopySet is everything a copy of the log's state as of one commit needs:
// an agent opening a bucket that holds exactly these objects loads the
// checkpoint, replays the commits after it and holds the same state.
type CopySet struct {
	// Seq is the commit the state is as of.
	Seq uint64
	// Checkpoint is the newest checkpoint at or below Seq (0: none; the
	// copy then replays from commit 1).
	Checkpoint uint64
	// Keys are the objects to copy, sorted: the checkpoint, the snapshot
	// objects it names, the commits Checkpoint+1..Seq, and every object an
	// owner references at Seq (chunks, commits whose inline blobs are live,
	// modules, table files).
	Keys []string
	// Snapshots gives the size and CRC-32C of each snapshot object the
	// checkpoint names, as the checkpoint records them.
	Snapshots map[string]ObjectSum
}

// ObjectSum is the size and CRC-32C of a whole object.
type ObjectSum struct {
	Size int64
	CRC  uint32
}

// CopySet brings the state up to the tail (Sync) and returns the objects a
// consistent copy of it needs. The commit it is as of and the owners'
// references are captured together, with applying paused, so every key is
// one the state at Seq needs. The objects stay in the bucket for at least
// Grace after the call (garbage collection keeps what was referenced that
// recently), so a copy should be made within that time.
func (l *Log) CopySet(ctx context.Context) (CopySet, error) {
	if err := l.Sync(ctx); err != nil {
		return CopySet{}, err
	}
	keys := map[string]bool{}
	l.applyMu.Lock()
	seq := l.applied.Load()
	for _, s := range l.mux.slots {
		s.mu.RLock()
		s.o.LiveObjects(func(k string) { keys[k] = true })
		s.mu.RUnlock()
	}
	l.applyMu.Unlock()
	cs := CopySet{Seq: seq, Snapshots: map[string]ObjectSum{}}
	ci, err := l.checkpointAtOrBelow(ctx, seq)
	if err != nil {
		return CopySet{}, err
	}
	if ci != nil {
		cs.Checkpoint = ci.seq
		keys[CheckpointKey(ci.seq)] = true
		for _, p := range ci.parts {
			keys[p.Key] = true
			cs.Snapshots[p.Key] = ObjectSum{Size: p.Size, CRC: p.CRC}
		}
	}
	for s := cs.Checkpoint + 1; s <= seq; s++ {
		keys[LogKey(s)] = true
	}
	for k := range keys {
		cs.Keys = append(cs.Keys, k)
	}
	sort.Strings(cs.Keys)
	return cs, nil
}

// checkpointAtOrBelow reads the newest checkpoint whose sequence number is
// at most seq (nil if there is none). One deleted between listing and
// reading (a newer one replaced it) means: list again.
func (l *Log) checkpointAtOrBelow(ctx context.Context, seq uint64) (*checkpointInfo, error) {
	for attempt := 0; ; attempt++ {
		var best string
		for info, err := range l.b.List(ctx, CheckpointPrefix, "") {
			if err != nil {
				return nil, fmt.Errorf("list checkpoints: %w", err)
			}
			if s, ok := parseSeq(info.Key, CheckpointPrefix); ok && s <= seq {
				best = info.Key
			}
		}
		if best == "" {
			return nil, nil
		}
		ci, err := l.readCheckpoint(ctx, best)
		if bucket.IsNotFound(err) && attempt < 5 {
			continue
		}
		return ci, err
	}
}

// CheckObject verifies the checksums inside an object of the log that has
// them, by its key: a commit, a checkpoint or a snapshot object decodes and
// its CRC-32C matches (and a commit or checkpoint claims the sequence
// number of its key). Other objects (chunks, whose blobs the commits
// checksum, and objects of modules) are not checked and pass.
func CheckObject(key string, data []byte) error {
	if s, ok := parseSeq(key, LogPrefix); ok {
		c, err := DecodeCommit(data)
		if err == nil && c.Seq != s {
			err = fmt.Errorf("%w: object claims sequence %d", ErrCorrupt, c.Seq)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	if s, ok := parseSeq(key, CheckpointPrefix); ok {
		ci, err := decodeCheckpoint(data)
		if err == nil && ci.seq != s {
			err = fmt.Errorf("%w: object claims sequence %d", ErrCorrupt, ci.seq)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	if len(key) > len(SnapshotPrefix) && key[:len(SnapshotPrefix)] == SnapshotPrefix {
		if _, _, _, err := DecodeSnapshot(data); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}
