package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/instrument"
	"github.com/twoway/twoway/bucket/prefixed"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// Defaults for zero ProduceOptions fields.
const (
	DefaultPartitions = 1
	DefaultRecordSize = 1 << 10
	// DefaultBatchSize is Kafka's default batch.size: a Kafka producer
	// sends a partition's records once this many bytes are waiting (or its
	// linger.ms is up), so under load one produce call carries about this
	// much for one partition.
	DefaultBatchSize = 16 << 10
	// DefaultProducers keeps enough calls in flight for the group commit to
	// have something to group.
	DefaultProducers = 64
	// DefaultLinger and DefaultChunkUploads are the commit log's own
	// defaults, set explicitly so that a result can report them.
	DefaultLinger       = 5 * time.Millisecond
	DefaultChunkUploads = 4
)

// Limits on ProduceOptions.
const (
	MinRecordSize = 8 // the first 8 bytes of a record carry its send time
	MaxRecordSize = 1 << 20
	MaxBatchSize  = 4 << 20 // half the stream service's default request limit
	MaxProducers  = 4096
)

// ProduceOptions configures Produce. Zero fields take the defaults above.
type ProduceOptions struct {
	Partitions int // partitions of the benchmark's topic
	RecordSize int // bytes of each record's value (no key, no headers)
	// BatchSize is the record bytes of one produce call, all for one
	// partition: BatchSize/RecordSize records, at least one.
	BatchSize int
	Producers int           // goroutines each making one produce call at a time
	Duration  time.Duration // of the produce phase, and of each baseline phase
	// Log tunes the commit log of both agents (poll intervals, chunk
	// sizes...). Zero fields take the commit log's defaults, except Linger
	// and ChunkUploads, which take DefaultLinger and DefaultChunkUploads.
	Log commitlog.Options
}

func (o ProduceOptions) withDefaults() (ProduceOptions, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Partitions, DefaultPartitions)
	def(&o.RecordSize, DefaultRecordSize)
	def(&o.BatchSize, DefaultBatchSize)
	def(&o.Producers, DefaultProducers)
	def(&o.Log.ChunkUploads, DefaultChunkUploads)
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Log.Linger == 0 {
		o.Log.Linger = DefaultLinger
	}
	switch {
	case o.Partitions < 0 || o.Partitions > stream.MaxPartitions:
		return o, fmt.Errorf("partitions %d out of range: use 1 to %d", o.Partitions, stream.MaxPartitions)
	case o.RecordSize < MinRecordSize || o.RecordSize > MaxRecordSize:
		return o, fmt.Errorf("record size %d out of range: use %d to %d bytes", o.RecordSize, MinRecordSize, MaxRecordSize)
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return o, fmt.Errorf("batch size %d out of range: use 1 to %d bytes", o.BatchSize, MaxBatchSize)
	case o.Producers < 0 || o.Producers > MaxProducers:
		return o, fmt.Errorf("producers %d out of range: use 1 to %d", o.Producers, MaxProducers)
	case o.Duration < 0:
		return o, fmt.Errorf("duration %v is negative", o.Duration)
	case o.Log.Linger < 0:
		return o, fmt.Errorf("linger %v is negative", o.Log.Linger)
	case o.Log.ChunkUploads < 0:
		return o, fmt.Errorf("chunk uploads %d is negative", o.Log.ChunkUploads)
	}
	return o, nil
}

// recordsPerCall is how many records one produce call carries.
func (o ProduceOptions) recordsPerCall() int { return max(1, o.BatchSize/o.RecordSize) }

// ProduceResult is what Produce measured. Latencies are in milliseconds; MB
// is 10^6 bytes of record values (the batch framing around them is not
// counted).
type ProduceResult struct {
	Bucket string `json:"bucket"`

	// The bucket, measured in the same run by Bucket with objects the size
	// of the log's average chunk (or commit, when every batch was inlined)
	// and as many workers as the log uploads chunks at once.
	BaselinePutMBs           float64      `json:"baseline_put_mb_s"`
	BaselinePutIfAbsentP50Ms float64      `json:"baseline_put_if_absent_p50_ms"`
	Baseline                 BucketResult `json:"baseline"`

	ProduceMBs      float64 `json:"produce_mb_s"`
	RecordsS        float64 `json:"records_s"`
	ProduceP50Ms    float64 `json:"produce_p50_ms"` // call to acknowledgement
	ProduceP99Ms    float64 `json:"produce_p99_ms"`
	E2EP50Ms        float64 `json:"e2e_p50_ms"` // call to a reader in another agent holding the records
	E2EP99Ms        float64 `json:"e2e_p99_ms"`
	PutsPerS        float64 `json:"puts_per_s"`       // the writing agent's Put/PutIfAbsent/PutIfMatch calls
	ThroughputRatio float64 `json:"throughput_ratio"` // ProduceMBs / BaselinePutMBs

	Calls          int     `json:"produce_calls"`
	Records        int64   `json:"records"`
	Commits        int64   `json:"commits"`
	Chunks         int64   `json:"chunks"`
	AvgChunkBytes  float64 `json:"avg_chunk_bytes"`
	AvgCommitBytes float64 `json:"avg_commit_bytes"`
	Conflicts      int64   `json:"conflicts"`

	Partitions   int     `json:"partitions"`
	RecordSize   int     `json:"record_size"`
	BatchSize    int     `json:"batch_size"`
	Producers    int     `json:"producers"`
	LingerMs     float64 `json:"linger_ms"`
	ChunkUploads int     `json:"chunk_uploads"`
	DurationS    float64 `json:"duration_s"` // of the produce phase, as measured

	Machine Machine `json:"machine"`
}

// benchTopic is the topic Produce writes, alone under its own prefix.
const benchTopic = "bench"

// Produce benchmarks the commit log on b against b itself, in one run:
//
//  1. Log: two agents (stream services) open the same fresh log under
//     bench/produce-<random>/. On the writing agent, opts.Producers
//     goroutines each make produce calls of opts.BatchSize bytes of records,
//     one call at a time, spreading the calls over the topic's partitions,
//     for opts.Duration. Each record carries the time its call started; the
//     other agent tails the log and reads every record back. Produce
//     measures throughput, the latency of a call until its acknowledgement,
//     the latency from a call until the reader holds its records (end to
//     end), and the writing agent's PUTs per second.
//  2. Baseline: Bucket on b with objects of the size the log wrote (its
//     average chunk, or its average commit when every batch was inlined) and
//     as many workers as the log uploads chunks at once (ChunkUploads): the
//     parallelism the log itself uses for data. ThroughputRatio compares the
//     two.
//
// The log's objects are deleted at the end, also when the benchmark fails
// or ctx is cancelled. If the measurement succeeded and only the deletion
// failed, Produce returns the result together with the error.
func Produce(ctx context.Context, b bucket.Bucket, opts ProduceOptions) (res ProduceResult, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return ProduceResult{}, fmt.Errorf("bench: %w", err)
	}
	prefix := "bench/produce-" + randomHex(8) + "/"
	pb, err := prefixed.Wrap(b, prefix)
	if err != nil {
		return ProduceResult{}, err
	}
	cleaned := false
	cleanup := func() error {
		cleaned = true
		// Clean up even after cancellation, but not forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if err := deleteAll(cctx, pb, 16); err != nil {
			return fmt.Errorf("bench: deleting the objects under %s: %w", prefix, err)
		}
		return nil
	}
	defer func() {
		if !cleaned {
			if cerr := cleanup(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()

	res = ProduceResult{
		Bucket:       b.String(),
		Partitions:   opts.Partitions,
		RecordSize:   opts.RecordSize,
		BatchSize:    opts.BatchSize,
		Producers:    opts.Producers,
		LingerMs:     Millis(opts.Log.Linger),
		ChunkUploads: opts.Log.ChunkUploads,
		Machine:      CurrentMachine(),
	}
	if err := measureLog(ctx, pb, opts, &res); err != nil {
		return ProduceResult{}, fmt.Errorf("bench: produce phase: %w", err)
	}
	// The log's objects go before the baseline runs, so that the baseline
	// does not share the bucket with a cleanup.
	cleanupErr := cleanup()

	size := res.AvgChunkBytes
	if res.Chunks == 0 {
		size = res.AvgCommitBytes
	}
	base, err := Bucket(ctx, b, BucketOptions{
		ObjectSize:  max(1, int(size+0.5)),
		Concurrency: opts.Log.ChunkUploads,
		Duration:    opts.Duration,
	})
	if base.PutCount == 0 { // nothing measured
		return ProduceResult{}, fmt.Errorf("bench: baseline: %w", err)
	}
	res.Baseline = base
	res.BaselinePutMBs = base.PutMBs
	res.BaselinePutIfAbsentP50Ms = base.PutIfAbsentP50Ms
	if base.PutMBs > 0 {
		res.ThroughputRatio = res.ProduceMBs / base.PutMBs
	}
	return res, errors.Join(err, cleanupErr)
}

// measureLog runs the log phase and fills in its part of res.
func measureLog(ctx context.Context, b bucket.Bucket, opts ProduceOptions, res *ProduceResult) (err error) {
	logOpts := opts.Log
	if logOpts.Logger == nil {
		logOpts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// The writer runs as a serving agent does, janitor included; the
	// reader is a second agent that only reads, so that every PUT counted
	// is the writer's.
	wb := instrument.Wrap(b, nil)
	writer, err := stream.Open(ctx, wb, stream.Options{Log: logOpts})
	if err != nil {
		return fmt.Errorf("opening the writing agent: %w", err)
	}
	defer writer.Close()
	readOpts := logOpts
	readOpts.NoJanitor = true
	reader, err := stream.Open(ctx, b, stream.Options{Log: readOpts})
	if err != nil {
		return fmt.Errorf("opening the reading agent: %w", err)
	}
	defer reader.Close()
	if err := writer.CreateTopic(ctx, stream.TopicConfig{Name: benchTopic, Partitions: int32(opts.Partitions)}); err != nil {
		return fmt.Errorf("creating the topic: %w", err)
	}
	if err := reader.Sync(ctx); err != nil {
		return fmt.Errorf("reading agent: %w", err)
	}

	// A failing reader stops the producers too, and its error is the one
	// reported.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	epoch := time.Now() // send times are offsets from here, on the monotonic clock
	tl := newTailer(reader, opts.Partitions, epoch)
	tailDone := make(chan error, 1)
	go func() {
		err := tl.run(ctx)
		if err != nil {
			err = fmt.Errorf("reading agent: %w", err)
			cancel(err)
		}
		tailDone <- err
	}()
	tailing := true
	defer func() {
		if tailing { // stopped early: stop the reader before closing its agent
			cancel(nil)
			<-tailDone
		}
	}()

	stats := &writer.Log().Stats
	writes0 := wb.Writes()
	_, written0 := wb.Bytes()
	commits0, chunks0, chunkBytes0, conflicts0 := stats.Commits.Load(), stats.ChunksWritten.Load(), stats.ChunkBytes.Load(), stats.Conflicts.Load()

	lat, elapsed, calls, recs, err := produce(ctx, writer, opts, epoch)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			return cause
		}
		return err
	}
	writes := wb.Writes() - writes0
	_, written := wb.Bytes()
	written -= written0
	res.Commits = stats.Commits.Load() - commits0
	res.Chunks = stats.ChunksWritten.Load() - chunks0
	chunkBytes := stats.ChunkBytes.Load() - chunkBytes0
	res.Conflicts = stats.Conflicts.Load() - conflicts0

	res.DurationS = elapsed.Seconds()
	res.Calls = calls
	res.Records = recs
	res.RecordsS = float64(recs) / elapsed.Seconds()
	res.ProduceMBs = float64(recs) * float64(opts.RecordSize) / 1e6 / elapsed.Seconds()
	res.ProduceP50Ms, res.ProduceP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))
	res.PutsPerS = float64(writes) / elapsed.Seconds()
	if res.Chunks > 0 {
		res.AvgChunkBytes = float64(chunkBytes) / float64(res.Chunks)
	}
	// Everything else the writer wrote is commits, but for the odd
	// checkpoint.
	if n := writes - res.Chunks; n > 0 {
		res.AvgCommitBytes = float64(written-chunkBytes) / float64(n)
	}

	// Wait until the reader holds everything that was acknowledged.
	ti, err := writer.Topic(benchTopic)
	if err != nil {
		return err
	}
	ends := make([]int64, len(ti.PartitionsInfo))
	for i, p := range ti.PartitionsInfo {
		ends[i] = p.End
	}
	tl.finish(ends)
	catchUp := time.NewTimer(max(30*time.Second, opts.Duration))
	defer catchUp.Stop()
	select {
	case err := <-tailDone:
		tailing = false
		if err != nil {
			return err
		}
	case <-catchUp.C:
		return fmt.Errorf("the reading agent did not catch up with the writer: it read %d of %d records", tl.read.Load(), recs)
	}
	if got := tl.read.Load(); got != recs {
		return fmt.Errorf("the reading agent read %d records, the writer had %d acknowledged", got, recs)
	}
	res.E2EP50Ms, res.E2EP99Ms = Millis(tl.e2e.Percentile(50)), Millis(tl.e2e.Percentile(99))
	return nil
}

// produce runs the producers for opts.Duration and returns the latency of
// every call, the wall time until the last call returned, and how many
// calls and records were acknowledged.
func produce(ctx context.Context, s *stream.Service, opts ProduceOptions, epoch time.Time) (*Latencies, time.Duration, int, int64, error) {
	n := opts.recordsPerCall()
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	batches := make([]*batchTemplate, opts.Producers)
	for w := range batches {
		var err error
		if batches[w], err = newBatchTemplate(rng, n, opts.RecordSize); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	var acks atomic.Int64
	lat, elapsed, err := run(ctx, opts.Producers, opts.Duration, func(ctx context.Context, w, seq int) error {
		// Producer w's calls go to partitions w, w+P, w+2P... (mod the
		// partition count): every partition gets its share.
		part := int32((w + seq*opts.Producers) % opts.Partitions)
		raw := batches[w].stamp(epoch, time.Now())
		_, errs, err := s.Produce(ctx, benchTopic, []stream.Batch{{Partition: part, Raw: raw}})
		if err == nil {
			err = errs[0]
		}
		if err != nil {
			return fmt.Errorf("producer %d, partition %d: %w", w, part, err)
		}
		acks.Add(1)
		return nil
	})
	if err != nil {
		return nil, elapsed, 0, 0, err
	}
	calls := int(acks.Load())
	return lat, elapsed, calls, int64(calls) * int64(n), nil
}

// batchTemplate is one producer's record batch, encoded once and stamped
// before each call with the call's time: producers send finished batches
// (as Kafka clients do, through the same validation), so that encoding,
// which a client does on its own machine, does not compete with the agents
// for CPU.
type batchTemplate struct {
	raw    []byte
	values []int // where each record's value starts in raw
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newBatchTemplate(rng io.Reader, n, size int) (*batchTemplate, error) {
	recs := make([]records.Record, n)
	for i := range recs {
		recs[i].Value = make([]byte, size)
		_, _ = rng.Read(recs[i].Value)
	}
	t := &batchTemplate{raw: records.Encode(recs)}
	var err error
	if t.values, err = valueOffsets(t.raw, n); err != nil || len(t.values) != n {
		return nil, fmt.Errorf("encoding a record batch: %d values found of %d (%v)", len(t.values), n, err)
	}
	// Check the walk by reading a stamped batch back in full.
	epoch := time.Now()
	got, _, err := records.Decode(t.stamp(epoch, epoch.Add(42)), nil)
	if err != nil || len(got) != n {
		return nil, fmt.Errorf("encoding a record batch: %d records read back of %d (%v)", len(got), n, err)
	}
	for _, r := range got {
		if len(r.Value) != size || binary.BigEndian.Uint64(r.Value) != 42 {
			return nil, errors.New("encoding a record batch: the send time is not where it was written")
		}
	}
	return t, nil
}

// valueOffsets walks the first n records (or all, if fewer) of b, an
// uncompressed v2 record batch, and returns where each one's value starts.
// Every value must hold at least 8 bytes. The layout is Kafka's (see package
// records): per record a length, attributes, timestamp and offset deltas,
// key, value length and value, then headers.
func valueOffsets(b []byte, n int) ([]int, error) {
	if len(b) < records.HeaderLen || b[21]&7 != records.CodecNone {
		return nil, errors.New("not an uncompressed record batch")
	}
	pos := records.HeaderLen
	bad := false
	varint := func() int64 {
		if bad || pos >= len(b) {
			bad = true
			return 0
		}
		v, k := binary.Varint(b[pos:])
		if k <= 0 {
			bad = true
			return 0
		}
		pos += k
		return v
	}
	var offs []int
	for len(offs) < n && pos < len(b) {
		length := varint()
		end := pos + int(length)
		pos++    // attributes
		varint() // timestamp delta
		varint() // offset delta
		if k := varint(); k > 0 {
			pos += int(k)
		}
		size := varint()
		if bad || length < 0 || end > len(b) || size < 8 || pos+int(size) > end {
			return offs, fmt.Errorf("record %d: no value of 8 bytes or more where expected", len(offs))
		}
		offs = append(offs, pos)
		pos = end
	}
	return offs, nil
}

// stamp writes the send time, as an offset from epoch, into the first 8
// bytes of every record's value and now as the batch's timestamps, and
// returns the batch. The previous batch must no longer be in use, which
// holds because a producer makes one call at a time.
func (t *batchTemplate) stamp(epoch, now time.Time) []byte {
	sent := uint64(now.Sub(epoch))
	for _, off := range t.values {
		binary.BigEndian.PutUint64(t.raw[off:], sent)
	}
	// The records' timestamp deltas are 0: base and max are the time.
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint64(t.raw[27:], ms)
	binary.BigEndian.PutUint64(t.raw[35:], ms)
	binary.BigEndian.PutUint32(t.raw[17:], crc32.Checksum(t.raw[21:], castagnoli))
	return t.raw
}

// tailer reads every partition of the topic on the reading agent as
// commits arrive, and measures for each batch the time from its send time
// to its arrival. Partitions are shared out among a few workers, each of
// which reads only the partitions that grew since it last looked, so the
// cost of a commit does not grow with the partition count.
type tailer struct {
	s     *stream.Service
	epoch time.Time
	parts int
	e2e   Latencies
	read  atomic.Int64

	mu   sync.Mutex
	ends []int64       // once set, where to stop
	stop chan struct{} // closed when ends is set
}

// tailWorkers is how many goroutines read. Reading is cheap next to a
// commit; a few workers keep a partition with a large backlog from
// delaying the others.
const tailWorkers = 4

func newTailer(s *stream.Service, parts int, epoch time.Time) *tailer {
	return &tailer{s: s, epoch: epoch, parts: parts, stop: make(chan struct{})}
}

// finish tells the tailer to stop once every partition p has been read up
// to ends[p].
func (t *tailer) finish(ends []int64) {
	t.mu.Lock()
	t.ends = ends
	t.mu.Unlock()
	close(t.stop)
}

func (t *tailer) target() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ends
}

func (t *tailer) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := range min(tailWorkers, t.parts) {
		wg.Go(func() {
			if err := t.work(ctx, w, min(tailWorkers, t.parts)); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// work reads partitions w, w+step, w+2*step...
func (t *tailer) work(ctx context.Context, w, step int) error {
	var mine []int32
	for p := w; p < t.parts; p += step {
		mine = append(mine, int32(p))
	}
	next := make([]int64, len(mine))
	for {
		// Take the channel before looking, so no commit slips between the
		// look and the wait.
		changed := t.s.Log().Changed()
		ti, err := t.s.Topic(benchTopic)
		if err != nil {
			return err
		}
		for i, p := range mine {
			for next[i] < ti.PartitionsInfo[p].End {
				if next[i], err = t.readFrom(ctx, p, next[i]); err != nil {
					return err
				}
			}
		}
		if ends := t.target(); ends != nil {
			done := true
			for i, p := range mine {
				done = done && next[i] >= ends[p]
			}
			if done {
				return nil
			}
		}
		select {
		case <-changed:
		case <-t.stop:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readFrom reads what partition p holds from offset on, records a latency
// sample per batch, and returns the offset after the last record read.
// Fetch has checked each batch's CRC; of the records only the first of
// each batch is looked at, since a batch is one produce call and its
// records share a send time.
func (t *tailer) readFrom(ctx context.Context, p int32, offset int64) (int64, error) {
	res, err := t.s.Fetch(ctx, benchTopic, p, offset, 1<<20, 0)
	if err != nil {
		return offset, err
	}
	now := time.Now()
	for _, b := range res.Batches {
		if len(b) < records.HeaderLen {
			return offset, fmt.Errorf("partition %d offset %d: a batch of %d bytes", p, offset, len(b))
		}
		base := int64(binary.BigEndian.Uint64(b[0:]))
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:])))
		if last < offset {
			continue
		}
		if base >= offset {
			offs, err := valueOffsets(b, 1)
			if err != nil || len(offs) == 0 {
				return offset, fmt.Errorf("partition %d offset %d: %v", p, base, err)
			}
			sent := time.Duration(binary.BigEndian.Uint64(b[offs[0]:]))
			t.e2e.Add(now.Sub(t.epoch) - sent)
		}
		t.read.Add(last + 1 - max(base, offset))
		offset = last + 1
	}
	if len(res.Batches) == 0 {
		// Fetch returns nothing only when retention removed what lay at
		// offset; nothing here sets any retention.
		return offset, fmt.Errorf("partition %d: nothing to read at offset %d below the end", p, offset)
	}
	return offset, nil
}
