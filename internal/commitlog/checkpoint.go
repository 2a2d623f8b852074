package commitlog

// Checkpoints. A checkpoint (format 2) is a small object naming one
// snapshot object per owner, snapshots/{owner}/{seq}, where seq is the
// newest commit that touched the owner: the owner's state has been the same
// since, so the object's content is a function of its name, any agent may
// write it, and a later checkpoint whose owner did not change references the
// same object instead of writing it again.
//
// Writing a checkpoint pauses applying only while each owner captures its
// state (Owner.Snapshot, which must be cheap); encoding and uploading run
// alongside applies and fetches.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
)

// SnapshotPrefix holds owners' snapshot objects.
const SnapshotPrefix = "snapshots/"

// SnapshotKey is the key of owner's snapshot as of commit seq.
func SnapshotKey(owner string, seq uint64) string {
	return fmt.Sprintf("%s%s/%020d", SnapshotPrefix, owner, seq)
}

// cpPart is one owner's entry in a checkpoint.
type cpPart struct {
	Name string
	Seq  uint64 // the state is as of this commit (and unchanged since)
	Key  string
	Size int64
	CRC  uint32 // of the whole snapshot object
}

// checkpointInfo is a decoded checkpoint.
type checkpointInfo struct {
	seq     uint64
	version uint16
	parts   []cpPart
	legacy  map[string][]byte // version 1: the snapshots themselves
	// at is when this checkpoint was known to be the newest (when it was
	// listed, or when the writing of it started): its snapshot objects are
	// safe from garbage collection until at least at + Grace.
	at time.Time
}

func (ci *checkpointInfo) part(name string) *cpPart {
	for i := range ci.parts {
		if ci.parts[i].Name == name {
			return &ci.parts[i]
		}
	}
	return nil
}

// Snapshot object layout (version 1):
//
//	magic "TWSN" | version u16 | flags u16 | seq u64 | name_len u16 | name
//	body_len u64 | body | crc32c u32
func encodeSnapshot(name string, seq uint64, body []byte) []byte {
	b := make([]byte, 0, 8+8+2+len(name)+8+len(body)+4)
	b = append(b, snapshotMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, CRC(b))
}

// DecodeSnapshot verifies a snapshot object and returns its owner name,
// sequence number and the owner's snapshot bytes.
func DecodeSnapshot(b []byte) (string, uint64, []byte, error) {
	body, _, err := checkEnvelope(b, snapshotMagic, snapshotVersion, "snapshot")
	if err != nil {
		return "", 0, nil, err
	}
	r := &reader{b: body[8:]}
	seq := r.u64()
	name := string(r.take(int(r.u16())))
	n := r.u64()
	if r.err == nil && n != uint64(len(r.b)) {
		return "", 0, nil, fmt.Errorf("%w: snapshot body length %d, have %d bytes", ErrCorrupt, n, len(r.b))
	}
	if r.err != nil {
		return "", 0, nil, r.err
	}
	return name, seq, r.b, nil
}

// Checkpoint layout (version 2):
//
//	magic "TWCP" | version u16 | flags u16 | seq u64 | part_count u32 | parts
//	crc32c u32
//
//	part: name_len u16 | name | seq u64 | key_len u16 | key | size u64 | crc u32
//
// Version 1 (still read): magic | version | flags | seq u64 | body_len u64 |
// body (JSON: owner name → base64 of the owner's snapshot) | crc32c u32.
func encodeCheckpoint(seq uint64, parts []cpPart) []byte {
	b := make([]byte, 0, 256)
	b = append(b, checkpointMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, checkpointVersion)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(parts)))
	for _, p := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Name)))
		b = append(b, p.Name...)
		b = binary.BigEndian.AppendUint64(b, p.Seq)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.Key)))
		b = append(b, p.Key...)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Size))
		b = binary.BigEndian.AppendUint32(b, p.CRC)
	}
	return binary.BigEndian.AppendUint32(b, CRC(b))
}

// decodeCheckpoint verifies a checkpoint object of version 1 or 2.
func decodeCheckpoint(b []byte) (*checkpointInfo, error) {
	body, version, err := checkEnvelope(b, checkpointMagic, checkpointVersion, "checkpoint")
	if err != nil {
		return nil, err
	}
	r := &reader{b: body[8:]}
	ci := &checkpointInfo{seq: r.u64(), version: version}
	if version == 1 {
		n := r.u64()
		if r.err == nil && n != uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: checkpoint body length %d, have %d bytes", ErrCorrupt, n, len(r.b))
		}
		if r.err != nil {
			return nil, r.err
		}
		if err := json.Unmarshal(r.b, &ci.legacy); err != nil {
			return nil, fmt.Errorf("%w: checkpoint body: %v", ErrCorrupt, err)
		}
		return ci, nil
	}
	n := r.u32()
	if r.err == nil && n > 1<<16 {
		return nil, fmt.Errorf("%w: checkpoint claims %d parts", ErrCorrupt, n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		var p cpPart
		p.Name = string(r.take(int(r.u16())))
		p.Seq = r.u64()
		p.Key = string(r.take(int(r.u16())))
		p.Size = int64(r.u64())
		p.CRC = r.u32()
		if r.err == nil && (p.Seq > ci.seq || p.Key != SnapshotKey(p.Name, p.Seq) || p.Size < 0) {
			r.err = fmt.Errorf("%w: checkpoint part %d (%q) is inconsistent", ErrCorrupt, i, p.Name)
		}
		ci.parts = append(ci.parts, p)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after checkpoint parts", ErrCorrupt, len(r.b))
	}
	return ci, nil
}

func (l *Log) readCheckpoint(ctx context.Context, key string) (*checkpointInfo, error) {
	data, _, err := bucket.ReadAll(ctx, l.b, key)
	if err != nil {
		return nil, err
	}
	ci, err := decodeCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", key, err)
	}
	if want, _ := parseSeq(key, CheckpointPrefix); want != ci.seq {
		return nil, fmt.Errorf("checkpoint %s: %w: object claims sequence %d", key, ErrCorrupt, ci.seq)
	}
	return ci, nil
}

// newestCheckpoint lists checkpoints and reads the newest (nil if none).
func (l *Log) newestCheckpoint(ctx context.Context) (*checkpointInfo, error) {
	at := time.Now()
	var newest string
	for info, err := range l.b.List(ctx, CheckpointPrefix, "") {
		if err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		if _, ok := parseSeq(info.Key, CheckpointPrefix); ok {
			newest = info.Key
		}
	}
	if newest == "" {
		return nil, nil
	}
	ci, err := l.readCheckpoint(ctx, newest)
	if err != nil {
		return nil, err
	}
	ci.at = at
	return ci, nil
}

// load restores the newest checkpoint (or the empty state). A checkpoint
// deleted between listing and reading (a newer one replaced it) means: list
// again.
func (l *Log) load(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := l.loadOnce(ctx)
		if !bucket.IsNotFound(err) || attempt >= 5 {
			return err
		}
	}
}

func (l *Log) loadOnce(ctx context.Context) error {
	ci, err := l.newestCheckpoint(ctx)
	if err != nil {
		return err
	}
	if ci == nil {
		l.applyMu.Lock()
		defer l.applyMu.Unlock()
		if l.applied.Load() > 0 {
			return fmt.Errorf("commitlog: no checkpoint in the bucket, but commits 1..%d were applied: the bucket was emptied", l.applied.Load())
		}
		l.mux.reset()
		return nil
	}
	if applied := l.Applied(); ci.seq <= applied && applied > 0 {
		return nil // what we have is at least as new
	}
	// Fetch every snapshot before touching the state.
	snaps := map[string][]byte{}
	seqs := map[string]uint64{}
	if ci.version == 1 {
		for name, b := range ci.legacy {
			snaps[name], seqs[name] = b, ci.seq
		}
	} else {
		var mu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, p := range ci.parts {
			if l.mux.slot(p.Name) == nil {
				continue // an owner this version does not have
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				body, err := l.readSnapshot(ctx, p)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				snaps[p.Name], seqs[p.Name] = body, p.Seq
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if applied := l.applied.Load(); ci.seq <= applied && applied > 0 {
		return nil
	}
	for _, s := range l.mux.slots {
		s.mu.Lock()
		b, ok := snaps[s.o.Name()]
		var err error
		if ok {
			err = s.o.Restore(b)
			s.touched = seqs[s.o.Name()]
		} else {
			// An owner added after this checkpoint was written starts empty.
			s.o.Reset()
			s.touched = 0
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w: restore %s: %v", ci.seq, ErrCorrupt, s.o.Name(), err)
		}
	}
	l.applied.Store(ci.seq)
	if ci.version >= 2 {
		l.cpMu.Lock()
		l.lastCP = ci
		l.cpMu.Unlock()
	}
	return nil
}

// readSnapshot reads and verifies one part of a checkpoint.
func (l *Log) readSnapshot(ctx context.Context, p cpPart) ([]byte, error) {
	data, _, err := bucket.ReadAll(ctx, l.b, p.Key)
	if err != nil {
		if bucket.IsNotFound(err) {
			return nil, fmt.Errorf("%w: snapshot %s, referenced by a checkpoint, is missing", ErrCorrupt, p.Key)
		}
		return nil, fmt.Errorf("read snapshot %s: %w", p.Key, err)
	}
	if int64(len(data)) != p.Size || CRC(data) != p.CRC {
		return nil, fmt.Errorf("%w: snapshot %s is not the object its checkpoint names (%d bytes, want %d)", ErrCorrupt, p.Key, len(data), p.Size)
	}
	name, seq, body, err := DecodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", p.Key, err)
	}
	if name != p.Name || seq != p.Seq {
		return nil, fmt.Errorf("%w: snapshot %s claims owner %q at %d", ErrCorrupt, p.Key, name, seq)
	}
	return body, nil
}

// Checkpoint writes the current state as checkpoints/{applied}. Any agent may
// write one: the state at a sequence number is the same everywhere, so a
// checkpoint or snapshot that already exists is left alone. Owners whose
// state did not change since the newest checkpoint keep its snapshot.
func (l *Log) Checkpoint(ctx context.Context) error {
	start := time.Now()
	l.cpMu.Lock()
	base := l.lastCP
	l.cpMu.Unlock()
	if base == nil || time.Since(base.at) > l.w/2 {
		var err error
		if base, err = l.newestCheckpoint(ctx); err != nil {
			return err
		}
		if base != nil && base.version < 2 {
			base = nil
		}
	}

	type job struct {
		name    string
		touched uint64
		encode  func() ([]byte, error)
		part    cpPart
	}
	var jobs []*job
	l.applyMu.Lock()
	paused := time.Now()
	seq := l.applied.Load()
	for _, s := range l.mux.slots {
		j := &job{name: s.o.Name(), touched: s.touched}
		if base != nil {
			if p := base.part(j.name); p != nil && p.Seq == s.touched {
				j.part = *p
				jobs = append(jobs, j)
				continue
			}
		}
		s.mu.RLock()
		j.encode = s.o.Snapshot()
		s.mu.RUnlock()
		jobs = append(jobs, j)
	}
	stall := time.Since(paused)
	l.applyMu.Unlock()
	storeMax(&l.Stats.CheckpointStallNs, int64(stall))
	if seq == 0 || (base != nil && base.seq == seq) {
		return nil
	}

	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, 4)
	for i, j := range jobs {
		if j.encode == nil {
			l.Stats.SnapshotsReused.Add(1)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := j.encode()
			if err != nil {
				errs[i] = fmt.Errorf("snapshot of %s: %w", j.name, err)
				return
			}
			obj := encodeSnapshot(j.name, j.touched, body)
			j.part = cpPart{Name: j.name, Seq: j.touched, Key: SnapshotKey(j.name, j.touched), Size: int64(len(obj)), CRC: CRC(obj)}
			_, err = l.b.PutIfAbsent(ctx, j.part.Key, bytes.NewReader(obj), int64(len(obj)))
			if err != nil && !bucket.IsPrecondition(err) {
				errs[i] = fmt.Errorf("write snapshot %s: %w", j.part.Key, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// The snapshot objects, new and reused, are safe from collection only
	// for a while after start and base.at: write the checkpoint inside that
	// window or not at all.
	if time.Since(start) > l.w || (base != nil && time.Since(base.at) > 2*l.w) {
		return fmt.Errorf("checkpoint %d: writing the snapshots took %v, too long to reference them safely; will retry", seq, time.Since(start).Round(time.Millisecond))
	}
	parts := make([]cpPart, len(jobs))
	for i, j := range jobs {
		parts[i] = j.part
	}
	data := encodeCheckpoint(seq, parts)
	_, err := l.b.PutIfAbsent(ctx, CheckpointKey(seq), bytes.NewReader(data), int64(len(data)))
	if err != nil && !bucket.IsPrecondition(err) {
		return err
	}
	l.cpMu.Lock()
	if l.lastCP == nil || l.lastCP.seq < seq {
		l.lastCP = &checkpointInfo{seq: seq, version: checkpointVersion, parts: parts, at: start}
	}
	l.cpMu.Unlock()
	l.Stats.Checkpoints.Add(1)
	return nil
}
