package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/faultbucket"
	"github.com/twoway/twoway/bucket/instrument"
	"github.com/twoway/twoway/internal/bench"
)

// The fields the produce benchmark's JSON must carry (the first nine are
// what its issue asks for by name).
var produceFields = []string{
	"baseline_put_mb_s", "baseline_put_if_absent_p50_ms", "produce_mb_s", "produce_p50_ms", "produce_p99_ms",
	"e2e_p50_ms", "e2e_p99_ms", "puts_per_s", "throughput_ratio",
	"records_s", "partitions", "record_size", "producers", "linger_ms", "commits", "chunks",
	"avg_chunk_bytes", "conflicts", "duration_s", "machine",
}

func TestProduceShortRun(t *testing.T) {
	inner := openBucket(t)
	b := instrument.Wrap(inner, nil)
	opts := bench.ProduceOptions{
		Partitions: 3,
		RecordSize: 1000,
		BatchSize:  70 << 10, // over the inline limit, so chunks are written
		Producers:  4,
		Duration:   300 * time.Millisecond,
	}
	res, err := bench.Produce(t.Context(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyMine(t, inner)

	if res.Partitions != 3 || res.RecordSize != 1000 || res.BatchSize != 70<<10 || res.Producers != 4 ||
		res.LingerMs != 0 || res.ChunkUploads != bench.DefaultChunkUploads || res.Bucket != inner.String() {
		t.Errorf("result does not echo the options: %+v", res)
	}
	// 71 records of 1000 bytes per call; every producer makes a call.
	if res.Calls < 4 || res.Records != int64(res.Calls)*71 {
		t.Errorf("%d calls, %d records; want at least 4 calls of 71 records", res.Calls, res.Records)
	}
	for name, v := range map[string]float64{
		"produce_mb_s": res.ProduceMBs, "records_s": res.RecordsS, "puts_per_s": res.PutsPerS,
		"throughput_ratio": res.ThroughputRatio, "baseline_put_mb_s": res.BaselinePutMBs,
		"baseline_put_if_absent_p50_ms": res.BaselinePutIfAbsentP50Ms, "avg_chunk_bytes": res.AvgChunkBytes,
		"duration_s": res.DurationS,
	} {
		if !(v > 0) {
			t.Errorf("%s = %v, want positive", name, v)
		}
	}
	if got, want := res.ProduceMBs, res.RecordsS*1000/1e6; got < want*0.999 || got > want*1.001 {
		t.Errorf("produce_mb_s %v, want records/s * record size = %v", got, want)
	}
	if got, want := res.ThroughputRatio, res.ProduceMBs/res.BaselinePutMBs; got != want {
		t.Errorf("throughput_ratio %v, want %v", got, want)
	}
	for name, p := range map[string][2]float64{
		"produce": {res.ProduceP50Ms, res.ProduceP99Ms},
		"e2e":     {res.E2EP50Ms, res.E2EP99Ms},
	} {
		if !(p[0] > 0) || p[1] < p[0] {
			t.Errorf("%s p50 %v ms, p99 %v ms; want 0 < p50 <= p99", name, p[0], p[1])
		}
	}
	// A record cannot reach the reader before it is acknowledged to the
	// writer... on the median at least; single calls may race.
	if res.E2EP50Ms < res.ProduceP50Ms*0.5 {
		t.Errorf("end-to-end p50 %v ms well below the produce p50 %v ms", res.E2EP50Ms, res.ProduceP50Ms)
	}
	if res.Commits < 1 || res.Chunks < 1 || res.Conflicts != 0 {
		t.Errorf("%d commits, %d chunks, %d conflicts; want some commits and chunks and no conflict", res.Commits, res.Chunks, res.Conflicts)
	}
	// The baseline writes objects the size of the log's chunks, with the
	// log's upload parallelism.
	if want := int(res.AvgChunkBytes + 0.5); res.Baseline.ObjectSize != want || res.Baseline.Concurrency != bench.DefaultChunkUploads {
		t.Errorf("baseline with %d-byte objects x %d; want %d x %d", res.Baseline.ObjectSize, res.Baseline.Concurrency, want, bench.DefaultChunkUploads)
	}
	if res.Machine.NumCPU < 1 || res.Machine.GoVersion == "" {
		t.Errorf("machine %+v", res.Machine)
	}

	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range produceFields {
		if _, ok := fields[f]; !ok {
			t.Errorf("JSON result lacks %q: %s", f, data)
		}
	}
}

// Small batches from one producer are inlined in the commits: no chunk, and
// the baseline measures objects the size of a commit.
func TestProduceInline(t *testing.T) {
	inner := openBucket(t)
	res, err := bench.Produce(t.Context(), inner, bench.ProduceOptions{
		RecordSize: 100,
		BatchSize:  1000,
		Producers:  1,
		Duration:   200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyMine(t, inner)
	if res.Chunks != 0 || res.AvgChunkBytes != 0 {
		t.Errorf("%d chunks of %v bytes; want everything inlined", res.Chunks, res.AvgChunkBytes)
	}
	if res.Records != int64(res.Calls)*10 || res.Calls < 1 {
		t.Errorf("%d calls, %d records; want 10 records a call", res.Calls, res.Records)
	}
	// A commit holds at least one call's 10 records.
	if want := int(res.AvgCommitBytes + 0.5); !(res.AvgCommitBytes > 1000) || res.Baseline.ObjectSize != want {
		t.Errorf("average commit %v bytes, baseline objects %d bytes", res.AvgCommitBytes, res.Baseline.ObjectSize)
	}
	if !(res.ProduceP50Ms > 0) || !(res.E2EP50Ms > 0) || !(res.PutsPerS > 0) || !(res.BaselinePutIfAbsentP50Ms > 0) {
		t.Errorf("result %+v", res)
	}
}

// A failing bucket fails the benchmark, which still cleans up. (The commit
// log rides out failed writes; a failed read of records stops the reader.)
func TestProduceFailureCleansUp(t *testing.T) {
	inner := openBucket(t)
	fb := faultbucket.Wrap(inner, faultbucket.WithRules(faultbucket.Rule{Op: faultbucket.OpGetRange, FailNth: 1}))
	_, err := bench.Produce(t.Context(), fb, bench.ProduceOptions{Producers: 2, Duration: 300 * time.Millisecond})
	if !errors.Is(err, faultbucket.ErrInjected) {
		t.Fatalf("Produce = %v, want the injected fault", err)
	}
	if !strings.Contains(err.Error(), "reading agent") {
		t.Errorf("error %q does not say what failed", err)
	}
	checkOnlyMine(t, inner)
}

func TestProduceCancelled(t *testing.T) {
	inner := openBucket(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := bench.Produce(ctx, inner, bench.ProduceOptions{Producers: 2, Duration: time.Hour})
	if err == nil {
		t.Fatal("Produce succeeded after its context ended")
	}
	checkOnlyMine(t, inner)
}

func TestProduceOptions(t *testing.T) {
	b := openBucket(t)
	for _, opts := range []bench.ProduceOptions{
		{Partitions: -1},
		{Partitions: 10001},
		{RecordSize: 7},
		{RecordSize: bench.MaxRecordSize + 1},
		{BatchSize: -1},
		{BatchSize: bench.MaxBatchSize + 1},
		{Producers: -1},
		{Producers: bench.MaxProducers + 1},
		{Producers: 4096, BatchSize: bench.MaxBatchSize}, // 16 GiB in flight
		{Duration: -time.Second},
	} {
		if _, err := bench.Produce(t.Context(), b, opts); err == nil {
			t.Errorf("Produce accepted %+v", opts)
		} else if !strings.HasPrefix(err.Error(), "bench: ") {
			t.Errorf("Produce(%+v) = %v, want an error saying it is the benchmark's", opts, err)
		}
	}
	checkOnlyMine(t, b)
}
