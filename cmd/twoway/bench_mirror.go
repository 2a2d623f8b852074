package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bench"
)

const benchMirrorHelp = `
Measure mirroring and bucket copy between two buckets, in one run:

  produce   "twoway bench produce" on the destination (--to): the rate the
            destination's log takes records at, the mirror's baseline
  mirror    --backlog bytes of records written to a deployment on the
            source (--from), then drained by a mirror into a deployment on
            the destination: record MB/s from start to the last position
  raw copy  the source deployment's objects, each read and written to the
            destination (a Get and a Put, --copy-concurrency at once)
  copy      "twoway bucket copy" of the same deployment to the destination,
            with its checks (read back, checksums)

mirror ratio = mirror MB/s / produce MB/s (target at least 0.7)
copy ratio   = copy MB/s / raw copy MB/s  (target at least 0.8)

--record-size, --batch-size, --partitions, --producers and --duration are
bench produce's, for the produce phase; the backlog is written with the same
record and batch sizes over the same partitions. Everything is written
under bench/ in both buckets and deleted at the end. MB is 10^6 bytes.
`

func runBenchMirror(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench mirror", "twoway bench mirror --from URL --to URL [flags]", benchMirrorHelp)
	from := fs.String("from", "", "bucket `URL` of the source, such as an edge's directory (required)")
	to := fs.String("to", "", "bucket `URL` of the destination, such as s3://... (required)")
	partitions := fs.Int("partitions", 4, "`number` of partitions of the topic")
	recordSize := byteSize(bench.DefaultRecordSize)
	fs.Var(&recordSize, "record-size", "`size` of each record's value")
	batchSize := byteSize(bench.DefaultBatchSize)
	fs.Var(&batchSize, "batch-size", "`size` of the records of one produce call")
	producers := fs.Int("producers", bench.DefaultProducers, "`number` of producers of the produce phase")
	duration := fs.Duration("duration", 5*time.Second, "length of the produce phase and of each of its baseline phases")
	backlog := byteSize(bench.DefaultMirrorBacklog)
	fs.Var(&backlog, "backlog", "record `bytes` the mirror drains")
	conc := fs.Int("copy-concurrency", 8, "objects copied at once by the raw copy and bucket copy")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench mirror: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	if *from == "" || *to == "" {
		return badFlag(errors.New("--from and --to are required"))
	}
	if err := checkLogBenchFlags(*to, *partitions, recordSize, *duration, 0); err != nil {
		return badFlag(err)
	}
	switch {
	case batchSize < 1 || batchSize > bench.MaxBatchSize:
		return badFlag(fmt.Errorf("--batch-size %s out of range: use 1B to %s", batchSize.String(), formatByteSize(bench.MaxBatchSize)))
	case *producers < 1 || *producers > bench.MaxProducers:
		return badFlag(fmt.Errorf("--producers %d out of range: use 1 to %d", *producers, bench.MaxProducers))
	case backlog < 1<<20 || backlog > 64<<30:
		return badFlag(fmt.Errorf("--backlog %s out of range: use 1MiB to 64GiB", backlog.String()))
	case *conc < 1:
		return badFlag(errors.New("--copy-concurrency must be at least 1"))
	}
	fromB, fromLog, err := openBenchBucket(ctx, *from, 0)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	toB, toLog, err := openBenchBucket(ctx, *to, 0)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	// The mirror's destination commits at once, as twoway mirror's does.
	_, mirrorLog, err := openBenchBucket(ctx, *to, agent.NoLinger)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	res, err := bench.Mirror(ctx, fromB, toB, bench.MirrorOptions{
		Produce: bench.ProduceOptions{Partitions: *partitions, RecordSize: int(recordSize), BatchSize: int(batchSize),
			Producers: *producers, Duration: *duration, Log: toLog},
		Backlog: int64(backlog), FromLog: fromLog, ToLog: mirrorLog, CopyConcurrency: *conc,
	})
	if res.MirrorS == 0 {
		return err
	}
	return errors.Join(err, printResult(e.stdout, *asJSON, res, printMirrorResult))
}

func printMirrorResult(w io.Writer, r bench.MirrorResult) error {
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	p := r.Produce
	fmt.Fprintf(w, "from        %s\nto          %s\n", r.From, r.To)
	fmt.Fprintf(w, "machine     %s/%s, %d CPUs, %s, %s\n", m.GOOS, m.GOARCH, m.NumCPU, cpu, m.GoVersion)
	fmt.Fprintf(w, "workload    %d partitions, %s records, %s per call\n\n", p.Partitions, formatByteSize(int64(p.RecordSize)), formatByteSize(int64(p.BatchSize)))
	fmt.Fprintf(w, "produce     %s MB/s   (bench produce on the destination, %d producers)\n", megabytes(r.ProduceMBs), p.Producers)
	fmt.Fprintf(w, "mirror      %s MB/s   %d records in %.2f s, %d commits\n", megabytes(r.MirrorMBs), r.MirrorRecords, r.MirrorS, r.MirrorCommits)
	fmt.Fprintf(w, "ratio       %.2f   (target 0.7)\n\n", r.MirrorRatio)
	fmt.Fprintf(w, "raw copy    %s MB/s\n", megabytes(r.RawCopyMBs))
	fmt.Fprintf(w, "copy        %s MB/s   %d objects, %s\n", megabytes(r.CopyMBs), r.CopyObjects, formatByteSize(r.CopyBytes))
	_, err := fmt.Fprintf(w, "ratio       %.2f   (target 0.8)\n", r.CopyRatio)
	return err
}
