package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/instrument"
	"github.com/twoway/twoway/internal/bench"
)

func openBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "mine/keep", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkOnlyMine fails unless the benchmark left the bucket as it found it.
func checkOnlyMine(t *testing.T, b bucket.Bucket) {
	t.Helper()
	keys, err := bucket.Keys(context.Background(), b, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"mine/keep"}) {
		t.Errorf("after the benchmark the bucket holds %d keys, e.g. %v; want only mine/keep", len(keys), keys[:min(len(keys), 5)])
	}
}

func TestBucketShortRun(t *testing.T) {
	inner := openBucket(t)
	b := instrument.Wrap(inner, nil)
	opts := bench.BucketOptions{ObjectSize: 4096, Concurrency: 3, Duration: 200 * time.Millisecond}
	res, err := bench.Bucket(t.Context(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyMine(t, inner)

	if res.ObjectSize != 4096 || res.Concurrency != 3 || res.DurationS != 0.2 || res.Bucket != inner.String() {
		t.Errorf("result does not echo the options: %+v", res)
	}
	// Every worker makes at least one call per phase.
	if res.PutCount < 3 || res.PutIfAbsentCount < 3 || res.GetCount < 3 {
		t.Errorf("counts put %d, put-if-absent %d, get %d; want at least 3 each", res.PutCount, res.PutIfAbsentCount, res.GetCount)
	}
	if !(res.PutObjectsS > 0) || !(res.PutMBs > 0) {
		t.Errorf("throughput %v objects/s, %v MB/s; want positive", res.PutObjectsS, res.PutMBs)
	}
	// MB/s is objects/s times the object size.
	if got, want := res.PutMBs, res.PutObjectsS*4096/1e6; got < want*0.999 || got > want*1.001 {
		t.Errorf("put_mb_s %v, want objects/s * size = %v", got, want)
	}
	for name, p := range map[string][2]float64{
		"put":           {res.PutP50Ms, res.PutP99Ms},
		"put-if-absent": {res.PutIfAbsentP50Ms, res.PutIfAbsentP99Ms},
		"get":           {res.GetP50Ms, res.GetP99Ms},
	} {
		if !(p[0] > 0) || p[1] < p[0] {
			t.Errorf("%s p50 %v ms, p99 %v ms; want 0 < p50 <= p99", name, p[0], p[1])
		}
	}
	if res.Machine.NumCPU < 1 || res.Machine.GoVersion == "" {
		t.Errorf("machine %+v", res.Machine)
	}

	// The counted calls are the bucket's calls.
	counts := b.Counts()
	if counts["put"] != int64(res.PutCount) || counts["put-if-absent"] != int64(res.PutIfAbsentCount) || counts["get"] != int64(res.GetCount) {
		t.Errorf("bucket saw %v; result counts put %d, put-if-absent %d, get %d", counts, res.PutCount, res.PutIfAbsentCount, res.GetCount)
	}
	if want := int64(res.PutCount + res.PutIfAbsentCount); counts["delete"] != want {
		t.Errorf("deleted %d objects, want %d", counts["delete"], want)
	}

	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"put_mb_s", "put_objects_s", "put_p50_ms", "put_p99_ms", "put_if_absent_p50_ms",
		"put_if_absent_p99_ms", "get_p50_ms", "get_p99_ms", "object_size", "concurrency", "duration_s", "machine"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("JSON result lacks %q: %s", f, data)
		}
	}
}

// A failing bucket fails the benchmark, which still cleans up.
func TestBucketFailureCleansUp(t *testing.T) {
	inner := openBucket(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpGet, FailNth: 2}))
	_, err := bench.Bucket(t.Context(), fb, bench.BucketOptions{ObjectSize: 100, Concurrency: 2, Duration: 50 * time.Millisecond})
	if !errors.Is(err, faultbucket.ErrInjected) {
		t.Fatalf("Bucket = %v, want the injected fault", err)
	}
	if !strings.Contains(err.Error(), "get phase") {
		t.Errorf("error %q does not name the phase", err)
	}
	checkOnlyMine(t, inner)
}

func TestBucketCancelled(t *testing.T) {
	inner := openBucket(t)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := bench.Bucket(ctx, inner, bench.BucketOptions{ObjectSize: 100, Concurrency: 2, Duration: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Bucket = %v, want the context's deadline", err)
	}
	checkOnlyMine(t, inner)
}

func TestBucketOptions(t *testing.T) {
	b := openBucket(t)
	for _, opts := range []bench.BucketOptions{
		{ObjectSize: -1},
		{ObjectSize: bench.MaxObjectSize + 1},
		{Concurrency: -2},
		{Concurrency: bench.MaxConcurrency + 1},
		{Duration: -time.Second},
	} {
		if _, err := bench.Bucket(t.Context(), b, opts); err == nil {
			t.Errorf("Bucket accepted %+v", opts)
		}
	}
	checkOnlyMine(t, b)
}

// A run whose measurement succeeded is not lost when cleaning up fails.
func TestBucketCleanupFailureKeepsResult(t *testing.T) {
	inner := openBucket(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpDelete, FailNth: 1}))
	res, err := bench.Bucket(t.Context(), fb, bench.BucketOptions{ObjectSize: 100, Concurrency: 1, Duration: 10 * time.Millisecond})
	if !errors.Is(err, faultbucket.ErrInjected) || !strings.Contains(err.Error(), "deleting") {
		t.Fatalf("Bucket = %v, want the injected delete failure", err)
	}
	if res.PutCount == 0 || res.GetCount == 0 {
		t.Errorf("result lost: %+v", res)
	}
}
