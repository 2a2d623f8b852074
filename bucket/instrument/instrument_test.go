package instrument_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/instrument"
)

func openBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, b bucket.Bucket, key, body string) bucket.Info {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

// metric returns the value of the counter (or the sample count of the
// histogram) name with exactly the given labels, or fails the test when no
// such series exists.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestRequestsByResult(t *testing.T) {
	ctx := t.Context()
	reg := prometheus.NewPedanticRegistry()
	b := instrument.Wrap(openBucket(t), reg)

	info := put(t, b, "a/1", "hello")
	if _, err := b.PutIfAbsent(ctx, "a/1", strings.NewReader("x"), 1); !bucket.IsPrecondition(err) {
		t.Fatalf("PutIfAbsent on an existing key: %v, want a precondition failure", err)
	}
	if _, err := b.PutIfAbsent(ctx, "a/2", strings.NewReader("xy"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfMatch(ctx, "a/1", strings.NewReader("hello!"), 6, info.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfMatch(ctx, "a/1", strings.NewReader("z"), 1, info.Version); !bucket.IsPrecondition(err) {
		t.Fatalf("PutIfMatch with a stale version: %v, want a precondition failure", err)
	}
	if _, _, err := b.Get(ctx, "missing"); !bucket.IsNotFound(err) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	if _, err := b.Stat(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "bad//key"); err == nil {
		t.Fatal("Stat of an invalid key succeeded")
	}
	if data, err := b.GetRange(ctx, "a/1", 1, 3); err != nil || string(data) != "ell" {
		t.Fatalf("GetRange = %q, %v", data, err)
	}
	if err := b.Delete(ctx, "a/2"); err != nil {
		t.Fatal(err)
	}
	keys, err := bucket.Keys(ctx, b, "a/", "")
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v", keys, err)
	}

	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{instrument.OpPut, instrument.ResultOK, 1},
		{instrument.OpPutIfAbsent, instrument.ResultOK, 1},
		{instrument.OpPutIfAbsent, instrument.ResultPrecondition, 1},
		{instrument.OpPutIfMatch, instrument.ResultOK, 1},
		{instrument.OpPutIfMatch, instrument.ResultPrecondition, 1},
		{instrument.OpGet, instrument.ResultNotFound, 1},
		{instrument.OpGet, instrument.ResultOK, 0},
		{instrument.OpStat, instrument.ResultOK, 1},
		{instrument.OpStat, instrument.ResultError, 1},
		{instrument.OpGetRange, instrument.ResultOK, 1},
		{instrument.OpDelete, instrument.ResultOK, 1},
		{instrument.OpList, instrument.ResultOK, 1},
	} {
		if got := metric(t, reg, "twoway_bucket_requests_total", "op", c.op, "result", c.result); got != c.want {
			t.Errorf("requests{op=%s,result=%s} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	// Every call is timed, whatever its result.
	if got := metric(t, reg, "twoway_bucket_request_duration_seconds", "op", instrument.OpPutIfAbsent); got != 2 {
		t.Errorf("put-if-absent duration samples = %v, want 2", got)
	}
	// Written bytes count successful writes only; GetRange reads count.
	for _, c := range []struct {
		op, dir string
		want    float64
	}{
		{instrument.OpPut, "written", 5},
		{instrument.OpPutIfAbsent, "written", 2},
		{instrument.OpPutIfMatch, "written", 6},
		{instrument.OpGetRange, "read", 3},
	} {
		if got := metric(t, reg, "twoway_bucket_bytes_total", "op", c.op, "direction", c.dir); got != c.want {
			t.Errorf("bytes{op=%s,direction=%s} = %v, want %v", c.op, c.dir, got, c.want)
		}
	}

	counts := b.Counts()
	want := map[string]int64{"put": 1, "put-if-absent": 2, "put-if-match": 2, "get": 1, "stat": 2, "get-range": 1, "delete": 1, "list": 1}
	for op, n := range want {
		if counts[op] != n {
			t.Errorf("Counts()[%s] = %d, want %d", op, counts[op], n)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("Counts() = %v, want an entry per operation", counts)
	}
	if got := b.Writes(); got != 5 {
		t.Errorf("Writes() = %d, want 5", got)
	}

	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
}

// A Get counts the bytes the caller actually reads, as it reads them.
func TestGetCountsBytesAsRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := instrument.Wrap(openBucket(t), reg)
	body := strings.Repeat("0123456789", 100)
	put(t, b, "obj", body)

	rc, info, err := b.Get(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(body)) {
		t.Fatalf("Get info size %d, want %d", info.Size, len(body))
	}
	if got := metric(t, reg, "twoway_bucket_bytes_total", "op", "get", "direction", "read"); got != 0 {
		t.Errorf("bytes read before reading = %v, want 0", got)
	}
	buf := make([]byte, 300)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg, "twoway_bucket_bytes_total", "op", "get", "direction", "read"); got != 300 {
		t.Errorf("bytes read after 300 = %v, want 300", got)
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(buf, rest...), []byte(body)) {
		t.Fatal("Get through the wrapper returned other bytes than were put")
	}
	if got := metric(t, reg, "twoway_bucket_bytes_total", "op", "get", "direction", "read"); got != float64(len(body)) {
		t.Errorf("bytes read at the end = %v, want %d", got, len(body))
	}
	if read, written := b.Bytes(); read != int64(len(body)) || written != int64(len(body)) {
		t.Errorf("Bytes() = %d, %d; want %d, %d", read, written, len(body), len(body))
	}
}

// Wrapping several buckets on one registry shares the series; the
// in-process counters stay per wrapper.
func TestWrapTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	inner := openBucket(t)
	b1 := instrument.Wrap(inner, reg)
	b2 := instrument.Wrap(inner, reg) // must not panic
	b3 := instrument.Wrap(openBucket(t), reg)

	put(t, b1, "k1", "a")
	put(t, b2, "k2", "b")
	put(t, b3, "k3", "c")
	if got := metric(t, reg, "twoway_bucket_requests_total", "op", "put", "result", "ok"); got != 3 {
		t.Errorf("shared put counter = %v, want 3", got)
	}
	for i, b := range []*instrument.Bucket{b1, b2, b3} {
		if got := b.Counts()["put"]; got != 1 {
			t.Errorf("wrapper %d counts %d puts, want 1", i+1, got)
		}
	}
}

func TestNilRegistry(t *testing.T) {
	b := instrument.Wrap(openBucket(t), nil)
	put(t, b, "k", "abc")
	if got := b.Counts()["put"]; got != 1 {
		t.Errorf("Counts()[put] = %d, want 1", got)
	}
}

// A different metric under one of our names is a programming error, reported
// as MustRegister would.
func TestConflictingRegistrationPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "twoway_bucket_requests_total", Help: "not ours"}))
	defer func() {
		if recover() == nil {
			t.Error("Wrap did not panic on a conflicting metric")
		}
	}()
	instrument.Wrap(openBucket(t), reg)
}

// A listing that fails counts as an error; one the caller stops early does
// not.
func TestListResults(t *testing.T) {
	reg := prometheus.NewRegistry()
	fb := faultbucket.Wrap(openBucket(t))
	b := instrument.Wrap(fb, reg)
	put(t, b, "p/1", "a")
	put(t, b, "p/2", "b")
	for range b.List(t.Context(), "p/", "") {
		break
	}
	if err := fb.SetRules(faultbucket.Rule{Op: faultbucket.OpList, FailNth: 1}); err != nil {
		t.Fatal(err)
	}
	var listErr error
	for _, err := range b.List(t.Context(), "p/", "") {
		listErr = err
	}
	if !errors.Is(listErr, faultbucket.ErrInjected) {
		t.Fatalf("list error %v, want the injected one", listErr)
	}
	if got := metric(t, reg, "twoway_bucket_requests_total", "op", "list", "result", "ok"); got != 1 {
		t.Errorf("list ok = %v, want 1", got)
	}
	if got := metric(t, reg, "twoway_bucket_requests_total", "op", "list", "result", "error"); got != 1 {
		t.Errorf("list error = %v, want 1", got)
	}
}
