// Package instrument wraps a bucket.Bucket with Prometheus metrics and cheap
// in-process counters.
//
// Every operation is counted by result, timed, and its payload bytes are
// added up:
//
//	twoway_bucket_requests_total{op,result}          result: ok, not_found, precondition, error
//	twoway_bucket_bytes_total{op,direction}          direction: read, written
//	twoway_bucket_request_duration_seconds{op}       histogram
//
// op is one of get, get-range, stat, put, put-if-absent, put-if-match,
// delete, list: the names bucket.OpError uses.
//
// The Prometheus collectors are shared by every wrapper registered on the
// same Registerer, so the series add up over all the buckets a process
// wraps. The in-process counters (Counts, Bytes) belong to one wrapper: a
// benchmark reads them before and after a run without scraping anything.
package instrument

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
)

// Operation names, as used in the op label and as keys of Counts.
const (
	OpGet         = "get"
	OpGetRange    = "get-range"
	OpStat        = "stat"
	OpPut         = "put"
	OpPutIfAbsent = "put-if-absent"
	OpPutIfMatch  = "put-if-match"
	OpDelete      = "delete"
	OpList        = "list"
)

// Values of the result label.
const (
	ResultOK           = "ok"
	ResultNotFound     = "not_found"
	ResultPrecondition = "precondition"
	ResultError        = "error"
)

type op int

const (
	get op = iota
	getRange
	stat
	put
	putIfAbsent
	putIfMatch
	del
	list
	numOps
)

var opNames = [numOps]string{OpGet, OpGetRange, OpStat, OpPut, OpPutIfAbsent, OpPutIfMatch, OpDelete, OpList}

type result int

const (
	ok result = iota
	notFound
	precondition
	failed
	numResults
)

var resultNames = [numResults]string{ResultOK, ResultNotFound, ResultPrecondition, ResultError}

func classify(err error) result {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, bucket.ErrNotFound):
		return notFound
	case errors.Is(err, bucket.ErrPrecondition):
		return precondition
	default:
		return failed
	}
}

// collectors are the Prometheus vectors, possibly shared with other wrappers
// on the same registry.
type collectors struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newCollectors(reg prometheus.Registerer) collectors {
	c := collectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twoway_bucket_requests_total",
			Help: "Bucket operations by operation and result (ok, not_found, precondition, error).",
		}, []string{"op", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twoway_bucket_bytes_total",
			Help: "Object bytes read from and written to the bucket, by operation and direction.",
		}, []string{"op", "direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "twoway_bucket_request_duration_seconds",
			Help: "Duration of bucket operations; for get, until the object is open (not until it is read).",
			// 0.5 ms (a local disk) to about 16 s (a struggling remote store).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op"}),
	}
	if reg != nil {
		c.requests = register(reg, c.requests)
		c.bytes = register(reg, c.bytes)
		c.duration = register(reg, c.duration)
	}
	return c
}

// register registers c, or returns the equal collector registered before, so
// that wrapping several buckets on one registry shares the series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, isAre := errors.AsType[prometheus.AlreadyRegisteredError](err); isAre {
		if existing, sameType := are.ExistingCollector.(C); sameType {
			return existing
		}
	}
	// A different collector owns one of our metric names: a programming
	// error of the same kind prometheus.MustRegister panics on.
	panic(fmt.Sprintf("instrument: registering bucket metrics: %v", err))
}

// opMetrics caches the labelled children of one operation, so that the hot
// path does no label lookups.
type opMetrics struct {
	results  [numResults]prometheus.Counter
	read     prometheus.Counter
	written  prometheus.Counter
	duration prometheus.Observer

	calls        atomic.Int64
	bytesRead    atomic.Int64
	bytesWritten atomic.Int64
}

// Bucket is a bucket.Bucket that records metrics about the bucket it wraps.
type Bucket struct {
	inner bucket.Bucket
	ops   [numOps]*opMetrics
}

var _ bucket.Bucket = (*Bucket)(nil)

// Wrap returns b instrumented with metrics registered on reg. Wrapping again
// with the same reg (another bucket, or the same one) reuses the collectors
// already registered there. A nil reg registers nothing: only the in-process
// counters are kept.
//
// Wrap panics if reg holds a different metric under one of the names above.
func Wrap(b bucket.Bucket, reg prometheus.Registerer) *Bucket {
	c := newCollectors(reg)
	w := &Bucket{inner: b}
	for o := range numOps {
		name := opNames[o]
		m := &opMetrics{
			read:     c.bytes.WithLabelValues(name, "read"),
			written:  c.bytes.WithLabelValues(name, "written"),
			duration: c.duration.WithLabelValues(name),
		}
		// Creating every child up front makes all series visible at zero,
		// so rates and alerts work before the first failure happens.
		for r := range numResults {
			m.results[r] = c.requests.WithLabelValues(name, resultNames[r])
		}
		w.ops[o] = m
	}
	return w
}

// Unwrap returns the bucket w wraps.
func (w *Bucket) Unwrap() bucket.Bucket { return w.inner }

// Counts returns how many calls of each operation this wrapper has seen,
// whatever their result, keyed by operation name (OpPut, ...). Every
// operation has an entry.
func (w *Bucket) Counts() map[string]int64 {
	counts := make(map[string]int64, numOps)
	for o, m := range w.ops {
		counts[opNames[o]] = m.calls.Load()
	}
	return counts
}

// Writes returns the number of Put, PutIfAbsent and PutIfMatch calls this
// wrapper has seen: the figure object stores bill for and rate-limit.
func (w *Bucket) Writes() int64 {
	return w.ops[put].calls.Load() + w.ops[putIfAbsent].calls.Load() + w.ops[putIfMatch].calls.Load()
}

// Bytes returns the object bytes read (Get streams as they are consumed, and
// GetRange) and written (successful writes) through this wrapper.
func (w *Bucket) Bytes() (read, written int64) {
	for _, m := range w.ops {
		read += m.bytesRead.Load()
		written += m.bytesWritten.Load()
	}
	return read, written
}

// done records one finished call of o.
func (w *Bucket) done(o op, start time.Time, err error) {
	m := w.ops[o]
	m.calls.Add(1)
	m.results[classify(err)].Inc()
	m.duration.Observe(time.Since(start).Seconds())
}

func (w *Bucket) addRead(o op, n int64) {
	if n > 0 {
		m := w.ops[o]
		m.bytesRead.Add(n)
		m.read.Add(float64(n))
	}
}

func (w *Bucket) addWritten(o op, n int64) {
	if n > 0 {
		m := w.ops[o]
		m.bytesWritten.Add(n)
		m.written.Add(float64(n))
	}
}

// Get counts the request when the object is open; the bytes are counted as
// the caller reads them.
func (w *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, bucket.Info, error) {
	start := time.Now()
	rc, info, err := w.inner.Get(ctx, key)
	w.done(get, start, err)
	if err != nil {
		return rc, info, err
	}
	return &countingReader{rc: rc, w: w}, info, nil
}

func (w *Bucket) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	start := time.Now()
	data, err := w.inner.GetRange(ctx, key, offset, length)
	w.done(getRange, start, err)
	w.addRead(getRange, int64(len(data)))
	return data, err
}

func (w *Bucket) Stat(ctx context.Context, key string) (bucket.Info, error) {
	start := time.Now()
	info, err := w.inner.Stat(ctx, key)
	w.done(stat, start, err)
	return info, err
}

// Put and the conditional writes count size as written only on success: the
// body is passed through untouched (a backend may need it to stay seekable),
// and a failed write stores nothing the caller can rely on.
func (w *Bucket) Put(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	start := time.Now()
	info, err := w.inner.Put(ctx, key, body, size)
	w.done(put, start, err)
	if err == nil {
		w.addWritten(put, size)
	}
	return info, err
}

func (w *Bucket) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	start := time.Now()
	info, err := w.inner.PutIfAbsent(ctx, key, body, size)
	w.done(putIfAbsent, start, err)
	if err == nil {
		w.addWritten(putIfAbsent, size)
	}
	return info, err
}

func (w *Bucket) PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (bucket.Info, error) {
	start := time.Now()
	info, err := w.inner.PutIfMatch(ctx, key, body, size, version)
	w.done(putIfMatch, start, err)
	if err == nil {
		w.addWritten(putIfMatch, size)
	}
	return info, err
}

func (w *Bucket) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := w.inner.Delete(ctx, key)
	w.done(del, start, err)
	return err
}

// List counts one request per listing, however many pages the backend
// fetches. Its duration excludes the time the caller spends in the loop body,
// and a listing the caller stops early counts as ok.
func (w *Bucket) List(ctx context.Context, prefix, startAfter string) iter.Seq2[bucket.Info, error] {
	return func(yield func(bucket.Info, error) bool) {
		start := time.Now()
		var inCaller time.Duration
		var listErr error
		for info, err := range w.inner.List(ctx, prefix, startAfter) {
			if err != nil {
				listErr = err
			}
			t := time.Now()
			more := yield(info, err)
			inCaller += time.Since(t)
			if !more {
				break
			}
		}
		m := w.ops[list]
		m.calls.Add(1)
		m.results[classify(listErr)].Inc()
		m.duration.Observe((time.Since(start) - inCaller).Seconds())
	}
}

func (w *Bucket) String() string { return w.inner.String() }

// countingReader counts the bytes of a Get stream as the caller reads them.
type countingReader struct {
	rc io.ReadCloser
	w  *Bucket
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.w.addRead(get, int64(n))
	return n, err
}

func (r *countingReader) Close() error { return r.rc.Close() }
