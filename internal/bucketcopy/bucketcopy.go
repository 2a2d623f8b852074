// Package bucketcopy copies a deployment from one bucket to another, and
// compares a copy with its source.
//
// A copy is made from a commitlog.CopySet: the newest checkpoint at or
// below a sequence number M, the commits after it up to M, and every object
// the state at M references. Each object is written at the same key with
// PutIfAbsent and read back; an object already at the destination with the
// same bytes is skipped, which makes a copy resumable. Objects go first,
// then the commits, then the checkpoint, so an interrupted copy whose
// source had a checkpoint cannot be opened by mistake. An agent opening the
// finished copy loads the checkpoint and replays the commits up to M:
// nothing the source committed after M is copied.
package bucketcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
)

// modulesPrefix holds functions' modules, each named by the SHA-256 of its
// bytes (docs/FORMAT.md).
const modulesPrefix = "modules/"

// ErrDifferentDeployment means the destination holds objects of another
// deployment (or of a copy that was started as an agent and diverged).
var ErrDifferentDeployment = errors.New("the destination holds a different deployment")

// Options tune a copy or a comparison. Zero values take the defaults noted.
type Options struct {
	// Concurrency is how many objects are copied (or compared) at once.
	// Default 8.
	Concurrency int
	// Progress, if set, is called about every ProgressEvery while the copy
	// runs (not concurrently with itself).
	Progress      func(Progress)
	ProgressEvery time.Duration // default 1s
}

func (o *Options) fill() {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
}

// Progress is how far a copy has come.
type Progress struct {
	Objects, TotalObjects int   // done (copied or skipped), and in all
	Bytes, TotalBytes     int64 // of the objects done, and in all (as listed)
	// Skipped objects were at the destination already, with the same bytes
	// (an earlier, interrupted copy wrote them).
	Skipped      int
	SkippedBytes int64
	Elapsed      time.Duration
}

// Rate is the bytes per second of the objects done so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Bytes) / p.Elapsed.Seconds()
}

// Left estimates the time left from the rate so far (0 when unknown).
func (p Progress) Left() time.Duration {
	r := p.Rate()
	if r <= 0 || p.TotalBytes <= p.Bytes {
		return 0
	}
	return time.Duration(float64(p.TotalBytes-p.Bytes) / r * float64(time.Second))
}

// Copy copies the objects of cs from src to dst. Before writing anything it
// checks that dst holds nothing or a part of this same deployment (an
// interrupted copy): a commit or checkpoint of dst that differs from the
// source's, or is newer than cs.Seq, is ErrDifferentDeployment.
func Copy(ctx context.Context, src, dst bucket.Bucket, cs commitlog.CopySet, opts Options) (Progress, error) {
	opts.fill()
	start := time.Now()
	verified, err := checkDestination(ctx, src, dst, cs, opts.Concurrency)
	if err != nil {
		return Progress{}, err
	}
	sizes, err := listSizes(ctx, src, cs.Keys)
	if err != nil {
		return Progress{}, err
	}
	c := &copier{src: src, dst: dst, cs: cs, start: start}
	c.totalObjects = len(cs.Keys)
	for _, k := range cs.Keys {
		c.totalBytes += sizes[k]
	}

	// Objects first, then the commits after the checkpoint, then the
	// checkpoint: until it is there, the copy does not open.
	cpKey := ""
	if cs.Checkpoint > 0 {
		cpKey = commitlog.CheckpointKey(cs.Checkpoint)
	}
	var objects, commits, last []string
	for _, k := range cs.Keys {
		switch s, ok := seqOf(k, commitlog.LogPrefix); {
		case k == cpKey:
			last = append(last, k)
		case ok && s > cs.Checkpoint:
			commits = append(commits, k)
		default:
			objects = append(objects, k)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	if opts.Progress != nil {
		wg.Go(func() {
			t := time.NewTicker(opts.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					opts.Progress(c.progress())
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	for _, phase := range [][]string{objects, commits, last} {
		if err := forEach(ctx, phase, opts.Concurrency, func(ctx context.Context, key string) error {
			if n, ok := verified[key]; ok {
				c.done(n, true)
				return nil
			}
			return c.copyOne(ctx, key)
		}); err != nil {
			return c.progress(), err
		}
	}
	return c.progress(), nil
}

type copier struct {
	src, dst     bucket.Bucket
	cs           commitlog.CopySet
	start        time.Time
	totalObjects int
	totalBytes   int64

	objects, skipped   atomic.Int64
	bytes, skippedSize atomic.Int64
}

func (c *copier) done(n int64, skipped bool) {
	if skipped {
		c.skipped.Add(1)
		c.skippedSize.Add(n)
	}
	c.bytes.Add(n)
	c.objects.Add(1)
}

func (c *copier) progress() Progress {
	return Progress{
		Objects: int(c.objects.Load()), TotalObjects: c.totalObjects,
		Bytes: c.bytes.Load(), TotalBytes: max(c.totalBytes, c.bytes.Load()),
		Skipped: int(c.skipped.Load()), SkippedBytes: c.skippedSize.Load(),
		Elapsed: time.Since(c.start),
	}
}

// copyOne copies one object, retrying transient failures.
func (c *copier) copyOne(ctx context.Context, key string) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		var n int64
		var skipped bool
		n, skipped, err = c.tryCopy(ctx, key)
		if err == nil {
			c.done(n, skipped)
			return nil
		}
		if permanent(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// permanentError is a failure that a retry would only repeat.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) bool {
	_, ok := errors.AsType[*permanentError](err)
	return ok
}

func (c *copier) tryCopy(ctx context.Context, key string) (int64, bool, error) {
	data, _, err := bucket.ReadAll(ctx, c.src, key)
	if bucket.IsNotFound(err) {
		return 0, false, &permanentError{fmt.Errorf("%s is gone from the source (collected since the copy set was taken? the source keeps objects unreferenced for its grace period): run the copy again", key)}
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s from the source: %w", key, err)
	}
	if err := c.check(key, data); err != nil {
		return 0, false, &permanentError{fmt.Errorf("the source's object is corrupt: %w", err)}
	}
	n := int64(len(data))
	_, err = c.dst.PutIfAbsent(ctx, key, bytes.NewReader(data), n)
	skipped := false
	switch {
	case bucket.IsPrecondition(err):
		skipped = true
	case err != nil:
		return 0, false, fmt.Errorf("write %s: %w", key, err)
	}
	// Read back what the destination holds: it must be the source's bytes
	// (compared as they are: hashing both would cost more than the copy).
	got, _, err := bucket.ReadAll(ctx, c.dst, key)
	if err != nil {
		return 0, false, fmt.Errorf("read back %s: %w", key, err)
	}
	if !bytes.Equal(got, data) {
		if skipped {
			return 0, false, &permanentError{fmt.Errorf("%w: its %s differs from the source's (%d bytes, the source's %d)", ErrDifferentDeployment, key, len(got), n)}
		}
		return 0, false, fmt.Errorf("the copy of %s reads back different bytes (%d, wrote %d)", key, len(got), n)
	}
	return n, skipped, nil
}

// check verifies the checksums an object carries or is named by.
func (c *copier) check(key string, data []byte) error {
	if err := commitlog.CheckObject(key, data); err != nil {
		return err
	}
	if sum, ok := c.cs.Snapshots[key]; ok && (int64(len(data)) != sum.Size || commitlog.CRC(data) != sum.CRC) {
		return fmt.Errorf("%s is not the object its checkpoint names (%d bytes, want %d; CRC mismatch)", key, len(data), sum.Size)
	}
	if name, ok := strings.CutPrefix(key, modulesPrefix); ok && len(name) == 64 {
		if s := sha256.Sum256(data); hex.EncodeToString(s[:]) != name {
			return fmt.Errorf("%s: the module's SHA-256 is %x", key, s)
		}
	}
	return nil
}

// checkDestination refuses a destination that holds another deployment. It
// compares every commit and checkpoint dst holds with the source's and
// returns those found identical (with their sizes), which need no copy.
func checkDestination(ctx context.Context, src, dst bucket.Bucket, cs commitlog.CopySet, conc int) (map[string]int64, error) {
	var keys []string
	for _, prefix := range []string{commitlog.LogPrefix, commitlog.CheckpointPrefix} {
		for info, err := range dst.List(ctx, prefix, "") {
			if err != nil {
				return nil, fmt.Errorf("list the destination: %w", err)
			}
			s, ok := seqOf(info.Key, prefix)
			if !ok {
				continue
			}
			if s > cs.Seq {
				return nil, fmt.Errorf("%w: it has %s, newer than the source's commit %d this copy is as of (was an agent started on an earlier copy?); nothing was written: empty it or copy elsewhere", ErrDifferentDeployment, info.Key, cs.Seq)
			}
			keys = append(keys, info.Key)
		}
	}
	verified := map[string]int64{}
	if len(keys) == 0 {
		return verified, nil
	}
	var mu sync.Mutex
	var differ []string
	err := forEach(ctx, keys, conc, func(ctx context.Context, key string) error {
		same, n, err := sameObject(ctx, src, dst, key)
		if bucket.IsNotFound(err) {
			return nil // collected at the source: cannot tell
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if same {
			verified[key] = n
		} else {
			differ = append(differ, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(differ) > 0 {
		sort.Strings(differ)
		return nil, fmt.Errorf("%w: %s differs from the source's (%d of its %d commits and checkpoints differ); nothing was written", ErrDifferentDeployment, differ[0], len(differ), len(keys))
	}
	if len(verified) == 0 {
		return nil, fmt.Errorf("%w: none of its %d commits and checkpoints is in the source (%s...); nothing was written", ErrDifferentDeployment, len(keys), keys[0])
	}
	return verified, nil
}

// sameObject reads key from both buckets and reports whether the bytes are
// the same, and how many the source's has. A missing object at the source
// is ErrNotFound; one missing at the destination is not the same.
func sameObject(ctx context.Context, src, dst bucket.Bucket, key string) (bool, int64, error) {
	a, _, err := bucket.ReadAll(ctx, src, key)
	if err != nil {
		return false, 0, err
	}
	b, _, err := bucket.ReadAll(ctx, dst, key)
	if bucket.IsNotFound(err) {
		return false, int64(len(a)), nil
	}
	if err != nil {
		return false, 0, err
	}
	return bytes.Equal(a, b), int64(len(a)), nil
}

// listSizes lists the source under the top-level prefixes of keys and
// returns the sizes of the keys found (for progress; a key not listed
// counts as 0 bytes until copied).
func listSizes(ctx context.Context, b bucket.Bucket, keys []string) (map[string]int64, error) {
	want := map[string]bool{}
	prefixes := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		if i := strings.IndexByte(k, '/'); i > 0 {
			prefixes[k[:i+1]] = true
		}
	}
	sizes := map[string]int64{}
	for p := range prefixes {
		for info, err := range b.List(ctx, p, "") {
			if err != nil {
				return nil, fmt.Errorf("list the source: %w", err)
			}
			if want[info.Key] {
				sizes[info.Key] = info.Size
			}
		}
	}
	return sizes, nil
}

// forEach runs f for each key, conc at a time, and returns the first error
// (the others are cancelled).
func forEach(ctx context.Context, keys []string, conc int, f func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(conc, len(keys)) {
		wg.Go(func() {
			for k := range work {
				if err := f(ctx, k); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// seqOf parses the sequence number of a log or checkpoint key.
func seqOf(key, prefix string) (uint64, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || len(rest) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}
