// Package stream provides topics and partitions on top of the commit log:
// the streams state machine (an Owner of the log) and the Service every
// front door (HTTP, CLI, Kafka) calls.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
)

// Options configure a Service.
type Options struct {
	// Log tunes the commit log Open opens (unused by New: the agent opens
	// the log).
	Log commitlog.Options
	// MaxBatchBytes bounds the record bytes of one produce call. Default 8 MiB.
	MaxBatchBytes int
	// CacheBytes bounds the cache of blobs read from the bucket. Default 256 MiB.
	CacheBytes int64
	// Compact tunes the compaction of the record index.
	Compact CompactOptions
}

// Service is one agent's view of the streams in a bucket, and the streams
// module (module.Module) that an agent starts. It is safe for concurrent
// use once started.
type Service struct {
	log   *commitlog.Log
	st    *state
	opts  Options
	cache *blobCache
	rr    atomic.Uint32
	set   *module.Set // set by Open, which owns the log
}

// New makes the streams module; it serves once an agent has started it
// (module.Open).
func New(opts Options) *Service {
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 8 << 20
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 256 << 20
	}
	opts.Compact.fill()
	return &Service{st: newState(), opts: opts, cache: newBlobCache(opts.CacheBytes)}
}

// Open opens (or creates) the streams in bucket b on a log of their own:
// streams alone, for tools and tests. An agent uses New with its other
// modules instead, since a log holding other modules' entries (consumer
// groups...) stops an agent that lacks them.
func Open(ctx context.Context, b bucket.Bucket, opts Options, others ...module.Module) (*Service, error) {
	if opts.Log.Logger == nil {
		opts.Log.Logger = slog.Default()
	}
	s := New(opts)
	set, err := module.Open(ctx, module.Config{Bucket: b, Log: opts.Log, Logger: opts.Log.Logger}, append([]module.Module{s}, others...)...)
	if err != nil {
		return nil, err
	}
	s.set = set
	return s, nil
}

// Name is the module's name.
func (s *Service) Name() string { return "streams" }

// Owners is the streams state machine.
func (s *Service) Owners() []commitlog.Owner { return []commitlog.Owner{s.st} }

// Start attaches the service to the log and adds the streams' janitor
// tasks: retention and index compaction. Chunks (where record data lives)
// are the core's to collect.
func (s *Service) Start(_ context.Context, env *module.Env) error {
	s.log = env.Log
	s.log.AddTask(commitlog.Task{Name: "retention", Run: s.retain})
	if !s.opts.Compact.Disabled {
		s.log.AddTask(commitlog.Task{Name: "compaction", Every: s.opts.Compact.Interval, Run: func(ctx context.Context, _ *commitlog.Log) error {
			_, err := s.Compact(ctx)
			return err
		}})
		s.log.AddTask(commitlog.Task{Name: "key-compaction", Every: s.opts.Compact.Interval, Run: func(ctx context.Context, _ *commitlog.Log) error {
			_, err := s.KeyCompact(ctx)
			return err
		}})
	}
	return nil
}

// retain is the janitor task that proposes retention: truncations decided
// by this agent's clock, applied alike everywhere.
func (s *Service) retain(ctx context.Context, l *commitlog.Log) error {
	var entries []commitlog.Entry
	l.View(s.st, func() { entries = s.st.Maintain(time.Now()) })
	if len(entries) == 0 {
		return nil
	}
	_, _, err := l.Propose(ctx, entries...)
	return err
}

// Close closes the log and the other modules when Open opened them; a
// module started by an agent has nothing of its own to stop (its tasks end
// with the log).
func (s *Service) Close() error {
	if s.set != nil {
		set := s.set
		s.set = nil
		return set.Close()
	}
	return nil
}

// Log exposes the commit log (stats, sync, leases).
func (s *Service) Log() *commitlog.Log { return s.log }

// propose commits entries and returns the first entry's result as an error
// when it is one.
func (s *Service) propose(ctx context.Context, entries ...commitlog.Entry) ([]any, error) {
	_, res, err := s.log.Propose(ctx, entries...)
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if err, ok := r.(error); ok {
			return res, err
		}
	}
	return res, nil
}

// CreateTopic creates a topic. Unset retention fields mean "forever".
func (s *Service) CreateTopic(ctx context.Context, cfg TopicConfig) error {
	if cfg.RetentionMs == 0 {
		cfg.RetentionMs = -1
	}
	if cfg.RetentionBytes == 0 {
		cfg.RetentionBytes = -1
	}
	if len(cfg.Configs) == 0 {
		cfg.Configs = nil
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	typ := TypeCreateTopic
	if cfg.Configs != nil {
		typ = TypeCreateTopicConfigs
		if err := s.waitEnabled(ctx, typ); err != nil {
			return err
		}
	}
	data, _ := json.Marshal(createEntry{TopicConfig: cfg, CreatedMs: time.Now().UnixMilli()})
	_, err := s.propose(ctx, commitlog.Entry{Type: typ, Data: data})
	return err
}

// waitEnabled makes sure gated entry type typ is enabled, enabling it now
// if every live agent supports it.
func (s *Service) waitEnabled(ctx context.Context, typ uint16) error {
	f := fmt.Sprintf("type:%d", typ)
	if s.log.Enabled(f) {
		return nil
	}
	if err := s.log.EnableFeatures(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.log.WaitEnabled(wctx, f); err != nil {
		return fmt.Errorf("%w: topic configs other than retention wait until every live agent runs a version that has them: %w", commitlog.ErrNotCommitted, err)
	}
	return nil
}

// SetTopicConfigs replaces a topic's configs (retention and the others)
// with cfg's; cfg.Name names the topic, its partition count is ignored.
func (s *Service) SetTopicConfigs(ctx context.Context, cfg TopicConfig) error {
	var cur topic
	var ok bool
	s.log.View(s.st, func() {
		var t *topic
		if t, ok = s.st.topics[cfg.Name]; ok {
			cur = *t
		}
	})
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, cfg.Name)
	}
	cfg.Partitions = cur.Config.Partitions
	if len(cfg.Configs) == 0 {
		cfg.Configs = nil
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Configs == nil && cur.Config.Configs == nil {
		ms, bytes := cfg.RetentionMs, cfg.RetentionBytes
		return s.AlterTopic(ctx, cfg.Name, 0, &ms, &bytes)
	}
	if err := s.waitEnabled(ctx, TypeSetTopicConfigs); err != nil {
		return err
	}
	data, _ := json.Marshal(setConfigsEntry{Name: cfg.Name, ID: cur.ID, RetentionMs: cfg.RetentionMs, RetentionBytes: cfg.RetentionBytes, Configs: cfg.Configs})
	_, err := s.propose(ctx, commitlog.Entry{Type: TypeSetTopicConfigs, Data: data})
	return err
}

// DeleteTopic deletes a topic and (through retention of its data) its
// records.
func (s *Service) DeleteTopic(ctx context.Context, name string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	data, _ := json.Marshal(name)
	_, err := s.propose(ctx, commitlog.Entry{Type: TypeDeleteTopic, Data: data})
	return err
}

// AlterTopic grows the partition count (when partitions > 0) and/or changes
// retention (when the pointers are set).
func (s *Service) AlterTopic(ctx context.Context, name string, partitions int32, retentionMs, retentionBytes *int64) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	typ := TypeAlterTopic
	if partitions != 0 && retentionMs == nil && retentionBytes == nil {
		typ = TypeAddPartitions
	}
	data, _ := json.Marshal(alterEntry{Name: name, Partitions: partitions, RetentionMs: retentionMs, RetentionBytes: retentionBytes})
	_, err := s.propose(ctx, commitlog.Entry{Type: typ, Data: data})
	return err
}

// PartitionInfo describes a partition.
type PartitionInfo struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start_offset"`
	End       int64 `json:"end_offset"`
	Bytes     int64 `json:"bytes"`
}

// TopicInfo describes a topic.
type TopicInfo struct {
	TopicConfig
	CreatedMs      int64           `json:"created_ms"`
	PartitionsInfo []PartitionInfo `json:"partition_info,omitempty"`
}

func (t *topic) info(withPartitions bool) TopicInfo {
	ti := TopicInfo{TopicConfig: t.Config, CreatedMs: t.CreatedMs}
	ti.Configs = cloneConfigs(t.Config.Configs) // callers may Set on theirs
	if withPartitions {
		for i, p := range t.Partitions {
			ti.PartitionsInfo = append(ti.PartitionsInfo, PartitionInfo{Partition: int32(i), Start: p.Start, End: p.End, Bytes: p.Bytes})
		}
	}
	return ti
}

// Topics lists topics in name order, as this agent knows them now.
func (s *Service) Topics() []TopicInfo {
	var out []TopicInfo
	s.log.View(s.st, func() {
		for _, t := range s.st.topics {
			out = append(out, t.info(false))
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic describes one topic with its partitions.
func (s *Service) Topic(name string) (TopicInfo, error) {
	var ti TopicInfo
	var ok bool
	s.log.View(s.st, func() {
		var t *topic
		if t, ok = s.st.topics[name]; ok {
			ti = t.info(true)
		}
	})
	if !ok {
		return ti, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return ti, nil
}

// Sync catches up with commits other agents made, so that a following read
// sees everything committed before the call.
func (s *Service) Sync(ctx context.Context) error { return s.log.Sync(ctx) }

// Partitions returns the partition count of a topic.
func (s *Service) Partitions(name string) (int32, error) {
	var n int32
	var ok bool
	s.log.View(s.st, func() {
		var t *topic
		if t, ok = s.st.topics[name]; ok {
			n = int32(len(t.Partitions))
		}
	})
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return n, nil
}

// PickPartition chooses a partition for a record: murmur2 of the key as
// Kafka's default partitioner does, or round robin without a key.
func (s *Service) PickPartition(key []byte, partitions int32) int32 {
	if key == nil {
		return int32(s.rr.Add(1) % uint32(partitions))
	}
	return KafkaPartition(key, partitions)
}

// Batch is records for one partition.
type Batch struct {
	Partition int32
	// Records to encode, or Raw: v2 record batches as a Kafka producer sent
	// them (validated here; offsets are assigned on commit).
	Records []records.Record
	Raw     []byte
}

// ProduceError reports which batch of a Produce call failed.
type ProduceError struct {
	Partition int32
	Err       error
}

func (e *ProduceError) Error() string { return fmt.Sprintf("partition %d: %v", e.Partition, e.Err) }
func (e *ProduceError) Unwrap() error { return e.Err }

// Produce appends batches to a topic in one commit and returns each batch's
// base offset once the commit is durable. Either every batch is appended or,
// on a validation error, none; if the topic changes concurrently (deleted,
// say) individual batches may fail, reported in errs.
func (s *Service) Produce(ctx context.Context, topicName string, batches []Batch) (bases []int64, errs []error, err error) {
	wait, err := s.ProduceAsync(topicName, batches)
	if err != nil {
		return nil, nil, err
	}
	return wait(ctx)
}

// ProduceAsync validates batches and submits them to the log at once,
// returning the function that waits for the outcome (see Produce).
// Submissions keep their order: a batch submitted before another to the same
// partition gets lower offsets, unless it fails.
func (s *Service) ProduceAsync(topicName string, batches []Batch) (func(context.Context) ([]int64, []error, error), error) {
	entries, err := s.ProduceEntries(topicName, batches)
	if err != nil {
		return nil, err
	}
	wait := s.log.Submit(entries...)
	return func(ctx context.Context) ([]int64, []error, error) {
		_, res, err := wait(ctx)
		if err != nil {
			return nil, nil, err
		}
		return ProduceResults(res)
	}, nil
}

// ProduceResults reads the apply results of ProduceEntries' entries: each
// batch's base offset, or its error.
func ProduceResults(res []any) ([]int64, []error, error) {
	bases := make([]int64, len(res))
	errs := make([]error, len(res))
	for i, r := range res {
		switch r := r.(type) {
		case ProduceResult:
			bases[i] = r.Base
		case error:
			bases[i], errs[i] = -1, r
		}
	}
	return bases, errs, nil
}

// ProduceEntries validates batches and returns the log entries that append
// them, for a caller that commits them together with entries of its own
// (a function's effects). One entry per batch, in order.
func (s *Service) ProduceEntries(topicName string, batches []Batch) ([]commitlog.Entry, error) {
	now := time.Now().UnixMilli()
	var cfg TopicConfig
	var ok bool
	s.log.View(s.st, func() {
		var t *topic
		if t, ok = s.st.topics[topicName]; ok {
			cfg = t.Config
		}
	})
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, topicName)
	}
	n := cfg.Partitions
	maxMessage := cfg.MaxMessageBytes()
	appendTime := cfg.LogAppendTime()
	entries := make([]commitlog.Entry, 0, len(batches))
	total := 0
	for _, b := range batches {
		if b.Partition < 0 || b.Partition >= n {
			return nil, &ProduceError{b.Partition, fmt.Errorf("%w: %s has partitions 0 to %d", ErrUnknownPartition, topicName, n-1)}
		}
		raw := b.Raw
		if raw == nil {
			if len(b.Records) == 0 {
				return nil, &ProduceError{b.Partition, fmt.Errorf("%w: no records", ErrInvalidRecords)}
			}
			for i := range b.Records {
				if b.Records[i].Timestamp <= 0 {
					b.Records[i].Timestamp = now
				}
			}
			raw = records.Encode(b.Records)
		}
		metas, err := records.Split(raw)
		if err != nil {
			return nil, &ProduceError{b.Partition, fmt.Errorf("%w: %v", ErrInvalidRecords, err)}
		}
		if len(metas) == 0 {
			return nil, &ProduceError{b.Partition, fmt.Errorf("%w: no records", ErrInvalidRecords)}
		}
		limit := maxMessage
		if b.Raw == nil {
			limit = int64(s.opts.MaxBatchBytes) // encoded here: one batch, however many records
		}
		if err := checkBatches(raw, metas, limit, cfg.Compacted()); err != nil {
			return nil, &ProduceError{b.Partition, err}
		}
		if appendTime {
			raw = stampAppendTime(raw, metas, now)
		}
		pe := produceEntry{Topic: topicName, Partition: b.Partition, AppendMs: now}
		for _, m := range metas {
			pe.Count += int64(m.LastOffsetDelta) + 1
			pe.MaxTs = max(pe.MaxTs, m.MaxTimestamp)
		}
		if appendTime {
			pe.MaxTs = now
		}
		if first, last := metas[0], metas[len(metas)-1]; first.ProducerID >= 0 {
			if last.ProducerID != first.ProducerID || last.ProducerEpoch != first.ProducerEpoch {
				return nil, &ProduceError{b.Partition, fmt.Errorf("%w: batches of different producers in one request", ErrInvalidRecords)}
			}
			pe.PID, pe.Epoch = first.ProducerID, first.ProducerEpoch
			pe.FirstSeq, pe.LastSeq = first.BaseSequence, last.BaseSequence+last.LastOffsetDelta
		}
		// A transaction's batches: transactional, with a producer id (a
		// transactional flag without one carries no transaction, and the
		// Kafka front door refuses it).
		inTxn := func(m records.BatchMeta) bool { return m.IsTransactional() && m.ProducerID >= 0 }
		pe.Txn = inTxn(metas[0])
		for _, m := range metas {
			if m.IsControl() {
				return nil, &ProduceError{b.Partition, fmt.Errorf("%w: control batches are written by transactions only", ErrInvalidRecords)}
			}
			if inTxn(m) != pe.Txn {
				return nil, &ProduceError{b.Partition, fmt.Errorf("%w: a transaction's batches and others in one request", ErrInvalidRecords)}
			}
		}
		total += len(raw)
		data, _ := json.Marshal(pe)
		entries = append(entries, commitlog.Entry{Type: TypeProduce, Data: data, Blob: raw})
	}
	limit := int64(s.opts.MaxBatchBytes)
	if _, set := cfg.Value("max.message.bytes"); set {
		// A topic made for large records raises the agent's bound.
		limit = max(limit, maxMessage)
	}
	if int64(total) > limit {
		return nil, fmt.Errorf("%w: %d bytes of records, the limit is %d", ErrTooLarge, total, limit)
	}
	return entries, nil
}

// checkBatches applies a topic's configs to a produce: no batch larger than
// max.message.bytes (as Kafka checks it, on the batch as sent), and on a
// compacted topic no record without a key.
func checkBatches(raw []byte, metas []records.BatchMeta, maxMessage int64, compacted bool) error {
	for _, m := range metas {
		if int64(m.Length) > maxMessage {
			return fmt.Errorf("%w: a record batch of %d bytes is larger than the topic's max.message.bytes (%d)", ErrTooLarge, m.Length, maxMessage)
		}
		if compacted {
			recs, _, err := records.Decode(raw[:m.Length], Decompress)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrInvalidRecords, err)
			}
			for _, r := range recs {
				if r.Key == nil {
					return fmt.Errorf("%w: %w (record at offset delta %d has none)", ErrInvalidRecords, ErrNoKey, r.Offset-m.BaseOffset)
				}
			}
		}
		raw = raw[m.Length:]
	}
	return nil
}

// stampAppendTime returns a copy of raw whose batches carry the log append
// time now (message.timestamp.type=LogAppendTime).
func stampAppendTime(raw []byte, metas []records.BatchMeta, now int64) []byte {
	out := append([]byte(nil), raw...)
	b := out
	for _, m := range metas {
		_ = records.SetLogAppendTime(b[:m.Length], now) // checked by Split
		b = b[m.Length:]
	}
	return out
}

// InitProducerID allocates an idempotent producer id (pid < 0), or bumps the
// epoch of an existing producer, through the log, so ids are unique across
// every agent.
func (s *Service) InitProducerID(ctx context.Context, pid int64, epoch int16) (ProducerID, error) {
	data, _ := json.Marshal(initProducerEntry{PID: max(pid, 0), Epoch: epoch})
	res, err := s.propose(ctx, commitlog.Entry{Type: TypeInitProducer, Data: data})
	if err != nil {
		return ProducerID{}, err
	}
	return res[0].(ProducerID), nil
}

// FetchResult is what Fetch returns: raw v2 batches with their base offsets
// set, covering offsets from the requested one on.
type FetchResult struct {
	Batches       [][]byte
	HighWatermark int64
	LogStart      int64
}

// Fetch returns batches holding offset and what follows, up to about
// maxBytes (at least one batch), waiting up to wait for data when offset is
// at the end. The first batch may start before offset: callers skip records
// below it, as Kafka clients do.
func (s *Service) Fetch(ctx context.Context, topicName string, part int32, offset int64, maxBytes int, wait time.Duration) (FetchResult, error) {
	deadline := time.Now().Add(wait)
	// from is where the segments to read start: offset, or past segments
	// key compaction emptied of everything at or above offset.
	from := offset
	for {
		changed := s.log.Changed()
		var segs []segment
		var res FetchResult
		var err error
		more := false
		s.log.View(s.st, func() {
			var p *partition
			if p, err = s.st.partition(topicName, part); err != nil {
				return
			}
			res.HighWatermark, res.LogStart = p.End, p.Start
			if offset < p.Start || offset > p.End {
				err = &OffsetOutOfRangeError{Topic: topicName, Partition: part, Offset: offset, Start: p.Start, End: p.End}
				return
			}
			from = max(from, p.Start)
			i := sort.Search(len(p.Segments), func(i int) bool {
				return p.Segments[i].Base+p.Segments[i].Count > from
			})
			size := 0
			for ; i < len(p.Segments) && (len(segs) == 0 || size+int(p.Segments[i].Ref.Len) <= maxBytes); i++ {
				segs = append(segs, p.Segments[i])
				size += int(p.Segments[i].Ref.Len)
			}
			more = i < len(p.Segments)
		})
		if err != nil {
			return res, err
		}
		if len(segs) > 0 {
			replaced := false
			for _, seg := range segs {
				blob, err := s.readBlob(ctx, seg.Ref)
				if err != nil {
					if bucket.IsNotFound(err) {
						// Retention or compaction may have replaced it
						// between our look and our read: look again. A
						// segment still indexed above the start offset
						// whose data is gone is lost data, never skipped.
						if s.stillIndexed(topicName, part, seg) {
							return res, fmt.Errorf("%s/%d: the data of offsets %d to %d (%s) is missing from the bucket", topicName, part, seg.Base, seg.Base+seg.Count-1, seg.Ref.Key)
						}
						replaced = true
						break
					}
					return res, err
				}
				err = eachBatch(seg, blob, func(b []byte, base int64, m records.BatchMeta) error {
					last := base + int64(m.LastOffsetDelta)
					if seg.Compacted {
						// Its last records may be gone: a batch holding
						// nothing at or above offset is no answer (readers
						// that go by records would not move on).
						m.BaseOffset = base
						last = records.LastRecordOffset(b, m)
					}
					if last >= offset {
						b = append([]byte(nil), b...)
						records.SetBaseOffset(b, base)
						res.Batches = append(res.Batches, b)
					}
					return nil
				})
				if err != nil {
					return res, fmt.Errorf("stored batch at %s/%d: %w", topicName, part, err)
				}
			}
			if replaced {
				continue
			}
			if len(res.Batches) > 0 {
				return res, nil
			}
			if more {
				last := segs[len(segs)-1]
				from = last.Base + last.Count
				continue
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return res, nil
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		}
	}
}

// eachBatch calls fn with each batch of a segment's blob and its base
// offset: produced blobs hold batches that follow each other from the
// segment's base; compacted ones carry their own base offsets.
func eachBatch(seg segment, blob []byte, fn func(b []byte, base int64, m records.BatchMeta) error) error {
	next := seg.Base
	for len(blob) > 0 {
		m, err := records.ParseMeta(blob)
		if err != nil {
			return fmt.Errorf("offset %d: %w", next, err)
		}
		base := next
		if seg.Compacted {
			base = m.BaseOffset
		}
		if err := fn(blob[:m.Length], base, m); err != nil {
			return err
		}
		next = base + int64(m.LastOffsetDelta) + 1
		blob = blob[m.Length:]
	}
	return nil
}

// stillIndexed reports whether seg is still in the partition's index, above
// its start offset.
func (s *Service) stillIndexed(topicName string, part int32, seg segment) bool {
	found := false
	_ = s.viewPartition(topicName, part, func(p *partition) {
		for _, cur := range p.Segments {
			if cur.Ref == seg.Ref && cur.Base == seg.Base && cur.Base+cur.Count > p.Start {
				found = true
			}
		}
	})
	return found
}

// Read returns up to max records from offset, decoded, waiting up to wait
// when there are none yet.
func (s *Service) Read(ctx context.Context, topicName string, part int32, offset int64, max int, wait time.Duration) ([]records.Record, FetchResult, error) {
	res, err := s.Fetch(ctx, topicName, part, offset, 1<<20, wait)
	if err != nil {
		return nil, res, err
	}
	var out []records.Record
	for _, b := range res.Batches {
		recs, m, err := records.Decode(b, Decompress)
		if err != nil {
			return nil, res, err
		}
		if m.IsControl() {
			continue // a transaction marker, not a record
		}
		for _, r := range recs {
			if r.Offset >= offset && r.Offset >= res.LogStart && len(out) < max {
				out = append(out, r)
			}
		}
	}
	return out, res, nil
}

// Decompress is used to decode batches with codecs beyond gzip; the Kafka
// front door installs its codecs here. Nil means gzip and none only.
var Decompress records.Decompressor

func (s *Service) readBlob(ctx context.Context, ref commitlog.Ref) ([]byte, error) {
	if b, ok := s.cache.get(ref); ok {
		return b, nil
	}
	if b, ok := s.log.RecentBlob(ref); ok && commitlog.VerifyBlob(ref, b) == nil {
		return b, nil
	}
	b, err := s.log.Bucket().GetRange(ctx, ref.Key, ref.Off, ref.Len)
	if err != nil {
		return nil, err
	}
	if err := commitlog.VerifyBlob(ref, b); err != nil {
		return nil, err
	}
	s.cache.put(ref, b)
	return b, nil
}

// blobCache keeps recently read blobs (tailing readers read the same new
// blobs) with FIFO eviction by bytes.
type blobCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	m     map[commitlog.Ref][]byte
	order []commitlog.Ref
}

func newBlobCache(max int64) *blobCache {
	return &blobCache{max: max, m: map[commitlog.Ref][]byte{}}
}

func (c *blobCache) get(r commitlog.Ref) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[r]
	return b, ok
}

func (c *blobCache) put(r commitlog.Ref, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[r]; ok || int64(len(b)) > c.max/4 {
		return
	}
	c.m[r] = b
	c.order = append(c.order, r)
	c.size += int64(len(b))
	for c.size > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.size -= int64(len(c.m[old]))
		delete(c.m, old)
	}
}

// IsRetryable reports whether a produce error means "not committed, try
// again" (as opposed to bad input).
func IsRetryable(err error) bool {
	return errors.Is(err, commitlog.ErrNotCommitted)
}

// OffsetForTimestamp finds the first record of a partition whose timestamp
// is at least ts (Kafka's ListOffsets by timestamp). It returns that record's
// offset and timestamp, or found == false when every record is older.
func (s *Service) OffsetForTimestamp(ctx context.Context, topicName string, part int32, ts int64) (offset, timestamp int64, found bool, err error) {
	return s.findRecord(ctx, topicName, part, func(seg segment) bool { return seg.MaxTs >= ts },
		func(r records.Record) bool { return r.Timestamp >= ts })
}

// MaxTimestampOffset finds the first record carrying the largest timestamp
// of a partition (Kafka's ListOffsets with timestamp -3), or found == false
// when the partition holds no records.
func (s *Service) MaxTimestampOffset(ctx context.Context, topicName string, part int32) (offset, timestamp int64, found bool, err error) {
	maxTs := int64(-1)
	err = s.viewPartition(topicName, part, func(p *partition) {
		for _, seg := range p.Segments {
			maxTs = max(maxTs, seg.MaxTs)
		}
	})
	if err != nil || maxTs < 0 {
		return -1, -1, false, err
	}
	return s.findRecord(ctx, topicName, part, func(seg segment) bool { return seg.MaxTs >= maxTs },
		func(r records.Record) bool { return r.Timestamp >= maxTs })
}

func (s *Service) viewPartition(topicName string, part int32, f func(*partition)) error {
	var err error
	s.log.View(s.st, func() {
		var p *partition
		if p, err = s.st.partition(topicName, part); err == nil {
			f(p)
		}
	})
	return err
}

// findRecord returns the first record (at or above the log start) that recOK
// accepts, decoding only the segments that segOK accepts: a segment's MaxTs
// bounds every timestamp in it, so most segments need no reading.
func (s *Service) findRecord(ctx context.Context, topicName string, part int32, segOK func(segment) bool, recOK func(records.Record) bool) (int64, int64, bool, error) {
	var segs []segment
	var start int64
	err := s.viewPartition(topicName, part, func(p *partition) {
		start = p.Start
		for _, seg := range p.Segments {
			if seg.Base+seg.Count > p.Start && segOK(seg) {
				segs = append(segs, seg)
			}
		}
	})
	if err != nil {
		return -1, -1, false, err
	}
	for _, seg := range segs {
		blob, err := s.readBlob(ctx, seg.Ref)
		if bucket.IsNotFound(err) {
			continue // removed by retention meanwhile
		}
		if err != nil {
			return -1, -1, false, err
		}
		var found *records.Record
		errFound := errors.New("found")
		err = eachBatch(seg, blob, func(b []byte, base int64, _ records.BatchMeta) error {
			b = append([]byte(nil), b...)
			records.SetBaseOffset(b, base)
			recs, _, err := records.Decode(b, Decompress)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset >= start && recOK(r) {
					found = &r
					return errFound
				}
			}
			return nil
		})
		if found != nil {
			return found.Offset, found.Timestamp, true, nil
		}
		if err != nil {
			return -1, -1, false, fmt.Errorf("stored batch at %s/%d: %w", topicName, part, err)
		}
	}
	return -1, -1, false, nil
}
