package commitlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/twoway/twoway/bucket"
)

// sealLoop gathers pending proposals for the linger interval (or until a
// chunk's worth is pending), then seals them: small batches are kept for
// inlining, larger ones start uploading as a chunk right away so uploads
// overlap the sequencing of earlier commits.
func (l *Log) sealLoop() {
	defer l.wg.Done()
	defer close(l.sealed)
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.pendWake:
		}
		if l.opts.Linger > 0 {
			deadline := time.Now().Add(l.opts.Linger)
			for {
				l.pendMu.Lock()
				full := l.pendBytes >= l.opts.ChunkMax
				l.pendMu.Unlock()
				left := time.Until(deadline)
				if full || left <= 0 {
					break
				}
				select {
				case <-l.ctx.Done():
					return
				case <-l.pendWake:
				case <-time.After(left):
				}
			}
		}
		for {
			props := l.takePending()
			if len(props) == 0 {
				break
			}
			sb := l.seal(props)
			select {
			case l.sealed <- sb:
			case <-l.ctx.Done():
				for _, p := range props {
					p.err = errClosedNotCommitted
					close(p.done)
				}
				return
			}
		}
	}
}

// takePending removes up to a chunk's worth of proposals (at least one).
func (l *Log) takePending() []*proposal {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	n, size := 0, 0
	for n < len(l.pending) && (n == 0 || size+l.pending[n].blobLen <= l.opts.ChunkMax) {
		size += l.pending[n].blobLen
		n++
	}
	props := l.pending[:n:n]
	l.pending = l.pending[n:]
	l.pendBytes -= size
	return props
}

func (l *Log) seal(props []*proposal) *sealedBatch {
	sb := &sealedBatch{props: props, ready: make(chan struct{}), start: time.Now()}
	size := 0
	for _, p := range props {
		size += p.blobLen
	}
	// Lay the blobs out in one buffer; inline offsets are relative to it, a
	// chunk adds its header.
	base := 0
	if size > l.opts.InlineMax {
		base = chunkHeaderLen
	}
	buf := make([]byte, base, base+size)
	if base > 0 {
		copy(buf, chunkHeader())
	}
	sb.refs = make([][]Ref, len(props))
	for i, p := range props {
		sb.refs[i] = make([]Ref, len(p.entries))
		for j, e := range p.entries {
			if len(e.Blob) == 0 {
				// No blob (an empty one is none): keep the ref the
				// proposer gave, if any (an object it wrote itself).
				sb.refs[i][j] = e.Ref
				continue
			}
			sb.refs[i][j] = Ref{Off: int64(len(buf) - base), Len: int64(len(e.Blob)), CRC: CRC(e.Blob)}
			buf = append(buf, e.Blob...)
		}
	}
	if base == 0 {
		sb.inline = buf
		close(sb.ready)
		return sb
	}
	key := fmt.Sprintf("%s%020d-%s-%d", ChunkPrefix, time.Now().UnixMilli(), l.opts.AgentID, l.chunkN.Add(1))
	for i := range sb.refs {
		for j := range sb.refs[i] {
			if r := &sb.refs[i][j]; len(props[i].entries[j].Blob) > 0 {
				r.Key, r.Off = key, r.Off+int64(base)
			}
		}
	}
	go func() {
		defer close(sb.ready)
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(l.ctx, l.w/2)
			_, err := l.b.PutIfAbsent(ctx, key, bytes.NewReader(buf), int64(len(buf)))
			cancel()
			// A precondition failure on a retry means our earlier attempt
			// landed (the name is unique to this agent and chunk).
			if err == nil || (attempt > 0 && bucket.IsPrecondition(err)) {
				l.Stats.ChunksWritten.Add(1)
				l.Stats.ChunkBytes.Add(int64(len(buf)))
				return
			}
			if l.ctx.Err() != nil || time.Since(sb.start) > l.w/2 {
				sb.err = fmt.Errorf("%w: chunk upload failed: %v", ErrNotCommitted, err)
				return
			}
			l.log.Warn("chunk upload failed; retrying", "key", key, "err", err)
			if !l.sleep(backoff(attempt)) {
				sb.err = errClosedNotCommitted
				return
			}
		}
	}()
	return sb
}

// PutChunk writes blobs as one chunk object of its own and returns their
// refs, for owners that rewrite data outside the group commit (compaction).
// The caller must commit a reference to the chunk within Grace/4 of calling
// PutChunk, or leave it to garbage collection.
func (l *Log) PutChunk(ctx context.Context, blobs [][]byte) ([]Ref, error) {
	buf := chunkHeader()
	refs := make([]Ref, len(blobs))
	key := fmt.Sprintf("%s%020d-%s-%d", ChunkPrefix, time.Now().UnixMilli(), l.opts.AgentID, l.chunkN.Add(1))
	for i, b := range blobs {
		refs[i] = Ref{Key: key, Off: int64(len(buf)), Len: int64(len(b)), CRC: CRC(b)}
		buf = append(buf, b...)
	}
	if _, err := l.b.PutIfAbsent(ctx, key, bytes.NewReader(buf), int64(len(buf))); err != nil {
		return nil, err
	}
	l.Stats.RewrittenBytes.Add(int64(len(buf)))
	return refs, nil
}

// IsJanitor reports whether this agent holds the janitor lease now (as far
// as its applied state says).
func (l *Log) IsJanitor() bool { return l.Lease(JanitorLease).Holder == l.opts.AgentID }

func backoff(attempt int) time.Duration {
	d := 10 * time.Millisecond << min(attempt, 8)
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d/2 + time.Duration(int64(d)/2*int64(b[0])/256)
}

// commitLoop takes sealed batches in order, merges those that are ready into
// one commit, and sequences it.
func (l *Log) commitLoop() {
	defer l.wg.Done()
	var carry *sealedBatch
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-l.sealed; !ok {
				return
			}
		}
		<-first.ready
		batch := []*sealedBatch{first}
		inline := len(first.inline)
	merge:
		for len(batch) < 64 {
			select {
			case sb, ok := <-l.sealed:
				if !ok {
					break merge
				}
				<-sb.ready
				if sb.inline != nil && inline+len(sb.inline) > l.opts.InlineMax && inline > 0 {
					carry = sb
					break merge
				}
				inline += len(sb.inline)
				batch = append(batch, sb)
			default:
				break merge
			}
		}
		l.commitBatch(batch)
	}
}

// commitBatch builds one commit from the batches and sequences it.
func (l *Log) commitBatch(batch []*sealedBatch) {
	var entries []Entry
	var inline []byte
	var props []*proposal
	var oldest time.Time
	for _, sb := range batch {
		if sb.err != nil {
			for _, p := range sb.props {
				p.err = sb.err
				close(p.done)
			}
			continue
		}
		if sb.inline == nil && (oldest.IsZero() || sb.start.Before(oldest)) {
			oldest = sb.start
		}
		shift := int64(len(inline))
		inline = append(inline, sb.inline...)
		for i, p := range sb.props {
			props = append(props, p)
			for j, e := range p.entries {
				r := sb.refs[i][j]
				if r.Key == "" && r.Len > 0 {
					r.Off += shift
				}
				entries = append(entries, Entry{Type: e.Type, Data: e.Data, Ref: r})
			}
		}
	}
	if len(props) == 0 {
		return
	}
	seq, results, err := l.sequence(entries, inline, oldest)
	k := 0
	for _, p := range props {
		p.seq, p.err = seq, err
		if err == nil {
			p.results = results[k : k+len(p.entries)]
		}
		k += len(p.entries)
		close(p.done)
	}
}

// sequence writes the commit at the next free sequence number and applies
// it. It returns only when the outcome is known (or the log closes).
func (l *Log) sequence(entries []Entry, inline []byte, oldestChunk time.Time) (uint64, []any, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	l.mu.Lock()
	l.inflightID, l.inflightResults, l.inflightSeq = id, nil, 0
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.inflightID, l.inflightResults = [16]byte{}, nil
		l.mu.Unlock()
	}()
	done := func() (uint64, []any, bool) {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return l.inflightSeq, l.inflightResults, l.inflightSeq != 0
	}
	failures := 0
	attempted := false // a write whose outcome we did not learn
	for {
		if err := l.Err(); err != nil {
			return 0, nil, err
		}
		if l.ctx.Err() != nil {
			if attempted {
				return 0, nil, ErrClosed
			}
			return 0, nil, errClosedNotCommitted
		}
		if seq, res, ok := done(); ok {
			return seq, res, nil
		}
		if !oldestChunk.IsZero() && time.Since(oldestChunk) > l.w-l.opts.CommitTimeout {
			return 0, nil, fmt.Errorf("%w: its chunk is too old to commit safely; retry", ErrNotCommitted)
		}
		if l.freshFor() < l.opts.CommitTimeout {
			if err := l.catchUpAll(l.ctx); err != nil {
				failures++
				l.log.Warn("commit: cannot confirm the tail of the log; retrying", "err", err)
				l.sleep(backoff(failures))
				continue
			}
		}
		seq := l.Applied() + 1
		body := encodeCommit(seq, id, entries, inline)
		start := time.Now()
		ctx, cancel := context.WithTimeout(l.ctx, l.opts.CommitTimeout)
		_, err := l.b.PutIfAbsent(ctx, LogKey(seq), bytes.NewReader(body), int64(len(body)))
		cancel()
		attempted = err != nil && !bucket.IsPrecondition(err)
		switch {
		case err == nil:
			l.confirmTail(start)
			l.Stats.Commits.Add(1)
			if err := l.applyBytes(seq, body); err != nil {
				l.setFatal(err)
				return 0, nil, err
			}
			continue // done() picks up the results
		case bucket.IsPrecondition(err):
			l.Stats.Conflicts.Add(1)
		default:
			// Unknown outcome: read back what is at seq.
			l.Stats.UnknownOutcome.Add(1)
			failures++
			l.log.Warn("commit write failed; reading back", "seq", seq, "err", err)
			l.sleep(backoff(failures))
		}
		// Someone (perhaps us) holds seq: apply it and whatever follows.
		if _, err := l.fetchApply(l.ctx, seq); err != nil {
			var unknown *UnknownEntryError
			if errors.As(err, &unknown) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat) {
				l.setFatal(err)
				return 0, nil, err
			}
			failures++
			l.sleep(backoff(failures))
		}
	}
}
