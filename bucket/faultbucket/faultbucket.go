// Package faultbucket wraps a bucket.Bucket with injected latency and
// injected failures, for tests that must show twoway survives a slow or
// unreliable object store.
//
// Rules say which calls are delayed and which fail:
//
//	fb := faultbucket.Wrap(b, faultbucket.WithSeed(7), faultbucket.WithRules(
//		// every write takes 5-10 ms
//		faultbucket.Rule{Op: faultbucket.OpPut, Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond},
//		// the third PutIfAbsent creates its object, then reports an error
//		faultbucket.Rule{Op: faultbucket.OpPutIfAbsent, FailNth: 3, UnknownOutcome: true},
//		// one Get in ten fails
//		faultbucket.Rule{Op: faultbucket.OpGet, FailRate: 0.1},
//	))
//
// An injected failure is a *bucket.OpError wrapping ErrInjected, never
// bucket.ErrNotFound or bucket.ErrPrecondition, so a test can tell the faults
// it asked for from real ones. An "unknown outcome" failure is the case the
// bucket contract warns about: the write happened, the caller was told it
// failed.
//
// Rules can be replaced at any time with SetRules; a Bucket is safe for
// concurrent use.
package faultbucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
)

// ErrInjected is wrapped by every failure the Bucket injects.
var ErrInjected = errors.New("injected fault")

// Op names a bucket operation, as bucket.OpError does.
type Op string

// The operations a Rule can target. OpAny targets all of them.
const (
	OpGet         Op = "get"
	OpGetRange    Op = "get-range"
	OpStat        Op = "stat"
	OpPut         Op = "put"
	OpPutIfAbsent Op = "put-if-absent"
	OpPutIfMatch  Op = "put-if-match"
	OpDelete      Op = "delete"
	OpList        Op = "list"
	OpAny         Op = "*"
)

// Ops lists every operation (not OpAny).
var Ops = []Op{OpGet, OpGetRange, OpStat, OpPut, OpPutIfAbsent, OpPutIfMatch, OpDelete, OpList}

func (op Op) valid() bool {
	if op == OpAny {
		return true
	}
	for _, o := range Ops {
		if op == o {
			return true
		}
	}
	return false
}

// A Rule delays and fails calls of one operation (or of all, with OpAny).
// Several rules may match a call: their latencies add up, and the call fails
// if any of them says so (the first such rule decides how).
type Rule struct {
	Op Op

	// Latency delays every matching call, plus a uniformly random extra
	// delay in [0, Jitter). The delay comes before the call reaches the
	// wrapped bucket and is cut short if the context ends.
	Latency, Jitter time.Duration

	// FailNth fails the Nth matching call (1 for the first) after the rule
	// was set, and only that one. Zero disables it.
	FailNth int
	// FailRate fails each matching call with this probability, drawn from
	// the Bucket's seeded random source. Zero disables it.
	FailRate float64

	// UnknownOutcome makes the failures of this rule happen after the call
	// has reached the wrapped bucket and succeeded: a write (or Delete) takes
	// effect and the caller gets an error anyway. Without it a failing call
	// never reaches the wrapped bucket.
	UnknownOutcome bool
}

func (r Rule) validate() error {
	switch {
	case !r.Op.valid():
		return fmt.Errorf("faultbucket: rule for unknown operation %q", r.Op)
	case r.Latency < 0 || r.Jitter < 0:
		return fmt.Errorf("faultbucket: rule for %s: negative latency", r.Op)
	case r.FailNth < 0:
		return fmt.Errorf("faultbucket: rule for %s: negative FailNth", r.Op)
	case !(r.FailRate >= 0 && r.FailRate <= 1):
		return fmt.Errorf("faultbucket: rule for %s: FailRate %v outside [0, 1]", r.Op, r.FailRate)
	}
	return nil
}

// Counts says what happened to the calls of one operation.
type Counts struct {
	Calls int64 // calls made on the Bucket
	// Failed counts injected failures that never reached the wrapped bucket.
	Failed int64
	// Unknown counts calls that reached the wrapped bucket, succeeded there,
	// and were reported as failed.
	Unknown int64
}

// Injected is the number of injected failures of either kind.
func (c Counts) Injected() int64 { return c.Failed + c.Unknown }

// Option configures Wrap.
type Option func(*Bucket)

// WithSeed seeds the random source behind Jitter and FailRate. Without it the
// seed is 0: runs are repeatable unless the test chooses otherwise (with
// concurrent callers, which call draws which number still varies).
func WithSeed(seed uint64) Option {
	return func(b *Bucket) { b.rng = rand.New(rand.NewPCG(seed, seed)) }
}

// WithRules sets the initial rules.
func WithRules(rules ...Rule) Option {
	return func(b *Bucket) {
		if err := b.SetRules(rules...); err != nil {
			panic(err)
		}
	}
}

// Bucket is a bucket.Bucket with injected latency and failures.
type Bucket struct {
	inner bucket.Bucket

	mu     sync.Mutex
	rng    *rand.Rand
	rules  []rule
	counts map[Op]*Counts
}

type rule struct {
	Rule
	seen int // matching calls since the rule was set
}

var _ bucket.Bucket = (*Bucket)(nil)

// Wrap returns b with the given options. It panics if a rule is invalid (see
// SetRules).
func Wrap(b bucket.Bucket, opts ...Option) *Bucket {
	fb := &Bucket{
		inner:  b,
		rng:    rand.New(rand.NewPCG(0, 0)),
		counts: make(map[Op]*Counts, len(Ops)),
	}
	for _, op := range Ops {
		fb.counts[op] = new(Counts)
	}
	for _, opt := range opts {
		opt(fb)
	}
	return fb
}

// SetRules replaces all rules; no rules means no faults. FailNth counts
// start again from the call after SetRules. It fails, changing nothing, if a
// rule names an unknown operation or has a negative duration or FailNth, or
// a FailRate outside [0, 1].
func (b *Bucket) SetRules(rules ...Rule) error {
	rs := make([]rule, len(rules))
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return err
		}
		rs[i] = rule{Rule: r}
	}
	b.mu.Lock()
	b.rules = rs
	b.mu.Unlock()
	return nil
}

// Counts returns the counts of one operation since Wrap.
func (b *Bucket) Counts(op Op) Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.counts[op]; ok {
		return *c
	}
	var total Counts
	if op == OpAny {
		for _, c := range b.counts {
			total.Calls += c.Calls
			total.Failed += c.Failed
			total.Unknown += c.Unknown
		}
	}
	return total
}

// Injected returns the number of failures injected into all operations.
func (b *Bucket) Injected() int64 { return b.Counts(OpAny).Injected() }

// Unwrap returns the bucket b wraps.
func (b *Bucket) Unwrap() bucket.Bucket { return b.inner }

type fault int

const (
	none fault = iota
	failBefore
	failAfter
)

// decide applies the rules to one call: how long to wait and how to fail.
func (b *Bucket) decide(op Op) (time.Duration, fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counts[op]
	c.Calls++
	var delay time.Duration
	f := none
	for i := range b.rules {
		r := &b.rules[i]
		if r.Op != op && r.Op != OpAny {
			continue
		}
		r.seen++
		delay += r.Latency
		if r.Jitter > 0 {
			delay += time.Duration(b.rng.Int64N(int64(r.Jitter)))
		}
		hit := r.FailNth > 0 && r.seen == r.FailNth
		if r.FailRate > 0 && b.rng.Float64() < r.FailRate {
			hit = true
		}
		if hit && f == none {
			f = failBefore
			if r.UnknownOutcome {
				f = failAfter
			}
		}
	}
	switch f {
	case failBefore:
		c.Failed++
	case failAfter:
		c.Unknown++
	}
	return delay, f
}

// call runs fn under the rules for op: it waits, then either fails without
// calling fn, or calls fn and, for an unknown outcome, reports a failure
// anyway when fn succeeded.
func (b *Bucket) call(ctx context.Context, op Op, key string, fn func() error) error {
	delay, f := b.decide(op)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return b.opError(op, key, ctx.Err())
		}
	}
	if f == failBefore {
		return b.opError(op, key, ErrInjected)
	}
	if err := fn(); err != nil {
		return err
	}
	if f == failAfter {
		return b.opError(op, key, fmt.Errorf("%w (after the %s went through)", ErrInjected, op))
	}
	return nil
}

func (b *Bucket) opError(op Op, key string, err error) error {
	return &bucket.OpError{Bucket: b.String(), Op: string(op), Key: key, Err: err}
}

func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, bucket.Info, error) {
	var rc io.ReadCloser
	var info bucket.Info
	err := b.call(ctx, OpGet, key, func() (err error) {
		rc, info, err = b.inner.Get(ctx, key)
		return err
	})
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, bucket.Info{}, err
	}
	return rc, info, nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	var data []byte
	err := b.call(ctx, OpGetRange, key, func() (err error) {
		data, err = b.inner.GetRange(ctx, key, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

func (b *Bucket) Stat(ctx context.Context, key string) (bucket.Info, error) {
	var info bucket.Info
	err := b.call(ctx, OpStat, key, func() (err error) {
		info, err = b.inner.Stat(ctx, key)
		return err
	})
	if err != nil {
		return bucket.Info{}, err
	}
	return info, nil
}

func (b *Bucket) Put(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	var info bucket.Info
	err := b.call(ctx, OpPut, key, func() (err error) {
		info, err = b.inner.Put(ctx, key, body, size)
		return err
	})
	if err != nil {
		return bucket.Info{}, err
	}
	return info, nil
}

func (b *Bucket) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	var info bucket.Info
	err := b.call(ctx, OpPutIfAbsent, key, func() (err error) {
		info, err = b.inner.PutIfAbsent(ctx, key, body, size)
		return err
	})
	if err != nil {
		return bucket.Info{}, err
	}
	return info, nil
}

func (b *Bucket) PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (bucket.Info, error) {
	var info bucket.Info
	err := b.call(ctx, OpPutIfMatch, key, func() (err error) {
		info, err = b.inner.PutIfMatch(ctx, key, body, size, version)
		return err
	})
	if err != nil {
		return bucket.Info{}, err
	}
	return info, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	return b.call(ctx, OpDelete, key, func() error { return b.inner.Delete(ctx, key) })
}

// List applies the rules once per listing, before the first object. A
// failure yields one (Info{}, err); with UnknownOutcome the whole listing is
// yielded first and the error last.
func (b *Bucket) List(ctx context.Context, prefix, startAfter string) iter.Seq2[bucket.Info, error] {
	return func(yield func(bucket.Info, error) bool) {
		stopped := false
		err := b.call(ctx, OpList, prefix, func() error {
			for info, err := range b.inner.List(ctx, prefix, startAfter) {
				if !yield(info, err) {
					stopped = true
					return nil
				}
				if err != nil {
					// The listing has ended with its own error.
					stopped = true
					return nil
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield(bucket.Info{}, err)
		}
	}
}

func (b *Bucket) String() string { return b.inner.String() }
