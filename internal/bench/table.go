package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/sqlengine"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/tables"
)

// The tables benchmark (`twoway bench table`). Every phase runs on a
// directory bucket of its own under TableOptions.Dir, removed at the end.

// Defaults for zero TableOptions fields.
const (
	DefaultTableRows       = 2000000
	DefaultTablePartitions = 4
	// DefaultTableCommitInterval is the materialization phase's: short,
	// so that the table keeps up with a backlog read at full speed (a
	// commit is due 0.8 s after its oldest pending row) and the last
	// rows do not wait.
	DefaultTableCommitInterval = time.Second
	DefaultFreshnessDuration   = 60 * time.Second
	DefaultFreshnessEvery      = 20 * time.Millisecond
	// DefaultFreshnessCommitInterval is the tables module's default.
	DefaultFreshnessCommitInterval = 10 * time.Second
	DefaultScanRows                = 10000000
	DefaultScanCommitInterval      = 10 * time.Second
	DefaultTailRows                = 100000
	DefaultScanRuns                = 5
	// tableBatchRecords records (about 1 MiB of JSON values) go in one
	// produced batch.
	tableBatchRecords = 16384
)

// TableScanSQL is the aggregate the scan phases time.
const TableScanSQL = "select count(*), sum(amount), max(id) from t"

// TableOptions configures Table. Zero fields take the defaults above.
type TableOptions struct {
	// Rows are materialized, and written with pqarrow alone, in the
	// materialization phase.
	Rows       int
	Partitions int // of every topic
	// CommitInterval is the materialization phase's table's.
	CommitInterval time.Duration

	// The freshness phase produces one record every FreshnessEvery for
	// FreshnessDuration into a table of FreshnessCommitInterval. A
	// negative duration skips it.
	FreshnessDuration       time.Duration
	FreshnessEvery          time.Duration
	FreshnessCommitInterval time.Duration

	// The scan phases materialize ScanRows rows into a table of
	// ScanCommitInterval, time TableScanSQL ScanRuns times, then again
	// with TailRows more rows in the table's fresh tail. Negative
	// ScanRows skips them (so does a build without SQL).
	ScanRows           int
	ScanCommitInterval time.Duration
	TailRows           int
	ScanRuns           int

	// LeaseDuration is the tables module's (0: its default, 10s). A new
	// table's materializer starts within a quarter of it.
	LeaseDuration time.Duration
	// Dir is where the run's buckets are made ("" the system's temporary
	// directory).
	Dir string
	// Log tunes the agents' commit logs, as twoway serve on a directory.
	Log commitlog.Options
	// Profile, if set, receives a CPU profile of the materialization
	// phase (from the table's creation until it holds every row).
	Profile io.Writer
	// Progress, if set, gets a line as each phase starts.
	Progress io.Writer
}

func (o TableOptions) withDefaults() (TableOptions, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Rows, DefaultTableRows)
	def(&o.Partitions, DefaultTablePartitions)
	def(&o.ScanRows, DefaultScanRows)
	def(&o.TailRows, DefaultTailRows)
	def(&o.ScanRuns, DefaultScanRuns)
	defD(&o.CommitInterval, DefaultTableCommitInterval)
	defD(&o.FreshnessDuration, DefaultFreshnessDuration)
	defD(&o.FreshnessEvery, DefaultFreshnessEvery)
	defD(&o.FreshnessCommitInterval, DefaultFreshnessCommitInterval)
	defD(&o.ScanCommitInterval, DefaultScanCommitInterval)
	switch {
	case o.Rows < 1 || o.TailRows < 1 || o.ScanRuns < 1:
		return o, errors.New("rows, tail rows and scan runs must be positive")
	case o.Partitions < 1 || o.Partitions > stream.MaxPartitions:
		return o, fmt.Errorf("partitions %d out of range: use 1 to %d", o.Partitions, stream.MaxPartitions)
	case o.CommitInterval < 100*time.Millisecond || o.FreshnessCommitInterval < 100*time.Millisecond || o.ScanCommitInterval < 100*time.Millisecond:
		return o, errors.New("commit intervals must be at least 100ms")
	case o.FreshnessEvery <= 0:
		return o, errors.New("the freshness phase's produce interval must be positive")
	case o.LeaseDuration < 0:
		return o, errors.New("the lease duration must not be negative")
	}
	return o, nil
}

// TableResult is what Table measured. Times are in seconds, latencies in
// milliseconds, sizes in MB (10^6 bytes).
type TableResult struct {
	Partitions int `json:"partitions"`

	// Materialization: Rows JSON records produced before the table was
	// created, timed from its materializer's start (the lease taken)
	// until the table covers every partition's end.
	Rows                   int     `json:"rows"`
	CommitIntervalMs       float64 `json:"commit_interval_ms"`
	MaterializeRowsS       float64 `json:"materialize_rows_s"`
	MaterializeS           float64 `json:"materialize_s"`
	MaterializeFromCreateS float64 `json:"materialize_from_create_s"`
	MaterializeCommits     int64   `json:"materialize_commits"`
	MaterializeFiles       int     `json:"materialize_files"`
	MaterializeMB          float64 `json:"materialize_mb"`
	// Parquet: the same rows, built as Arrow records of the table's own
	// Arrow schema and written with pqarrow (iceberg-go's writer
	// settings: zstd) into as many files.
	ParquetRowsS float64 `json:"parquet_rows_s"`
	ParquetS     float64 `json:"parquet_s"`
	ParquetFiles int     `json:"parquet_files"`
	ParquetMB    float64 `json:"parquet_mb"`
	// MaterializeRatio is MaterializeRowsS / ParquetRowsS.
	MaterializeRatio float64 `json:"materialize_ratio"`

	Freshness *TableFreshness `json:"freshness,omitempty"`
	Scan      *TableScan      `json:"scan,omitempty"`

	// Load1 is the 1-minute load average when the run started (Linux).
	Load1   float64 `json:"load_1m,omitempty"`
	Machine Machine `json:"machine"`
}

// TableFreshness is the freshness phase: from a record's produce
// acknowledgement until the table's committed offsets pass it (its row
// in a committed Iceberg snapshot), one record per produce call.
type TableFreshness struct {
	CommitIntervalMs float64 `json:"commit_interval_ms"`
	EveryMs          float64 `json:"every_ms"`
	DurationS        float64 `json:"duration_s"`
	Samples          int     `json:"samples"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	AckP50Ms         float64 `json:"ack_p50_ms"`
	Commits          int64   `json:"commits"`
}

// TableScan is the scan phases: TableScanSQL through twoway's SQL over
// a table of Rows committed rows, against DuckDB alone over one Parquet
// file of the same rows written by DuckDB; then through twoway with
// TailRows more rows in the table's fresh tail.
type TableScan struct {
	Rows  int `json:"rows"`
	Runs  int `json:"runs"`
	Files int `json:"files"`
	// MaterializeS is how long the table took to hold the rows (from
	// its creation; not a target).
	MaterializeS   float64 `json:"materialize_s"`
	TwowayBestMs   float64 `json:"twoway_best_ms"`
	TwowayMedianMs float64 `json:"twoway_median_ms"`
	DuckDBBestMs   float64 `json:"duckdb_best_ms"`
	DuckDBMedianMs float64 `json:"duckdb_median_ms"`
	DuckDBWriteS   float64 `json:"duckdb_write_s"`
	DuckDBThreads  int     `json:"duckdb_threads"`
	// Ratio is TwowayBestMs / DuckDBBestMs; MedianRatio the same of the
	// medians.
	Ratio       float64 `json:"ratio"`
	MedianRatio float64 `json:"median_ratio"`

	TailRows     int     `json:"tail_rows"`
	TailBestMs   float64 `json:"tail_best_ms"`
	TailMedianMs float64 `json:"tail_median_ms"`
	// TailRatio is TailBestMs / TwowayBestMs.
	TailRatio float64 `json:"tail_ratio"`

	// The answer of the last run with the tail (count, sum, max).
	Count  int64   `json:"count"`
	Sum    float64 `json:"sum"`
	MaxID  int64   `json:"max_id"`
	Reason string  `json:"skipped,omitempty"`
}

// tableSchema is the benchmark's table schema; record i's value is
// tableValue(i).
func tableSchema() *tables.Schema {
	return &tables.Schema{Columns: []tables.Column{
		{Name: "id", Type: "long", Required: true},
		{Name: "amount", Type: "double"},
		{Name: "item", Type: "string"},
	}}
}

// tableAmount is record i's amount: a multiple of 0.25 below 2,500, so
// that every sum of them is exact in a double.
func tableAmount(i int64) float64 { return float64(i%10000) / 4 }

// tableAmountSQL computes tableAmount in DuckDB for i.
const tableAmountSQL = "CAST(i % 10000 AS DOUBLE) / 4"

// tableValue appends record i's JSON value to buf.
func tableValue(buf []byte, i int64) []byte {
	buf = append(buf, `{"id": `...)
	buf = strconv.AppendInt(buf, i, 10)
	buf = append(buf, `, "amount": `...)
	buf = strconv.AppendFloat(buf, tableAmount(i), 'f', -1, 64)
	buf = append(buf, `, "item": "item-`...)
	buf = strconv.AppendInt(buf, i, 10)
	return append(buf, `"}`...)
}

// tableExpect is the aggregate of records from to to-1.
func tableExpect(from, to int64) (count int64, sum float64, maxID int64) {
	for i := from; i < to; i++ {
		sum += tableAmount(i)
	}
	return to - from, sum, to - 1
}

// tableAgent is one in-process agent: streams and tables on a directory
// bucket.
type tableAgent struct {
	set    *module.Set
	st     *stream.Service
	tables *tables.Module
}

func openTableAgent(ctx context.Context, dir, cacheDir string, workers bool, opts TableOptions) (*tableAgent, error) {
	b, err := filebucket.Open(dir)
	if err != nil {
		return nil, err
	}
	a := &tableAgent{st: stream.New(stream.Options{})}
	a.tables = tables.New(tables.Config{Streams: a.st, Workers: workers, CacheDir: cacheDir, LeaseDuration: opts.LeaseDuration})
	logOpts := opts.Log
	logOpts.Logger = quietLogger()
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: logOpts, HTTP: http.NewServeMux(), Logger: logOpts.Logger,
		Metrics: prometheus.NewRegistry()}, a.st, a.tables)
	if err != nil {
		return nil, err
	}
	a.set = set
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := set.Log().EnableFeatures(wctx); err != nil {
		set.Close()
		return nil, err
	}
	if err := set.Log().WaitEnabled(wctx, "type:400"); err != nil {
		set.Close()
		return nil, fmt.Errorf("tables not enabled: %w", err)
	}
	return a, nil
}

func (a *tableAgent) close() { a.set.Close() }

// produceRows produces records from to to-1 into topic, record i into
// partition i % partitions, in batches of tableBatchRecords, one
// producer per partition. It returns the partitions' end offsets.
func (a *tableAgent) produceRows(ctx context.Context, topic string, from, to int64, partitions int) (map[int32]int64, error) {
	errs := make([]error, partitions)
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Go(func() {
			recs := make([]records.Record, 0, tableBatchRecords)
			var arena []byte
			flush := func() error {
				if len(recs) == 0 {
					return nil
				}
				raw := records.Encode(recs)
				recs, arena = recs[:0], arena[:0]
				return produceRaw(ctx, a.st, topic, stream.Batch{Partition: int32(p), Raw: raw})
			}
			first := from + (int64(p)-from%int64(partitions)+int64(partitions))%int64(partitions)
			for i := first; i < to; i += int64(partitions) {
				start := len(arena)
				arena = tableValue(arena, i)
				recs = append(recs, records.Record{Timestamp: time.Now().UnixMilli(), Value: arena[start:len(arena):len(arena)]})
				if len(recs) == tableBatchRecords {
					if errs[p] = flush(); errs[p] != nil {
						return
					}
				}
			}
			errs[p] = flush()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a.ends(topic)
}

// ends are a topic's partitions' end offsets.
func (a *tableAgent) ends(topic string) (map[int32]int64, error) {
	ti, err := a.st.Topic(topic)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	for _, p := range ti.PartitionsInfo {
		ends[p.Partition] = p.End
	}
	return ends, nil
}

// waitWorker waits until a materializer holds the table's lease: it
// starts materializing right then.
func (a *tableAgent) waitWorker(ctx context.Context, name string) (time.Time, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if a.set.Log().Lease("tables/"+name).Holder != "" {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no materializer took table %s's lease in 2 minutes", name)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// waitCovered waits until the table's committed offsets reach ends.
func (a *tableAgent) waitCovered(ctx context.Context, name string, ends map[int32]int64, timeout time.Duration) (*tables.Table, error) {
	deadline := time.Now().Add(timeout)
	for {
		t, ok := a.tables.Get(name)
		if !ok {
			return nil, fmt.Errorf("no table %s", name)
		}
		if covers(t.Offsets, ends) {
			return t, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("table %s covers %v of %v after %v", name, t.Offsets, ends, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func covers(offsets, ends map[int32]int64) bool {
	for p, end := range ends {
		if offsets[p] < end {
			return false
		}
	}
	return true
}

// dataFiles are the local paths of a table's data files, and their size.
func dataFiles(dir string, t *tables.Table) ([]string, int64, error) {
	var paths []string
	var size int64
	for k := range t.Live {
		if !strings.HasSuffix(k, ".parquet") || strings.Contains(k, "/metadata/") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(k))
		fi, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		paths = append(paths, p)
		size += fi.Size()
	}
	slices.Sort(paths)
	return paths, size, nil
}

// Table runs the tables benchmark: materialization against writing the
// same rows with pqarrow alone, freshness at the default commit
// interval, a scan-aggregate through twoway's SQL against DuckDB alone
// over one Parquet file, and the same with rows in the fresh tail.
func Table(ctx context.Context, opts TableOptions) (res TableResult, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return TableResult{}, fmt.Errorf("bench: %w", err)
	}
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}
	root, err := os.MkdirTemp(opts.Dir, "twoway-bench-table-")
	if err != nil {
		return TableResult{}, err
	}
	defer os.RemoveAll(root)
	res = TableResult{Partitions: opts.Partitions, Rows: opts.Rows, CommitIntervalMs: Millis(opts.CommitInterval),
		Load1: loadAverage(), Machine: CurrentMachine()}

	progress("materialize: producing %d records over %d partitions, then a table of them (commit interval %v), then pqarrow alone",
		opts.Rows, opts.Partitions, opts.CommitInterval)
	if err := tableMaterialize(ctx, filepath.Join(root, "materialize"), opts, &res); err != nil {
		return TableResult{}, fmt.Errorf("bench: materialization phase: %w", err)
	}
	if opts.FreshnessDuration > 0 {
		progress("freshness: a record every %v for %v, commit interval %v", opts.FreshnessEvery, opts.FreshnessDuration, opts.FreshnessCommitInterval)
		f, err := tableFreshness(ctx, filepath.Join(root, "freshness"), opts)
		if err != nil {
			return TableResult{}, fmt.Errorf("bench: freshness phase: %w", err)
		}
		res.Freshness = f
	}
	switch {
	case opts.ScanRows < 0:
	case !haveSQL:
		res.Scan = &TableScan{Reason: "built without SQL (nosql)"}
		progress("scan: skipped, %s", res.Scan.Reason)
	default:
		progress("scan: producing and materializing %d records (commit interval %v)", opts.ScanRows, opts.ScanCommitInterval)
		s, err := tableScan(ctx, filepath.Join(root, "scan"), opts, progress)
		if err != nil {
			return TableResult{}, fmt.Errorf("bench: scan phase: %w", err)
		}
		res.Scan = s
	}
	return res, nil
}

// loadAverage is the 1-minute load average, or 0 where there is none.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

func tableMaterialize(ctx context.Context, dir string, opts TableOptions, res *TableResult) error {
	bucketDir := filepath.Join(dir, "bucket")
	a, err := openTableAgent(ctx, bucketDir, filepath.Join(dir, "cache"), true, opts)
	if err != nil {
		return fmt.Errorf("opening the agent: %w", err)
	}
	defer a.close()
	const name = "materialize"
	if err := a.st.CreateTopic(ctx, stream.TopicConfig{Name: name, Partitions: int32(opts.Partitions)}); err != nil {
		return err
	}
	ends, err := a.produceRows(ctx, name, 0, int64(opts.Rows), opts.Partitions)
	if err != nil {
		return fmt.Errorf("producing: %w", err)
	}
	if opts.Profile != nil {
		if err := pprof.StartCPUProfile(opts.Profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	created := time.Now()
	if _, err := a.tables.Create(ctx, tables.CreateRequest{Name: name, Topic: name, Schema: tableSchema(), CommitInterval: opts.CommitInterval}); err != nil {
		return err
	}
	started, err := a.waitWorker(ctx, name)
	if err != nil {
		return err
	}
	t, err := a.waitCovered(ctx, name, ends, max(5*time.Minute, time.Duration(opts.Rows)*100*time.Microsecond))
	if err != nil {
		return err
	}
	done := time.Now()
	if opts.Profile != nil {
		pprof.StopCPUProfile()
	}
	if t.Rows != int64(opts.Rows) || t.DLQRows != 0 {
		return fmt.Errorf("the table holds %d rows and %d dead letters, want %d and 0", t.Rows, t.DLQRows, opts.Rows)
	}
	res.MaterializeS = done.Sub(started).Seconds()
	res.MaterializeFromCreateS = done.Sub(created).Seconds()
	res.MaterializeRowsS = float64(opts.Rows) / res.MaterializeS
	res.MaterializeCommits = t.Commits
	files, size, err := dataFiles(bucketDir, t)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("the table has no data files")
	}
	res.MaterializeFiles, res.MaterializeMB = len(files), float64(size)/1e6

	// The baseline, in the same directory: the table's own Arrow schema
	// (as its first data file stores it), as many files.
	schema, err := parquetSchema(files[0])
	if err != nil {
		return err
	}
	perFile := (opts.Rows + len(files) - 1) / len(files)
	out := filepath.Join(dir, "pqarrow")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	n, bytes, err := writeParquet(out, schema, int64(opts.Rows), int64(perFile), opts.Partitions, created)
	if err != nil {
		return fmt.Errorf("pqarrow baseline: %w", err)
	}
	res.ParquetS = time.Since(start).Seconds()
	res.ParquetRowsS = float64(opts.Rows) / res.ParquetS
	res.ParquetFiles, res.ParquetMB = n, float64(bytes)/1e6
	res.MaterializeRatio = res.MaterializeRowsS / res.ParquetRowsS
	return nil
}

// parquetSchema reads the Arrow schema a Parquet file stores.
func parquetSchema(path string) (*arrow.Schema, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	return fr.Schema()
}

// parquetWriterProps are iceberg-go's Parquet writer settings for the
// table's properties (table/internal/parquet_files.go): zstd at its
// default level, row groups of up to 1 Mi rows, 1 MiB v2 data pages of
// up to 20,000 rows, 2 MiB dictionary pages, and the cost-based
// dictionary fallback on every leaf column.
func parquetWriterProps(schema *arrow.Schema, arrProps pqarrow.ArrowWriterProperties) (*parquet.WriterProperties, error) {
	base := []parquet.WriterProperty{
		parquet.WithMaxRowGroupLength(1 << 20),
		parquet.WithDataPageSize(1 << 20),
		parquet.WithDataPageVersion(parquet.DataPageV2),
		parquet.WithBatchSize(20000),
		parquet.WithDictionaryPageSizeLimit(2 << 20),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(compress.DefaultCompressionLevel),
		parquet.WithDictionaryDefault(true),
	}
	ps, err := pqarrow.ToParquet(schema, parquet.NewWriterProperties(base...), arrProps)
	if err != nil {
		return nil, err
	}
	for i := range ps.NumColumns() {
		base = append(base, parquet.WithDictionaryCostFallbackFor(ps.Column(i).Path(), true))
	}
	return parquet.NewWriterProperties(base...), nil
}

// writeParquet builds rows rows of the table as Arrow records of schema
// and writes them with pqarrow into files of about perFile rows. Record i
// is offset i / partitions of partition i % partitions, as produced; a
// file holds a run of offsets of each partition in turn, as the
// materializer reads them. It returns the files and bytes written.
func writeParquet(dir string, schema *arrow.Schema, rows, perFile int64, partitions int, ts time.Time) (int, int64, error) {
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	props, err := parquetWriterProps(schema, arrProps)
	if err != nil {
		return 0, 0, err
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	parts := int64(partitions)
	// appenders append the row of record i (offset o of partition p).
	appenders := make([]func(p, o, i int64), len(schema.Fields()))
	var item []byte
	base := ts.UnixMicro()
	for c, f := range schema.Fields() {
		b := rb.Field(c)
		var ok bool
		switch f.Name {
		case "_partition":
			var x *array.Int32Builder
			if x, ok = b.(*array.Int32Builder); ok {
				appenders[c] = func(p, _, _ int64) { x.Append(int32(p)) }
			}
		case "_offset":
			var x *array.Int64Builder
			if x, ok = b.(*array.Int64Builder); ok {
				appenders[c] = func(_, o, _ int64) { x.Append(o) }
			}
		case "_timestamp":
			var x *array.TimestampBuilder
			if x, ok = b.(*array.TimestampBuilder); ok {
				appenders[c] = func(_, o, _ int64) { x.Append(arrow.Timestamp(base + o/tableBatchRecords*1000)) }
			}
		case "_key", "_headers":
			ok = true
			appenders[c] = func(_, _, _ int64) { b.AppendNull() }
		case "id":
			var x *array.Int64Builder
			if x, ok = b.(*array.Int64Builder); ok {
				appenders[c] = func(_, _, i int64) { x.Append(i) }
			}
		case "amount":
			var x *array.Float64Builder
			if x, ok = b.(*array.Float64Builder); ok {
				appenders[c] = func(_, _, i int64) { x.Append(tableAmount(i)) }
			}
		case "item":
			var x *array.StringBuilder
			if x, ok = b.(*array.StringBuilder); ok {
				appenders[c] = func(_, _, i int64) {
					item = strconv.AppendInt(append(item[:0], "item-"...), i, 10)
					x.BinaryBuilder.Append(item)
				}
			}
		}
		if !ok {
			return 0, 0, fmt.Errorf("the table's column %s (%s) is not one the benchmark knows", f.Name, f.Type)
		}
	}
	perPart := (perFile + parts - 1) / parts // offsets of each partition in a file
	files := 0
	var bytes int64
	for from := int64(0); from*parts < rows; from += perPart {
		for p := range parts {
			for o := from; o < from+perPart; o++ {
				i := o*parts + p
				if i >= rows {
					break
				}
				for _, app := range appenders {
					app(p, o, i)
				}
			}
		}
		rec := rb.NewRecordBatch()
		path := filepath.Join(dir, fmt.Sprintf("%05d.parquet", files))
		n, err := writeParquetFile(path, rec, props, arrProps)
		rec.Release()
		if err != nil {
			return 0, 0, err
		}
		files++
		bytes += n
	}
	return files, bytes, nil
}

func writeParquetFile(path string, rec arrow.RecordBatch, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, props, arrProps)
	if err != nil {
		return 0, err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// ackAt is a produced record's offset and acknowledgement time.
type ackAt struct {
	off int64
	at  time.Time
}

func tableFreshness(ctx context.Context, dir string, opts TableOptions) (*TableFreshness, error) {
	a, err := openTableAgent(ctx, filepath.Join(dir, "bucket"), filepath.Join(dir, "cache"), true, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the agent: %w", err)
	}
	defer a.close()
	const name = "fresh"
	if err := a.st.CreateTopic(ctx, stream.TopicConfig{Name: name, Partitions: int32(opts.Partitions)}); err != nil {
		return nil, err
	}
	if _, err := a.tables.Create(ctx, tables.CreateRequest{Name: name, Topic: name, Schema: tableSchema(), CommitInterval: opts.FreshnessCommitInterval}); err != nil {
		return nil, err
	}
	if _, err := a.waitWorker(ctx, name); err != nil {
		return nil, err
	}
	t0, _ := a.tables.Get(name)
	res := &TableFreshness{CommitIntervalMs: Millis(opts.FreshnessCommitInterval), EveryMs: Millis(opts.FreshnessEvery)}

	var (
		mu       sync.Mutex
		pending  = map[int32][]ackAt{}
		waiting  int
		produced bool
		fresh    Latencies
		ack      Latencies
	)
	// The watcher: every 5 ms, the records the table's offsets passed.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan error, 1)
	go func() {
		var drainBy time.Time
		drain := 3*opts.FreshnessCommitInterval + 30*time.Second
		for {
			select {
			case <-wctx.Done():
				watched <- wctx.Err()
				return
			case <-time.After(5 * time.Millisecond):
			}
			t, ok := a.tables.Get(name)
			now := time.Now()
			if !ok {
				watched <- fmt.Errorf("no table %s", name)
				return
			}
			mu.Lock()
			for p, q := range pending {
				i := 0
				for i < len(q) && q[i].off < t.Offsets[p] {
					fresh.Add(now.Sub(q[i].at))
					i++
				}
				pending[p] = q[i:]
				waiting -= i
			}
			done, left := produced, waiting
			mu.Unlock()
			if done && drainBy.IsZero() {
				drainBy = now.Add(drain)
			}
			if done && left == 0 {
				watched <- nil
				return
			}
			if done && now.After(drainBy) {
				watched <- fmt.Errorf("%d records not in the table %v after the last was produced", left, drain)
				return
			}
		}
	}()

	start := time.Now()
	tick := time.NewTicker(opts.FreshnessEvery)
	var perr error
	var value []byte
	for i := int64(0); time.Since(start) < opts.FreshnessDuration; i++ {
		select {
		case <-ctx.Done():
			perr = ctx.Err()
		case <-tick.C:
		}
		if perr != nil {
			break
		}
		p := int32(i % int64(opts.Partitions))
		value = tableValue(value[:0], i)
		sent := time.Now()
		bases, errs, err := a.st.Produce(ctx, name, []stream.Batch{{Partition: p, Records: []records.Record{{Value: value}}}})
		if err == nil {
			err = errs[0]
		}
		if err != nil {
			perr = err
			break
		}
		acked := time.Now()
		ack.Add(acked.Sub(sent))
		mu.Lock()
		pending[p] = append(pending[p], ackAt{off: bases[0], at: acked})
		waiting++
		mu.Unlock()
	}
	tick.Stop()
	res.DurationS = time.Since(start).Seconds()
	mu.Lock()
	produced = true
	mu.Unlock()
	if perr != nil {
		return nil, perr
	}
	if err := <-watched; err != nil {
		return nil, err
	}
	t1, _ := a.tables.Get(name)
	res.Samples = fresh.Len()
	res.P50Ms, res.P99Ms, res.MaxMs = Millis(fresh.Percentile(50)), Millis(fresh.Percentile(99)), Millis(fresh.Percentile(100))
	res.AckP50Ms = Millis(ack.Percentile(50))
	res.Commits = t1.Commits - t0.Commits
	return res, nil
}

func tableScan(ctx context.Context, dir string, opts TableOptions, progress func(string, ...any)) (*TableScan, error) {
	bucketDir, cacheDir := filepath.Join(dir, "bucket"), filepath.Join(dir, "cache")
	res := &TableScan{Rows: opts.ScanRows, Runs: opts.ScanRuns, TailRows: opts.TailRows}
	const name = "t"
	// Materialize the rows with one agent, then query with another that
	// does not materialize (Workers off): the tail rows stay in the tail.
	a, err := openTableAgent(ctx, bucketDir, cacheDir, true, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the agent: %w", err)
	}
	if err := a.st.CreateTopic(ctx, stream.TopicConfig{Name: name, Partitions: int32(opts.Partitions)}); err != nil {
		a.close()
		return nil, err
	}
	ends, err := a.produceRows(ctx, name, 0, int64(opts.ScanRows), opts.Partitions)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("producing: %w", err)
	}
	created := time.Now()
	if _, err := a.tables.Create(ctx, tables.CreateRequest{Name: name, Topic: name, Schema: tableSchema(), CommitInterval: opts.ScanCommitInterval}); err != nil {
		a.close()
		return nil, err
	}
	t, err := a.waitCovered(ctx, name, ends, max(10*time.Minute, time.Duration(opts.ScanRows)*100*time.Microsecond))
	a.close()
	if err != nil {
		return nil, err
	}
	res.MaterializeS = time.Since(created).Seconds()
	if t.Rows != int64(opts.ScanRows) {
		return nil, fmt.Errorf("the table holds %d rows, want %d", t.Rows, opts.ScanRows)
	}
	files, _, err := dataFiles(bucketDir, t)
	if err != nil {
		return nil, err
	}
	res.Files = len(files)

	q, err := openTableAgent(ctx, bucketDir, cacheDir, false, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the querying agent: %w", err)
	}
	defer q.close()
	if err := q.set.Log().Sync(ctx); err != nil {
		return nil, err
	}
	if t, ok := q.tables.Get(name); !ok || !covers(t.Offsets, ends) {
		return nil, errors.New("the querying agent does not see the table's rows committed")
	}

	progress("scan: %s, %d runs through twoway, then DuckDB alone", TableScanSQL, opts.ScanRuns)
	count, sum, maxID := tableExpect(0, int64(opts.ScanRows))
	best, median, err := timeRuns(opts.ScanRuns, func() error { return q.aggregate(ctx, count, sum, maxID, res) })
	if err != nil {
		return nil, err
	}
	res.TwowayBestMs, res.TwowayMedianMs = best, median
	d, err := duckdbScan(ctx, filepath.Join(dir, "duckdb.parquet"), int64(opts.ScanRows), opts.ScanRuns)
	if err != nil {
		return nil, fmt.Errorf("DuckDB alone: %w", err)
	}
	if d.count != count || d.sum != sum || d.maxID != maxID {
		return nil, fmt.Errorf("DuckDB alone answered %d, %v, %d; want %d, %v, %d", d.count, d.sum, d.maxID, count, sum, maxID)
	}
	res.DuckDBBestMs, res.DuckDBMedianMs, res.DuckDBWriteS, res.DuckDBThreads = d.bestMs, d.medianMs, d.writeS, d.threads
	res.Ratio, res.MedianRatio = res.TwowayBestMs/res.DuckDBBestMs, res.TwowayMedianMs/res.DuckDBMedianMs

	progress("tail: %d more records in the table's fresh tail, %d runs", opts.TailRows, opts.ScanRuns)
	total := int64(opts.ScanRows + opts.TailRows)
	if _, err := q.produceRows(ctx, name, int64(opts.ScanRows), total, opts.Partitions); err != nil {
		return nil, fmt.Errorf("producing the tail: %w", err)
	}
	count, sum, maxID = tableExpect(0, total)
	best, median, err = timeRuns(opts.ScanRuns, func() error { return q.aggregate(ctx, count, sum, maxID, res) })
	if err != nil {
		return nil, err
	}
	res.TailBestMs, res.TailMedianMs = best, median
	res.TailRatio = res.TailBestMs / res.TwowayBestMs
	if t, _ := q.tables.Get(name); t.Rows != int64(opts.ScanRows) {
		return nil, fmt.Errorf("the table committed %d rows during the tail runs, want it to stay at %d", t.Rows, opts.ScanRows)
	}
	return res, nil
}

// aggregate runs TableScanSQL through twoway and checks its answer.
func (a *tableAgent) aggregate(ctx context.Context, count int64, sum float64, maxID int64, res *TableScan) error {
	r, err := a.tables.Query(ctx, TableScanSQL)
	if err != nil {
		return err
	}
	c, s, m, err := aggregateRow(r)
	if err != nil {
		return err
	}
	if c != count || s != sum || m != maxID {
		return fmt.Errorf("twoway answered %d, %v, %d; want %d, %v, %d", c, s, m, count, sum, maxID)
	}
	res.Count, res.Sum, res.MaxID = c, s, m
	return nil
}

func aggregateRow(r *sqlengine.Result) (int64, float64, int64, error) {
	if len(r.Rows) != 1 || len(r.Rows[0]) != 3 {
		return 0, 0, 0, fmt.Errorf("the aggregate returned %d rows", len(r.Rows))
	}
	row := r.Rows[0]
	c, ok1 := row[0].(int64)
	s, ok2 := row[1].(float64)
	m, ok3 := row[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("the aggregate returned %T, %T, %T", row[0], row[1], row[2])
	}
	return c, s, m, nil
}

// timeRuns runs f once untimed (warming caches), then runs times, and
// returns the best and the median in milliseconds.
func timeRuns(runs int, f func() error) (best, median float64, err error) {
	if err := f(); err != nil {
		return 0, 0, err
	}
	var l Latencies
	for range runs {
		start := time.Now()
		if err := f(); err != nil {
			return 0, 0, err
		}
		l.Add(time.Since(start))
	}
	return Millis(l.Percentile(0)), Millis(l.Percentile(50)), nil
}

// duckdbResult is the DuckDB-alone baseline.
type duckdbResult struct {
	writeS           float64
	bestMs, medianMs float64
	threads          int
	count, maxID     int64
	sum              float64
}
