package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/bench"
	"github.com/twoway/twoway/internal/commitlog"
)

const benchTableHelp = `
Measure tables (topics materialized as Iceberg tables of Parquet, SQL on
DuckDB) on directory buckets made for the run (under --dir, deleted at the
end), in one run:

  materialize  --rows JSON records ({"id", "amount", "item"}) produced over
               --partitions partitions before a table of them is created
               (--commit-interval), timed from its materializer's start until
               the table covers every partition: rows/s. Baseline: the same
               rows as Arrow records of the table's own Arrow schema, written
               with pqarrow alone (iceberg-go's writer settings, zstd) into as
               many files; ratio = materialized rows/s / pqarrow rows/s,
               target >= 0.7. --cpuprofile profiles the materialization.
  freshness    one record per produce call every --freshness-every for
               --freshness-duration into a table of
               --freshness-commit-interval (the default, 10s): from each
               record's acknowledgement until its row is in a committed
               Iceberg snapshot (the table's offsets, polled every 5 ms);
               target p99 <= 10 s. --freshness-duration 0 skips it.
  scan         "` + bench.TableScanSQL + `" through twoway's
               SQL over --scan-rows committed rows (--scan-commit-interval),
               best and median of --scan-runs after one untimed run. Baseline:
               DuckDB alone over one Parquet file of the same rows written by
               DuckDB (zstd); ratio = twoway / DuckDB, target <= 1.3.
  tail         the same aggregate with --tail-rows more rows in the table's
               fresh tail (the scans run on a second agent that does not
               materialize, so the rows stay there); ratio = with the tail /
               without. --scan-rows 0 skips scan and tail, as does a build
               without SQL.

Times are in seconds, latencies in milliseconds, MB is 10^6 bytes.
`

func runBenchTable(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench table", "twoway bench table [flags]", benchTableHelp)
	dir := fs.String("dir", "", "`directory` under which the run's buckets are made (default the system's temporary directory)")
	rows := fs.Int("rows", bench.DefaultTableRows, "`number` of records materialized in the materialization phase")
	partitions := fs.Int("partitions", bench.DefaultTablePartitions, "`number` of partitions of every topic")
	interval := fs.Duration("commit-interval", bench.DefaultTableCommitInterval, "commit interval of the materialization phase's table")
	freshDuration := fs.Duration("freshness-duration", bench.DefaultFreshnessDuration, "length of the freshness phase (0 skips it)")
	freshEvery := fs.Duration("freshness-every", bench.DefaultFreshnessEvery, "interval between the freshness phase's produce calls")
	freshInterval := fs.Duration("freshness-commit-interval", bench.DefaultFreshnessCommitInterval, "commit interval of the freshness phase's table")
	scanRows := fs.Int("scan-rows", bench.DefaultScanRows, "`number` of committed rows the scan phase aggregates (0 skips scan and tail)")
	scanInterval := fs.Duration("scan-commit-interval", bench.DefaultScanCommitInterval, "commit interval of the scan phase's table")
	tailRows := fs.Int("tail-rows", bench.DefaultTailRows, "`number` of rows in the fresh tail in the tail phase")
	runs := fs.Int("scan-runs", bench.DefaultScanRuns, "`number` of timed runs of each aggregate")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the materialization phase to `file`")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench table: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	switch {
	case *rows < 1 || *tailRows < 1 || *runs < 1:
		return badFlag(errors.New("--rows, --tail-rows and --scan-runs must be positive"))
	case *scanRows < 0:
		return badFlag(fmt.Errorf("--scan-rows %d must not be negative", *scanRows))
	case *partitions < 1 || *partitions > 1000:
		return badFlag(fmt.Errorf("--partitions %d out of range: use 1 to 1000", *partitions))
	case *interval < 100*time.Millisecond || *freshInterval < 100*time.Millisecond || *scanInterval < 100*time.Millisecond:
		return badFlag(errors.New("--commit-interval, --freshness-commit-interval and --scan-commit-interval must be at least 100ms"))
	case *freshDuration < 0:
		return badFlag(fmt.Errorf("--freshness-duration %v must not be negative", *freshDuration))
	case *freshEvery <= 0:
		return badFlag(fmt.Errorf("--freshness-every %v must be positive", *freshEvery))
	}
	opts := bench.TableOptions{
		Rows: *rows, Partitions: *partitions, CommitInterval: *interval,
		FreshnessDuration: *freshDuration, FreshnessEvery: *freshEvery, FreshnessCommitInterval: *freshInterval,
		ScanRows: *scanRows, ScanCommitInterval: *scanInterval, TailRows: *tailRows, ScanRuns: *runs,
		Dir:      *dir,
		Log:      agent.TuneLog(bucketurl.File, commitlog.Options{}),
		Progress: e.stderr,
	}
	if *freshDuration == 0 {
		opts.FreshnessDuration = -1
	}
	if *scanRows == 0 {
		opts.ScanRows = -1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Profile = f
	}
	res, err := bench.Table(ctx, opts)
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, res, printTableResult)
}

func printTableResult(w io.Writer, r bench.TableResult) error {
	m := r.Machine
	cpu := m.CPUModel
	if cpu == "" {
		cpu = "unknown CPU"
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "machine      %s/%s, %d CPUs, %s, %s, load %.2f\n", m.GOOS, m.GOARCH, m.NumCPU, cpu, m.GoVersion, r.Load1)
	fmt.Fprintf(w, "workload     %d partitions, JSON records {id, amount, item}, directory bucket\n\n", r.Partitions)

	fmt.Fprintf(w, "materialize  %.0f rows/s   (%d rows in %.2f s from the materializer's start, %.2f s from create; %d commits, %d files, %.1f MB; commit interval %v)\n",
		r.MaterializeRowsS, r.Rows, r.MaterializeS, r.MaterializeFromCreateS, r.MaterializeCommits, r.MaterializeFiles, r.MaterializeMB, ms(r.CommitIntervalMs))
	fmt.Fprintf(w, "pqarrow      %.0f rows/s   (same rows and schema in %.2f s, %d files, %.1f MB)\n",
		r.ParquetRowsS, r.ParquetS, r.ParquetFiles, r.ParquetMB)
	fmt.Fprintf(w, "ratio        %.3f   target >= 0.7: %s\n", r.MaterializeRatio, verdict(r.MaterializeRatio >= 0.7))

	if f := r.Freshness; f != nil {
		fmt.Fprintf(w, "\nfreshness    ack -> committed snapshot p50 %.0f ms   p99 %.0f ms   max %.0f ms   target p99 <= 10 s: %s\n",
			f.P50Ms, f.P99Ms, f.MaxMs, verdict(f.P99Ms <= 10000))
		fmt.Fprintf(w, "             (%d records, one every %v for %.0f s; commit interval %v; %d commits; ack p50 %.2f ms)\n",
			f.Samples, ms(f.EveryMs), f.DurationS, ms(f.CommitIntervalMs), f.Commits, f.AckP50Ms)
	}
	if s := r.Scan; s != nil {
		if s.Reason != "" {
			_, err := fmt.Fprintf(w, "\nscan         skipped: %s\n", s.Reason)
			return err
		}
		fmt.Fprintf(w, "\nscan         %s   (%d rows in %d files; best and median of %d)\n", bench.TableScanSQL, s.Rows, s.Files, s.Runs)
		fmt.Fprintf(w, "twoway SQL   best %8.1f ms   median %8.1f ms\n", s.TwowayBestMs, s.TwowayMedianMs)
		fmt.Fprintf(w, "DuckDB alone best %8.1f ms   median %8.1f ms   (one Parquet file written by DuckDB in %.1f s; %d threads)\n",
			s.DuckDBBestMs, s.DuckDBMedianMs, s.DuckDBWriteS, s.DuckDBThreads)
		fmt.Fprintf(w, "ratio        %.2f (medians %.2f)   target <= 1.3: %s\n", s.Ratio, s.MedianRatio, verdict(s.Ratio <= 1.3))
		fmt.Fprintf(w, "\nfresh tail   best %8.1f ms   median %8.1f ms   (%d more rows in the tail)\n", s.TailBestMs, s.TailMedianMs, s.TailRows)
		fmt.Fprintf(w, "ratio        %.2f   (with the tail / without)\n", s.TailRatio)
	}
	return nil
}
