package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
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
	// DefaultBatchSize and DefaultProducers make the default load: 512
	// calls of 64 KiB in flight, 32 MiB, as much as one Kafka producer
	// buffers by default (buffer.memory). A producer sends a partition up to
	// batch.size bytes at once; 64 KiB is the size throughput tuning
	// commonly raises Kafka's 16 KiB default to. With less in flight the
	// group commit has too little to group: a commit then carries everything
	// in flight, and the bucket idles while producers wait for it.
	DefaultBatchSize = 64 << 10
	DefaultProducers = 512
	// DefaultChunkUploads is the commit log's own default, set explicitly
	// so that a result can report it.
	DefaultChunkUploads = 4
)

// Limits on ProduceOptions.
const (
	MinRecordSize = 8 // the first record of a call carries the send time in 8 bytes
	MaxRecordSize = 1 << 20
	MaxBatchSize  = 4 << 20 // half the stream service's default request limit
	MaxProducers  = 4096
	// MaxInFlight bounds producers × the bytes of a call: every producer
	// holds its batch in memory.
	MaxInFlight = 1 << 30
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
	// sizes...). Zero fields take the commit log's defaults (no linger),
	// except ChunkUploads, which takes DefaultChunkUploads.
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
	switch {
	case o.Partitions < 0 || o.Partitions > stream.MaxPartitions:
		return o, fmt.Errorf("partitions %d out of range: use 1 to %d", o.Partitions, stream.MaxPartitions)
	case o.RecordSize < MinRecordSize || o.RecordSize > MaxRecordSize:
		return o, fmt.Errorf("record size %d out of range: use %d to %d bytes", o.RecordSize, MinRecordSize, MaxRecordSize)
	case o.BatchSize < 0 || o.BatchSize > MaxBatchSize:
		return o, fmt.Errorf("batch size %d out of range: use 1 to %d bytes", o.BatchSize, MaxBatchSize)
	case o.Producers < 0 || o.Producers > MaxProducers:
		return o, fmt.Errorf("producers %d out of range: use 1 to %d", o.Producers, MaxProducers)
	case o.inFlight() > MaxInFlight:
		return o, fmt.Errorf("%d producers with calls of %d bytes hold %d bytes in flight: keep it to %d", o.Producers, o.callBytes(), o.inFlight(), MaxInFlight)
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

// callBytes is the record bytes of one produce call.
func (o ProduceOptions) callBytes() int64 { return int64(o.recordsPerCall()) * int64(o.RecordSize) }

// inFlight is the record bytes of all producers' calls.
func (o ProduceOptions) inFlight() int64 { return int64(o.Producers) * o.callBytes() }

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

	ProduceMBs   float64 `json:"produce_mb_s"`
	RecordsS     float64 `json:"records_s"`
	ProduceP50Ms float64 `json:"produce_p50_ms"` // call to acknowledgement
	ProduceP99Ms float64 `json:"produce_p99_ms"`
	E2EP50Ms     float64 `json:"e2e_p50_ms"` // call to a reader in another agent holding the records
	E2EP99Ms     float64 `json:"e2e_p99_ms"`
	// E2EBatches is how many batches (produce calls) the reader read, and
	// so how many end-to-end samples there are: it reads a batch when one
	// of its few workers is free, not every batch (see tailer).
	E2EBatches      int     `json:"e2e_batches"`
	PutsPerS        float64 `json:"puts_per_s"`       // the writing agent's Put/PutIfAbsent/PutIfMatch calls
	ThroughputRatio float64 `json:"throughput_ratio"` // ProduceMBs / BaselinePutMBs
	// AckRatio is ProduceP50Ms / BaselinePutIfAbsentP50Ms: what an
	// acknowledgement costs over the one conditional write a commit needs.
	AckRatio float64 `json:"ack_ratio"`

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
//     goroutines each make produce calls of opts.BatchSize bytes of records
//     (one record batch for one partition), one call at a time, spreading
//     the calls over the topic's partitions, for opts.Duration. Each batch
//     carries the time its call started. The other agent tails the log,
//     must come to know of every acknowledged record, and reads back the
//     batches its readers have time for (see tailer). Produce measures
//     throughput, the latency of a call until its acknowledgement, the
//     latency from a call until the reader holds its batch (end to end),
//     and the writing agent's PUTs per second.
//  2. Baseline: Bucket on b with objects of the size the log wrote (its
//     average chunk, or its average commit when every batch was inlined) and
//     as many workers as the log uploads chunks at once (ChunkUploads): the
//     parallelism the log itself uses for data, or fewer when fewer
//     producers than that have a call in flight. ThroughputRatio compares the
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
		Concurrency: min(opts.Log.ChunkUploads, opts.Producers),
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
	if base.PutIfAbsentP50Ms > 0 {
		res.AckRatio = res.ProduceP50Ms / base.PutIfAbsentP50Ms
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
	tl := newTailer(reader, opts.Partitions, opts.recordsPerCall(), epoch)
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
		return fmt.Errorf("the reading agent did not catch up with the writer: it knows of %d of %d records", tl.seen.Load(), recs)
	}
	if got := tl.seen.Load(); got != recs {
		return fmt.Errorf("the reading agent knows of %d records, the writer had %d acknowledged", got, recs)
	}
	res.E2EP50Ms, res.E2EP99Ms = Millis(tl.e2e.Percentile(50)), Millis(tl.e2e.Percentile(99))
	res.E2EBatches = tl.e2e.Len()
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

// tailer follows the topic on the reading agent and measures, for the
// batches it reads, the time from their send time until it holds them.
// Every batch is one produce call of perCall records, so batches start at
// multiples of perCall and can be read independently.
//
// The reading agent learns of every record (its state must reach every
// partition's end), but it reads a batch only when one of its tailWorkers
// is free: a reader that read every batch would, on a store where each
// read is a GET, either fall behind (and measure its own backlog) or, with
// enough workers, load the store as much as the writer does, and on a
// store sharing the machine slow the writer down. Which batches get read
// depends on when readers come free, not on the batches' latency; if
// anything the figures lean high, since the batches of a commit are offered
// in the order they were proposed, the longest-waiting first.
type tailer struct {
	s       *stream.Service
	epoch   time.Time
	parts   int
	perCall int64
	e2e     Latencies
	seen    atomic.Int64 // records the reading agent knows of

	mu   sync.Mutex
	ends []int64       // once set, where to stop
	stop chan struct{} // closed when ends is set
}

// tailWorkers is how many batches the reader fetches at once.
const tailWorkers = 4

func newTailer(s *stream.Service, parts, perCall int, epoch time.Time) *tailer {
	return &tailer{s: s, epoch: epoch, parts: parts, perCall: int64(perCall), stop: make(chan struct{})}
}

// finish tells the tailer to stop once the reading agent knows of every
// partition p up to ends[p].
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

type batchAt struct {
	p   int32
	off int64
}

func (t *tailer) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	work := make(chan batchAt, tailWorkers) // a batch waiting for each reader at most
	for range tailWorkers {
		wg.Go(func() {
			for b := range work {
				if err := t.readBatch(ctx, b); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	if err := t.dispatch(ctx, work); err != nil {
		fail(err)
	}
	close(work)
	wg.Wait()
	return first
}

// dispatch offers every batch to the readers as the reading agent learns
// of it, until it knows of everything up to the targets.
func (t *tailer) dispatch(ctx context.Context, work chan<- batchAt) error {
	next := make([]int64, t.parts) // the next batch, per partition
	stop := t.stop                 // nil once closed: then only commits wake us
	for first := 0; ; first++ {
		// Take the channel before looking, so no commit slips between the
		// look and the wait.
		changed := t.s.Log().Changed()
		ti, err := t.s.Topic(benchTopic)
		if err != nil {
			return err
		}
		// Start each round at another partition, so that no partition is
		// read more often than the others when readers are scarce.
		for i := range t.parts {
			p := (first + i) % t.parts
			for ; next[p] < ti.PartitionsInfo[p].End; next[p] += t.perCall {
				select {
				case work <- batchAt{int32(p), next[p]}:
				default: // every reader is busy: not measured
				}
				t.seen.Add(t.perCall)
			}
		}
		if ends := t.target(); ends != nil {
			done := true
			for p := range t.parts {
				done = done && next[p] >= ends[p]
			}
			if done {
				return nil
			}
		}
		select {
		case <-changed:
		case <-stop:
			stop = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readBatch reads the batch at b and records its latency. Fetch has checked
// the batch's CRC; of its records only the first is looked at, since they
// share a send time.
func (t *tailer) readBatch(ctx context.Context, b batchAt) error {
	// A maxBytes of 1 fetches exactly the one stored batch holding b.off.
	res, err := t.s.Fetch(ctx, benchTopic, b.p, b.off, 1, 0)
	if err != nil {
		return err
	}
	now := time.Now()
	// Compaction may since have joined the call's segment with others; the
	// first batch is still the call's own.
	if len(res.Batches) == 0 {
		return fmt.Errorf("partition %d offset %d: no batch where a produce call's was expected", b.p, b.off)
	}
	raw := res.Batches[0]
	if len(raw) < records.HeaderLen {
		return fmt.Errorf("partition %d offset %d: a batch of %d bytes", b.p, b.off, len(raw))
	}
	base := int64(binary.BigEndian.Uint64(raw[0:]))
	count := int64(int32(binary.BigEndian.Uint32(raw[23:]))) + 1
	if base != b.off || count != t.perCall {
		return fmt.Errorf("partition %d offset %d: a batch of offsets %d to %d where one produce call's was expected", b.p, b.off, base, base+count-1)
	}
	offs, err := valueOffsets(raw, 1)
	if err != nil || len(offs) == 0 {
		return fmt.Errorf("partition %d offset %d: %v", b.p, base, err)
	}
	sent := time.Duration(binary.BigEndian.Uint64(raw[offs[0]:]))
	t.e2e.Add(now.Sub(t.epoch) - sent)
	return nil
}
