package commitlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/bucket"
)

// sealLoop seals pending proposals into batches for commitLoop: small
// batches are kept for inlining, larger ones start uploading as a chunk
// right away so uploads overlap the sequencing of earlier commits.
//
// It is a leader/follower group commit. When nothing is in flight (no
// sealed batch waiting for its commit), a proposal is sealed at once;
// proposals that arrive while a commit is in flight gather and are sealed
// together when it ends, or as soon as a chunk's worth is pending. Linger,
// when set, adds a fixed wait after the first proposal, which trades
// latency for fewer PUTs.
func (l *Log) sealLoop() {
	defer l.wg.Done()
	defer close(l.sealed)
	// When the log stops, nothing pending will be sealed: fail it at once,
	// with the error that stopped the log if there is one.
	defer func() {
		if err := l.Err(); err != nil {
			l.failPending(err)
		} else {
			l.failPending(errClosedNotCommitted)
		}
	}()
	full := func() bool {
		l.pendMu.Lock()
		defer l.pendMu.Unlock()
		return l.pendBytes >= l.opts.ChunkMax
	}
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.pendWake:
		}
		if l.opts.Linger > 0 {
			deadline := time.Now().Add(l.opts.Linger)
			for !full() {
				left := time.Until(deadline)
				if left <= 0 {
					break
				}
				select {
				case <-l.ctx.Done():
					return
				case <-l.pendWake:
				case <-time.After(left):
				}
			}
		} else {
			for l.inflight.Load() > 0 && !full() {
				select {
				case <-l.ctx.Done():
					return
				case <-l.idle:
				case <-l.pendWake:
				}
			}
		}
		for {
			props := l.takePending()
			if len(props) == 0 {
				break
			}
			sb := l.seal(props)
			l.inflight.Add(1)
			select {
			case l.sealed <- sb:
			case <-l.ctx.Done():
				err := l.Err()
				if err == nil {
					err = errClosedNotCommitted
				}
				for _, p := range props {
					p.err = err
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
	// A chunk must be committed within the freshness window of the start
	// of its upload, or left to garbage collection.
	for _, p := range props {
		p.limit(sb.start.Add(l.w))
	}
	key := fmt.Sprintf("%s%020d-%s-%d", ChunkPrefix, time.Now().UnixMilli(), l.opts.AgentID, l.chunkN.Add(1))
	for i := range sb.refs {
		for j := range sb.refs[i] {
			if r := &sb.refs[i][j]; len(props[i].entries[j].Blob) > 0 {
				r.Key, r.Off = key, r.Off+int64(base)
			}
		}
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
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
// refs, for owners that write data outside the group commit (compaction,
// large keyed values). A proposal referencing the chunk is committed only
// by a write started within Grace/4 of the call; later it is refused with
// ErrNotCommitted (and the chunk is left to garbage collection). The log
// enforces that for every proposal that carries such a ref.
func (l *Log) PutChunk(ctx context.Context, blobs [][]byte) ([]Ref, error) {
	start := time.Now()
	buf := chunkHeader()
	refs := make([]Ref, len(blobs))
	key := fmt.Sprintf("%s%020d-%s-%d", ChunkPrefix, start.UnixMilli(), l.opts.AgentID, l.chunkN.Add(1))
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

// writtenDeadline is when a proposal referencing key stops being safe to
// commit, for a chunk this agent wrote with PutChunk (its name carries the
// time its upload started); zero for other objects, which the proposer
// found referenced in the state and so are not garbage.
func (l *Log) writtenDeadline(key string) time.Time {
	rest, ok := strings.CutPrefix(key, ChunkPrefix)
	if !ok || len(rest) < 21 || rest[20] != '-' {
		return time.Time{}
	}
	if !strings.HasPrefix(rest[21:], l.opts.AgentID+"-") {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(rest[:20], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).Add(l.w)
}

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
		if l.inflight.Add(-int64(len(batch))) == 0 {
			select {
			case l.idle <- struct{}{}:
			default:
			}
		}
	}
}

// commitBatch builds one commit from the batches and sequences it.
func (l *Log) commitBatch(batch []*sealedBatch) {
	var inline []byte
	var props []*proposal
	var entries [][]Entry
	for _, sb := range batch {
		if sb.err != nil {
			for _, p := range sb.props {
				p.err = sb.err
				close(p.done)
			}
			continue
		}
		shift := int64(len(inline))
		inline = append(inline, sb.inline...)
		for i, p := range sb.props {
			es := make([]Entry, len(p.entries))
			for j, e := range p.entries {
				r := sb.refs[i][j]
				if r.Key == "" && r.Len > 0 {
					r.Off += shift
				}
				es[j] = Entry{Type: e.Type, Data: e.Data, Ref: r}
			}
			props = append(props, p)
			entries = append(entries, es)
		}
	}
	if len(props) == 0 {
		return
	}
	l.sequence(props, entries, inline)
}

// finish hands a proposal its outcome.
func finish(p *proposal, seq uint64, results []any, err error) {
	p.seq, p.results, p.err = seq, results, err
	close(p.done)
}

// sequence writes the commit holding props (entries[i] are props[i]'s,
// refs resolved) at the next free sequence number, applies it and hands
// every proposal its outcome. It returns only when the outcome is known (or
// the log closes).
//
// Proposals whose deadline has passed are dropped from the commit before
// an attempt, never after: while a write whose outcome is unknown may still
// land at the sequence number being tried, the body stays as it was.
func (l *Log) sequence(props []*proposal, entries [][]Entry, inline []byte) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	l.applyMu.Lock()
	l.inflightID, l.inflightResults, l.inflightSeq = id, nil, 0
	l.applyMu.Unlock()
	defer func() {
		l.applyMu.Lock()
		l.inflightID, l.inflightResults = [16]byte{}, nil
		l.applyMu.Unlock()
	}()
	done := func() (uint64, []any, bool) {
		l.applyMu.Lock()
		defer l.applyMu.Unlock()
		return l.inflightSeq, l.inflightResults, l.inflightSeq != 0
	}
	failAll := func(err error) {
		for _, p := range props {
			finish(p, 0, nil, err)
		}
	}
	failures := 0
	// unresolved is the sequence number of a write of ours whose outcome we
	// have not learned (0: none). It is resolved when we read what is there.
	var unresolved uint64
	var body []byte
	bodySeq := uint64(0)
	for {
		if err := l.Err(); err != nil {
			if unresolved != 0 {
				failAll(fmt.Errorf("%w: %w", ErrOutcomeUnknown, err))
			} else {
				failAll(err)
			}
			return
		}
		if l.ctx.Err() != nil {
			if unresolved != 0 {
				failAll(ErrClosed)
			} else {
				failAll(errClosedNotCommitted)
			}
			return
		}
		if seq, res, ok := done(); ok {
			k := 0
			for _, p := range props {
				n := len(p.entries)
				finish(p, seq, res[k:k+n], nil)
				k += n
			}
			return
		}
		// Drop what is too late to commit safely.
		late := func(p *proposal) bool {
			return !p.notAfter.IsZero() && time.Until(p.notAfter) < l.opts.CommitTimeout
		}
		if slices.ContainsFunc(props, late) {
			if unresolved != 0 {
				failAll(fmt.Errorf("%w: an earlier write of this commit may have landed, and it is too late to find out safely", ErrOutcomeUnknown))
				return
			}
			var keepP []*proposal
			var keepE [][]Entry
			for i, p := range props {
				if late(p) {
					l.Stats.TooLate.Add(1)
					finish(p, 0, nil, fmt.Errorf("%w: too late to commit safely (its data or its task's deadline is too old); retry", ErrNotCommitted))
					continue
				}
				keepP, keepE = append(keepP, p), append(keepE, entries[i])
			}
			props, entries, bodySeq = keepP, keepE, 0
			if len(props) == 0 {
				return
			}
		}
		if l.freshFor() < l.opts.CommitTimeout {
			if err := l.catchUpAll(l.ctx); err != nil {
				if isFatal(err) {
					l.setFatal(l.Applied()+1, err)
					continue
				}
				failures++
				l.noteErr(err)
				l.log.Warn("commit: cannot confirm the tail of the log; retrying", "err", err)
				l.sleep(backoff(failures))
				continue
			}
		}
		seq := l.Applied() + 1
		if unresolved != 0 && seq != unresolved {
			// Someone else's commit is at the sequence number of our
			// unknown write (we applied it), so that write did not land.
			unresolved = 0
		}
		if bodySeq != seq {
			var all []Entry
			for _, es := range entries {
				all = append(all, es...)
			}
			body, bodySeq = encodeCommit(seq, id, all, inline), seq
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(l.ctx, l.opts.CommitTimeout)
		_, err := l.b.PutIfAbsent(ctx, LogKey(seq), bytes.NewReader(body), int64(len(body)))
		cancel()
		switch {
		case err == nil:
			l.confirmTail(start)
			l.Stats.Commits.Add(1)
			if err := l.applyBytes(seq, body); err != nil {
				l.setFatal(seq, err)
			}
			l.announce(seq)
			continue // done() picks up the results
		case bucket.IsPrecondition(err):
			l.Stats.Conflicts.Add(1)
		default:
			// Unknown outcome: read back what is at seq.
			unresolved = seq
			l.Stats.UnknownOutcome.Add(1)
			l.noteErr(err)
			failures++
			l.log.Warn("commit write failed; reading back", "seq", seq, "err", err)
			l.sleep(backoff(failures))
		}
		// Someone (perhaps us) holds seq: apply it and whatever follows.
		found, err := l.fetchApply(l.ctx, seq)
		if err != nil {
			if isFatal(err) {
				l.setFatal(seq, err)
				continue
			}
			failures++
			l.noteErr(err)
			l.sleep(backoff(failures))
			continue
		}
		if found && unresolved == seq {
			// What is at seq is applied: done() tells whether it was ours.
			unresolved = 0
		}
	}
}
