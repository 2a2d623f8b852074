package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bench"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// benchmarks are the subcommands of "twoway bench".
var benchmarks = []command{
	{name: "bucket", summary: "Put throughput and Put, PutIfAbsent and Get latency of a bucket", run: runBenchBucket},
	{name: "produce", summary: "produce throughput and latency of the commit log, against the bucket's own", run: runBenchProduce},
	{name: "kafka", summary: "produce and consume through the Kafka listener, against the direct produce path", run: runBenchKafka},
	{name: "fn", summary: "functions: actor updates, latency, HTTP invocations, instantiation, memory (a developer tool: needs Go)", run: runBenchFn},
	{name: "table", summary: "tables: materialization against pqarrow, freshness, SQL scans against DuckDB alone", run: runBenchTable},
	{name: "mirror", summary: "mirroring against the destination's produce, bucket copy against a plain object copy", run: runBenchMirror},
}

func runBench(ctx context.Context, e *env, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  twoway bench <benchmark> [flags]

Measure twoway and the bucket it runs on. Machines are noisy: compare
results taken in the same run, on the same machine.

Benchmarks:
`)
		for _, b := range benchmarks {
			fmt.Fprintf(w, "  %-8s %s\n", b.name, b.summary)
		}
		fmt.Fprint(w, `
Run "twoway bench <benchmark> --help" for a benchmark's flags.
`)
	}
	if len(args) == 0 {
		return &usageError{err: errors.New("bench: no benchmark given"), usage: func() { usage(e.stderr) }}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stdout)
		return nil
	case benchFnOpenCommand: // bench fn's child process, not for users
		return runBenchFnOpen(ctx, e, args[1:])
	}
	for _, b := range benchmarks {
		if b.name == args[0] {
			return b.run(ctx, e, args[1:])
		}
	}
	return &usageError{err: fmt.Errorf("bench: unknown benchmark %q", args[0]), usage: func() { usage(e.stderr) }}
}

const benchBucketHelp = `
Measure a bucket in three phases of --duration each, with --concurrency
workers and objects of --object-size bytes:
  put             throughput (MB/s, objects/s) and latency of writing objects
  put-if-absent   latency of creating objects, the commit log's write
  get             latency of reading the objects of the put phase, whole

Everything is written under bench/<random>/ in the bucket and deleted at the
end. Sizes take a unit: 4096, 64KiB, 1MiB, 1MB (=1000000).
Latencies are in milliseconds; MB is 10^6 bytes.
`

func runBenchBucket(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench bucket", "twoway bench bucket --bucket URL [flags]", benchBucketHelp)
	bucketURL := fs.String("bucket", "", "bucket `URL` to measure: a directory path, file:///path or s3://bucket/prefix?... (required)")
	size := byteSize(bench.DefaultObjectSize)
	fs.Var(&size, "object-size", "`size` of each object")
	concurrency := fs.Int("concurrency", bench.DefaultConcurrency, "number of concurrent `workers`")
	duration := fs.Duration("duration", bench.DefaultDuration, "length of each phase")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench bucket: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	switch {
	case *bucketURL == "":
		return badFlag(errors.New("--bucket is required"))
	case size < 1 || size > bench.MaxObjectSize:
		return badFlag(fmt.Errorf("--object-size %s out of range: use 1B to %s", size.String(), formatByteSize(bench.MaxObjectSize)))
	case *concurrency < 1 || *concurrency > bench.MaxConcurrency:
		return badFlag(fmt.Errorf("--concurrency %d out of range: use 1 to %d", *concurrency, bench.MaxConcurrency))
	case *duration <= 0:
		return badFlag(fmt.Errorf("--duration %v must be positive", *duration))
	}

	b, err := bucketurl.Open(ctx, *bucketURL)
	if err != nil {
		return err
	}
	res, err := bench.Bucket(ctx, b, bench.BucketOptions{
		ObjectSize:  int(size),
		Concurrency: *concurrency,
		Duration:    *duration,
	})
	if res.PutCount == 0 { // nothing measured
		return err
	}
	// A result may come with an error from cleaning up: print both.
	return errors.Join(err, printResult(e.stdout, *asJSON, res, printBucketResult))
}

// printResult prints a benchmark result as indented JSON or as its table.
// A result may come with an error from cleaning up; callers print both.
func printResult[R any](w io.Writer, asJSON bool, res R, table func(io.Writer, R) error) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return table(w, res)
}

func printBucketResult(w io.Writer, r bench.BucketResult) error {
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	fmt.Fprintf(w, "bucket      %s\n", r.Bucket)
	fmt.Fprintf(w, "machine     %s/%s, %d CPUs, %s, %s\n", m.GOOS, m.GOARCH, m.NumCPU, cpu, m.GoVersion)
	fmt.Fprintf(w, "workload    %s objects, %d workers, %v per phase\n\n",
		formatByteSize(int64(r.ObjectSize)), r.Concurrency, time.Duration(r.DurationS*float64(time.Second)))

	fmt.Fprintf(w, "%-14s %9s %10s %10s\n", "operation", "calls", "p50 ms", "p99 ms")
	row := func(op string, n int, p50, p99 float64) {
		fmt.Fprintf(w, "%-14s %9d %10.2f %10.2f\n", op, n, p50, p99)
	}
	row("put", r.PutCount, r.PutP50Ms, r.PutP99Ms)
	row("put-if-absent", r.PutIfAbsentCount, r.PutIfAbsentP50Ms, r.PutIfAbsentP99Ms)
	row("get", r.GetCount, r.GetP50Ms, r.GetP99Ms)
	_, err := fmt.Fprintf(w, "\nput throughput   %.1f MB/s   %.1f objects/s\n", r.PutMBs, r.PutObjectsS)
	return err
}

const benchProduceHelp = `
Measure the commit log on a bucket against the bucket itself, in one run.

Log phase (--duration): two agents open a fresh log under
bench/produce-<random>/. On the first, --producers producers each make one
produce call at a time of --batch-size bytes of --record-size records, all
for one partition, spreading their calls over --partitions partitions. The
second agent tails the log, comes to know of every record, and reads back
as many batches as 4 readers have time for. Measured:
  produce      throughput (MB/s of record values, records/s) and latency
               from a call to its acknowledgement
  end-to-end   latency from a call until the other agent holds its records
  PUTs/s       the writing agent's writes: commits, chunks, janitor

Baseline phase: "twoway bench bucket" with objects the size of the log's
average chunk (of its average commit when every batch was inlined) and as
many workers as the log uploads chunks at once: the parallelism the log
itself uses for data. It takes three phases of --duration.

throughput ratio = produce MB/s / baseline put MB/s.

Everything is deleted at the end. Sizes take a unit: 100, 64KiB, 1MiB.
Latencies are in milliseconds; MB is 10^6 bytes.
`

func runBenchProduce(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench produce", "twoway bench produce --bucket URL [flags]", benchProduceHelp)
	bucketURL := fs.String("bucket", "", "bucket `URL` to measure: a directory path, file:///path or s3://bucket/prefix?... (required)")
	partitions := fs.Int("partitions", bench.DefaultPartitions, "`number` of partitions of the topic")
	recordSize := byteSize(bench.DefaultRecordSize)
	fs.Var(&recordSize, "record-size", "`size` of each record's value")
	batchSize := byteSize(bench.DefaultBatchSize)
	fs.Var(&batchSize, "batch-size", "`size` of the records of one produce call (at least one record): a\nKafka producer's batch.size, the most it sends one partition at once")
	producers := fs.Int("producers", bench.DefaultProducers, "`number` of producers, each with one call in flight")
	duration := fs.Duration("duration", bench.DefaultDuration, "length of the log phase and of each baseline phase")
	lingerOf := fs.lingerFlag("extra group-commit `wait` (default 0 on a directory, 100ms on S3, as twoway serve)")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench produce: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	linger := lingerOf()
	if err := checkLogBenchFlags(*bucketURL, *partitions, recordSize, *duration, linger); err != nil {
		return badFlag(err)
	}
	switch {
	case batchSize < 1 || batchSize > bench.MaxBatchSize:
		return badFlag(fmt.Errorf("--batch-size %s out of range: use 1B to %s", batchSize.String(), formatByteSize(bench.MaxBatchSize)))
	case *producers < 1 || *producers > bench.MaxProducers:
		return badFlag(fmt.Errorf("--producers %d out of range: use 1 to %d", *producers, bench.MaxProducers))
	case int64(*producers)*max(1, int64(batchSize/recordSize))*int64(recordSize) > bench.MaxInFlight:
		return badFlag(fmt.Errorf("--producers %d with --batch-size %s hold too much in flight: keep their product to %s",
			*producers, batchSize.String(), formatByteSize(bench.MaxInFlight)))
	}

	b, logOpts, err := openBenchBucket(ctx, *bucketURL, linger)
	if err != nil {
		return err
	}
	res, err := bench.Produce(ctx, b, bench.ProduceOptions{
		Partitions: *partitions,
		RecordSize: int(recordSize),
		BatchSize:  int(batchSize),
		Producers:  *producers,
		Duration:   *duration,
		Log:        logOpts,
	})
	if res.Calls == 0 { // nothing measured
		return err
	}
	// A result may come with an error from cleaning up: print both.
	return errors.Join(err, printResult(e.stdout, *asJSON, res, printProduceResult))
}

// checkLogBenchFlags checks the flags the log benchmarks (produce, kafka)
// share.
func checkLogBenchFlags(bucketURL string, partitions int, recordSize byteSize, duration, linger time.Duration) error {
	switch {
	case bucketURL == "":
		return errors.New("--bucket is required")
	case partitions < 1 || partitions > stream.MaxPartitions:
		return fmt.Errorf("--partitions %d out of range: use 1 to %d", partitions, stream.MaxPartitions)
	case recordSize < bench.MinRecordSize || recordSize > bench.MaxRecordSize:
		return fmt.Errorf("--record-size %s out of range: use %s to %s", recordSize.String(), formatByteSize(bench.MinRecordSize), formatByteSize(bench.MaxRecordSize))
	case duration <= 0:
		return fmt.Errorf("--duration %v must be positive", duration)
	case linger < 0 && linger != agent.NoLinger:
		return fmt.Errorf("--linger %v must not be negative", linger)
	}
	return nil
}

// openBenchBucket opens the bucket a benchmark measures and the commit-log
// settings twoway serve would use on it.
func openBenchBucket(ctx context.Context, rawURL string, linger time.Duration) (bucket.Bucket, commitlog.Options, error) {
	loc, err := bucketurl.Parse(rawURL)
	if err != nil {
		return nil, commitlog.Options{}, err
	}
	b, err := loc.Open(ctx)
	if err != nil {
		return nil, commitlog.Options{}, err
	}
	return b, agent.TuneLog(loc.Kind, commitlog.Options{Linger: linger}), nil
}

func printProduceResult(w io.Writer, r bench.ProduceResult) error {
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	fmt.Fprintf(w, "bucket      %s\n", r.Bucket)
	fmt.Fprintf(w, "machine     %s/%s, %d CPUs, %s, %s\n", m.GOOS, m.GOARCH, m.NumCPU, cpu, m.GoVersion)
	fmt.Fprintf(w, "workload    %d partitions, %s records, %s per call, %d producers, linger %v, %v\n\n",
		r.Partitions, formatByteSize(int64(r.RecordSize)), formatByteSize(int64(r.BatchSize)), r.Producers,
		ms(r.LingerMs), time.Duration(r.DurationS*float64(time.Second)).Round(time.Millisecond))

	fmt.Fprintf(w, "produce     %s MB/s   %.0f records/s   %d calls\n", megabytes(r.ProduceMBs), r.RecordsS, r.Calls)
	fmt.Fprintf(w, "bucket put  %s MB/s   (%s objects, %d workers)\n", megabytes(r.BaselinePutMBs),
		approxByteSize(float64(r.Baseline.ObjectSize)), r.Baseline.Concurrency)
	fmt.Fprintf(w, "ratio       %.2f   (ack p50 / put-if-absent p50: %.2f)\n\n", r.ThroughputRatio, r.AckRatio)

	fmt.Fprintf(w, "%-22s %10s %10s\n", "latency", "p50 ms", "p99 ms")
	row := func(what string, p50, p99 float64) {
		fmt.Fprintf(w, "%-22s %10.2f %10.2f\n", what, p50, p99)
	}
	row("produce", r.ProduceP50Ms, r.ProduceP99Ms)
	row("end to end", r.E2EP50Ms, r.E2EP99Ms)
	row("bucket put-if-absent", r.Baseline.PutIfAbsentP50Ms, r.Baseline.PutIfAbsentP99Ms)

	chunks := "no chunks: every batch inlined"
	if r.Chunks > 0 {
		chunks = fmt.Sprintf("%d chunks (%s average)", r.Chunks, approxByteSize(r.AvgChunkBytes))
	}
	_, err := fmt.Fprintf(w, "\nlog         %.1f PUTs/s   %d commits (%s average)   %s   %d conflicts\n",
		r.PutsPerS, r.Commits, approxByteSize(r.AvgCommitBytes), chunks, r.Conflicts)
	return err
}

// megabytes formats a rate in MB/s with a precision that suits its size.
func megabytes(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// approxByteSize writes n bytes to three significant digits in the largest
// binary unit below it: 1.01MiB, 8.69KiB, 900B.
func approxByteSize(n float64) string {
	for _, u := range []struct {
		suffix string
		factor float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.factor {
			return strconv.FormatFloat(n/u.factor, 'g', 3, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + "B"
}
