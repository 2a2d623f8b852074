// Package bench measures twoway and the bucket it runs on.
//
// Machines running benchmarks are noisy, so results are meant to be read as
// ratios against a baseline measured in the same run: Bucket measures the raw
// object store, and the higher-level benchmarks (produce, Kafka) report how
// close to it they come.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/prefixed"
)

// Defaults for zero BucketOptions fields.
const (
	DefaultObjectSize  = 1 << 20
	DefaultConcurrency = 8
	DefaultDuration    = 10 * time.Second
)

// Limits on BucketOptions: every worker holds one object in memory.
const (
	MaxObjectSize  = 1 << 30
	MaxConcurrency = 1024
)

// BucketOptions configures Bucket. Zero fields take the defaults above.
type BucketOptions struct {
	ObjectSize  int           // bytes per object
	Concurrency int           // workers issuing requests at once
	Duration    time.Duration // length of each of the three phases
}

func (o BucketOptions) withDefaults() (BucketOptions, error) {
	if o.ObjectSize == 0 {
		o.ObjectSize = DefaultObjectSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	switch {
	case o.ObjectSize < 0 || o.ObjectSize > MaxObjectSize:
		return o, fmt.Errorf("object size %d out of range: use 1 to %d bytes", o.ObjectSize, MaxObjectSize)
	case o.Concurrency < 0 || o.Concurrency > MaxConcurrency:
		return o, fmt.Errorf("concurrency %d out of range: use 1 to %d", o.Concurrency, MaxConcurrency)
	case o.Duration < 0:
		return o, fmt.Errorf("duration %v is negative", o.Duration)
	}
	return o, nil
}

// BucketResult is what Bucket measured. Latencies are in milliseconds; MB is
// 10^6 bytes.
type BucketResult struct {
	Bucket string `json:"bucket"` // bucket.Bucket.String(), never credentials

	PutMBs      float64 `json:"put_mb_s"`
	PutObjectsS float64 `json:"put_objects_s"`
	PutP50Ms    float64 `json:"put_p50_ms"`
	PutP99Ms    float64 `json:"put_p99_ms"`
	PutCount    int     `json:"put_count"`

	PutIfAbsentP50Ms float64 `json:"put_if_absent_p50_ms"`
	PutIfAbsentP99Ms float64 `json:"put_if_absent_p99_ms"`
	PutIfAbsentCount int     `json:"put_if_absent_count"`

	// Get latencies run until the last byte of the object is read.
	GetP50Ms float64 `json:"get_p50_ms"`
	GetP99Ms float64 `json:"get_p99_ms"`
	GetCount int     `json:"get_count"`

	ObjectSize  int     `json:"object_size"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"` // of each phase

	Machine Machine `json:"machine"`
}

// Bucket benchmarks b in three phases of opts.Duration each, every phase
// with opts.Concurrency workers and objects of opts.ObjectSize bytes:
//
//  1. Put: throughput and latency of writing new objects.
//  2. PutIfAbsent: latency of creating new objects, the commit log's write.
//  3. Get: latency of reading back, whole, the objects phase 1 wrote.
//
// Everything is written under a fresh prefix bench/<random>/ and deleted
// afterwards, also when the benchmark fails or ctx is cancelled. If the
// measurement succeeded and only the deletion failed, Bucket returns the
// result together with the error, so that the run is not lost. Each worker
// makes at least one call per phase, so a very short duration still yields
// numbers (if not meaningful ones).
func Bucket(ctx context.Context, b bucket.Bucket, opts BucketOptions) (res BucketResult, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return BucketResult{}, fmt.Errorf("bench: %w", err)
	}
	prefix := "bench/" + randomHex(8) + "/"
	pb, err := prefixed.Wrap(b, prefix)
	if err != nil {
		return BucketResult{}, err
	}
	defer func() {
		// Clean up even after cancellation, but not forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if cerr := deleteAll(cctx, pb, opts.Concurrency); cerr != nil && err == nil {
			err = fmt.Errorf("bench: deleting the objects under %s: %w", prefix, cerr)
		}
	}()

	res = BucketResult{
		Bucket:      b.String(),
		ObjectSize:  opts.ObjectSize,
		Concurrency: opts.Concurrency,
		DurationS:   opts.Duration.Seconds(),
		Machine:     CurrentMachine(),
	}
	size := int64(opts.ObjectSize)
	payloads := newPayloads(opts.Concurrency, opts.ObjectSize)

	// Phase 1: Put.
	written := make([][]string, opts.Concurrency)
	lat, elapsed, err := run(ctx, opts.Concurrency, opts.Duration, func(ctx context.Context, w, seq int) error {
		key := fmt.Sprintf("put/%04d-%08d", w, seq)
		if _, err := pb.Put(ctx, key, payloads.next(w, seq), size); err != nil {
			return err
		}
		written[w] = append(written[w], key)
		return nil
	})
	if err != nil {
		return BucketResult{}, fmt.Errorf("bench: put phase: %w", err)
	}
	res.PutCount = lat.Len()
	res.PutObjectsS = float64(lat.Len()) / elapsed.Seconds()
	res.PutMBs = float64(lat.Len()) * float64(size) / 1e6 / elapsed.Seconds()
	res.PutP50Ms, res.PutP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))

	// Phase 2: PutIfAbsent, each on a new key, so every call should win.
	lat, _, err = run(ctx, opts.Concurrency, opts.Duration, func(ctx context.Context, w, seq int) error {
		key := fmt.Sprintf("put-if-absent/%04d-%08d", w, seq)
		_, err := pb.PutIfAbsent(ctx, key, payloads.next(w, seq), size)
		return err
	})
	if err != nil {
		return BucketResult{}, fmt.Errorf("bench: put-if-absent phase: %w", err)
	}
	res.PutIfAbsentCount = lat.Len()
	res.PutIfAbsentP50Ms, res.PutIfAbsentP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))

	// Phase 3: Get, cycling through the objects of phase 1.
	var keys []string
	for _, ks := range written {
		keys = append(keys, ks...)
	}
	var nextKey atomic.Uint64
	lat, _, err = run(ctx, opts.Concurrency, opts.Duration, func(ctx context.Context, _, _ int) error {
		key := keys[(nextKey.Add(1)-1)%uint64(len(keys))]
		rc, _, err := pb.Get(ctx, key)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		if n != size {
			return fmt.Errorf("reading %s: got %d bytes, wrote %d", key, n, size)
		}
		return nil
	})
	if err != nil {
		return BucketResult{}, fmt.Errorf("bench: get phase: %w", err)
	}
	res.GetCount = lat.Len()
	res.GetP50Ms, res.GetP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))
	return res, nil
}

// run calls op from n workers until d has passed, each worker at least once,
// with seq counting each worker's calls from 0. It returns the latency of
// every call and the wall time until the last worker finished. The first
// error stops every worker.
func run(ctx context.Context, n int, d time.Duration, op func(ctx context.Context, worker, seq int) error) (*Latencies, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		lat     Latencies
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range n {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				t := time.Now()
				if err := op(ctx, w, seq); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
				done := time.Now()
				lat.Add(done.Sub(t))
				if !done.Before(deadline) {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return nil, elapsed, first
	}
	return &lat, elapsed, nil
}

// payloads hands each worker a buffer of random bytes whose first eight are
// rewritten per object, so that no two objects are equal (a store that
// deduplicates or compresses must not flatter the numbers).
type payloads struct {
	bufs [][]byte
}

func newPayloads(workers, size int) *payloads {
	p := &payloads{bufs: make([][]byte, workers)}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	for w := range p.bufs {
		p.bufs[w] = make([]byte, size)
		_, _ = rng.Read(p.bufs[w])
	}
	return p
}

// next returns worker w's body for call seq. The previous body must no longer
// be in use, which holds because a worker makes one call at a time.
func (p *payloads) next(w, seq int) *bytes.Reader {
	buf := p.bufs[w]
	id := uint64(w)<<40 | uint64(seq)
	for i := 0; i < 8 && i < len(buf); i++ {
		buf[i] = byte(id >> (8 * i))
	}
	return bytes.NewReader(buf)
}

// deleteAll deletes every object in b with n workers. It carries on past
// failures, so as to leave as little behind as it can, and reports how many
// there were.
func deleteAll(ctx context.Context, b bucket.Bucket, n int) error {
	keys := make(chan string)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		failed int
	)
	for range n {
		wg.Go(func() {
			for key := range keys {
				if err := b.Delete(ctx, key); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					failed++
					mu.Unlock()
				}
			}
		})
	}
	var listErr error
	for info, err := range b.List(ctx, "", "") {
		if err != nil {
			listErr = err
			break
		}
		keys <- info.Key
	}
	close(keys)
	wg.Wait()
	switch {
	case failed > 0:
		return fmt.Errorf("%d deletes failed, the first with: %w", failed, first)
	case listErr != nil:
		return listErr
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: see crypto/rand.Read
	return hex.EncodeToString(b)
}
