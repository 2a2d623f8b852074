package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// Entry types owned by streams (100-199).
const (
	TypeCreateTopic   uint16 = 100
	TypeDeleteTopic   uint16 = 101
	TypeAddPartitions uint16 = 102
	TypeAlterTopic    uint16 = 103
	TypeProduce       uint16 = 104
	TypeTruncate      uint16 = 105
	TypeInitProducer  uint16 = 106
	// Gated (docs/FORMAT.md): topic configs beyond retention, and key
	// compaction (keycompact.go).
	TypeCreateTopicConfigs uint16 = 108
	TypeSetTopicConfigs    uint16 = 109
)

// Errors. Each says what was wrong; the HTTP and Kafka front doors map them to
// their own codes.
var (
	ErrUnknownTopic     = errors.New("unknown topic")
	ErrTopicExists      = errors.New("topic already exists")
	ErrInvalidTopic     = errors.New("invalid topic name")
	ErrUnknownPartition = errors.New("unknown partition")
	ErrInvalidConfig    = errors.New("invalid topic config")
	ErrInvalidRecords   = errors.New("invalid records")
	ErrTooLarge         = errors.New("request too large")
	// ErrNoKey: a compacted topic takes only records with a key.
	ErrNoKey = errors.New("a compacted topic (cleanup.policy=compact) takes only records with a key")
	// Idempotent producers (Kafka's semantics).
	ErrOutOfOrderSequence   = errors.New("out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("producer epoch is stale: a newer producer with this id exists")
	ErrUnknownProducerID    = errors.New("unknown producer id")
)

// OffsetOutOfRangeError says which offsets are valid.
type OffsetOutOfRangeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Start     int64
	End       int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("offset %d out of range for %s/%d: valid offsets are %d to %d", e.Offset, e.Topic, e.Partition, e.Start, e.End)
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopicName applies Kafka's rules.
func ValidateTopicName(name string) error {
	if !topicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w %q: use 1 to 249 characters from [a-zA-Z0-9._-], not '.' or '..'", ErrInvalidTopic, name)
	}
	return nil
}

// TopicConfig is what a topic is created or altered with.
type TopicConfig struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	// RetentionMs: records older than this are removed; -1 keeps them
	// forever (the default).
	RetentionMs int64 `json:"retention_ms"`
	// RetentionBytes: per partition; -1 means no limit (the default).
	RetentionBytes int64 `json:"retention_bytes"`
	// Configs holds the other configs the topic sets explicitly, by Kafka
	// name, normalized (topicconfig.go). Entry types 100 and 103 never
	// carry them; 108 and 109 do.
	Configs map[string]string `json:"configs,omitempty"`
}

// MaxPartitions bounds partitions per topic.
const MaxPartitions = 10000

func (c *TopicConfig) validate() error {
	if err := ValidateTopicName(c.Name); err != nil {
		return err
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		return fmt.Errorf("%w: partitions must be between 1 and %d, got %d", ErrInvalidConfig, MaxPartitions, c.Partitions)
	}
	if c.RetentionMs == 0 || c.RetentionMs < -1 {
		return fmt.Errorf("%w: retention_ms must be positive or -1 (forever), got %d", ErrInvalidConfig, c.RetentionMs)
	}
	if c.RetentionBytes == 0 || c.RetentionBytes < -1 {
		return fmt.Errorf("%w: retention_bytes must be positive or -1 (unlimited), got %d", ErrInvalidConfig, c.RetentionBytes)
	}
	return c.validateConfigs()
}

// segment is one produced blob: count offsets starting at Base, stored at Ref.
type segment struct {
	Base     int64         `json:"b"`
	Count    int64         `json:"n"`
	Ref      commitlog.Ref `json:"r"`
	MaxTs    int64         `json:"t"`
	AppendMs int64         `json:"a"`
	// Compacted: written by key compaction (keycompact.go). Its batches
	// carry their own base offsets (a compacted blob has gaps), where a
	// produced blob's batches follow each other from Base.
	Compacted bool `json:"c,omitempty"`
}

type partition struct {
	Start    int64     `json:"start"`
	End      int64     `json:"end"`
	Bytes    int64     `json:"bytes"`
	Segments []segment `json:"segments"`
	// Producers holds, per idempotent producer id, the batches it wrote
	// last, to recognise retries.
	Producers map[int64]*producerSeqs `json:"producers,omitempty"`
}

// producerSeqs remembers a producer's newest batches on one partition; Kafka
// keeps five, the most a producer has in flight.
type producerSeqs struct {
	Epoch  int16      `json:"epoch"`
	Recent []seqBatch `json:"recent"`
}

type seqBatch struct {
	First int32 `json:"first"`
	Last  int32 `json:"last"`
	Base  int64 `json:"base"`
}

const maxRecentBatches = 5

type topic struct {
	Config     TopicConfig  `json:"config"`
	ID         uint64       `json:"id"` // seq of the creating commit
	CreatedMs  int64        `json:"created_ms"`
	Partitions []*partition `json:"partitions"`
}

// produceEntry is the payload of TypeProduce; the record bytes are the
// entry's blob (one or more v2 batches).
type produceEntry struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"p"`
	Count     int64  `json:"n"` // offsets the blob spans
	MaxTs     int64  `json:"t"`
	AppendMs  int64  `json:"a"` // proposer's clock, for retention by time
	// Idempotent producer fields; PID is -1 (or absent) otherwise.
	PID      int64 `json:"pid,omitempty"`
	Epoch    int16 `json:"epoch,omitempty"`
	FirstSeq int32 `json:"fseq,omitempty"`
	LastSeq  int32 `json:"lseq,omitempty"`
	// Txn: the batches belong to the producer's open transaction.
	Txn bool `json:"txn,omitempty"`
}

// initProducerEntry allocates a producer id, or bumps the epoch of an
// existing one (PID >= 0).
type initProducerEntry struct {
	PID   int64 `json:"pid"`
	Epoch int16 `json:"epoch"`
}

// ProducerID is the apply result of TypeInitProducer.
type ProducerID struct {
	ID    int64
	Epoch int16
}

type truncateEntry struct {
	Topic     string `json:"topic"`
	ID        uint64 `json:"id"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"offset"`
}

type createEntry struct {
	TopicConfig
	CreatedMs int64 `json:"created_ms"`
}

// setConfigsEntry is the payload of TypeSetTopicConfigs: the topic's whole
// config set (retention and the others), replacing what it had.
type setConfigsEntry struct {
	Name           string            `json:"name"`
	ID             uint64            `json:"id"`
	RetentionMs    int64             `json:"retention_ms"`
	RetentionBytes int64             `json:"retention_bytes"`
	Configs        map[string]string `json:"configs"`
}

type alterEntry struct {
	Name           string `json:"name"`
	Partitions     int32  `json:"partitions,omitempty"`
	RetentionMs    *int64 `json:"retention_ms,omitempty"`
	RetentionBytes *int64 `json:"retention_bytes,omitempty"`
}

// state is the streams Owner: topics, partitions and their record index,
// and idempotent producers.
type state struct {
	topics map[string]*topic
	// producers maps producer id → current epoch; NextPID is the next id.
	producers map[int64]int16
	nextPID   int64
	// enabled reads the log's enabled features (see snapshot.go).
	enabled func(string) bool
	// txn is the transactions' state (txn.go).
	txn txnState
}

type stateJSON struct {
	Topics    map[string]*topic `json:"topics"`
	Producers map[int64]int16   `json:"producers"`
	NextPID   int64             `json:"next_pid"`
	Txn       json.RawMessage   `json:"txn,omitempty"`
}

func newState() *state {
	return &state{topics: map[string]*topic{}, producers: map[int64]int16{}, txn: newTxnState()}
}

func (s *state) Name() string { return "streams" }

func (s *state) Types() []uint16 {
	return []uint16{TypeCreateTopic, TypeDeleteTopic, TypeAddPartitions, TypeAlterTopic, TypeProduce, TypeTruncate, TypeInitProducer, TypeCompact,
		TypeCreateTopicConfigs, TypeSetTopicConfigs, TypeKeyCompact,
		TypeTxnInit, TypeTxnAddOffsets, TypeTxnOffsetCommit, TypeTxnEnd, TypeTxnTimeout}
}

// GatedTypes are the types added after the first release: usable once the
// fleet enabled them.
func (s *state) GatedTypes() []uint16 {
	return []uint16{TypeCreateTopicConfigs, TypeSetTopicConfigs, TypeKeyCompact,
		TypeTxnInit, TypeTxnAddOffsets, TypeTxnOffsetCommit, TypeTxnEnd, TypeTxnTimeout}
}

func (s *state) Reset() {
	enabled := s.enabled
	*s = *newState()
	s.enabled = enabled
}

func (s *state) LiveObjects(fn func(string)) {
	for _, t := range s.topics {
		for _, p := range t.Partitions {
			for _, seg := range p.Segments {
				fn(seg.Ref.Key)
			}
		}
	}
}

// ProduceResult is the apply result of a TypeProduce entry. Duplicate means
// an idempotent producer's retry of a batch already written at Base: nothing
// was appended.
type ProduceResult struct {
	Base      int64
	Duplicate bool
}

func (s *state) Apply(seq uint64, e commitlog.Entry) any {
	switch e.Type {
	case TypeProduce:
		var pe produceEntry
		if err := json.Unmarshal(e.Data, &pe); err != nil {
			return fmt.Errorf("malformed produce entry: %v", err)
		}
		p, err := s.partition(pe.Topic, pe.Partition)
		if err != nil {
			return err
		}
		if pe.Count <= 0 || e.Ref.IsZero() {
			return fmt.Errorf("%w: empty produce entry", ErrInvalidRecords)
		}
		if pe.Txn {
			if err := s.checkTxnProduce(pe); err != nil {
				return err
			}
		}
		if pe.PID > 0 {
			if dup, err := s.checkSequence(p, pe); err != nil || dup != nil {
				if err != nil {
					return err
				}
				return *dup
			}
		}
		base := p.End
		p.Segments = append(p.Segments, segment{Base: base, Count: pe.Count, Ref: e.Ref, MaxTs: pe.MaxTs, AppendMs: pe.AppendMs})
		p.End += pe.Count
		p.Bytes += e.Ref.Len
		if pe.PID > 0 {
			ps := p.Producers[pe.PID]
			ps.Recent = append(ps.Recent, seqBatch{First: pe.FirstSeq, Last: pe.LastSeq, Base: base})
			if len(ps.Recent) > maxRecentBatches {
				ps.Recent = append([]seqBatch{}, ps.Recent[1:]...)
			}
		}
		if pe.Txn {
			s.noteTxnProduce(seq, pe, base)
		}
		return ProduceResult{Base: base}
	case TypeInitProducer:
		var ie initProducerEntry
		if err := json.Unmarshal(e.Data, &ie); err != nil {
			return fmt.Errorf("malformed init producer entry: %v", err)
		}
		if ie.PID > 0 {
			cur, ok := s.producers[ie.PID]
			if !ok {
				return fmt.Errorf("%w: %d", ErrUnknownProducerID, ie.PID)
			}
			if ie.Epoch != cur || cur == 32767 {
				return fmt.Errorf("%w: %d has epoch %d, not %d", ErrInvalidProducerEpoch, ie.PID, cur, ie.Epoch)
			}
			s.producers[ie.PID] = cur + 1
			return ProducerID{ID: ie.PID, Epoch: cur + 1}
		}
		s.nextPID++
		s.producers[s.nextPID] = 0
		return ProducerID{ID: s.nextPID, Epoch: 0}
	case TypeCreateTopic, TypeCreateTopicConfigs:
		var ce createEntry
		if err := json.Unmarshal(e.Data, &ce); err != nil {
			return fmt.Errorf("malformed create entry: %v", err)
		}
		if e.Type == TypeCreateTopic {
			ce.Configs = nil // as agents before type 108 apply it
		}
		if len(ce.Configs) == 0 {
			ce.Configs = nil
		}
		if err := ce.validate(); err != nil {
			return err
		}
		if _, ok := s.topics[ce.Name]; ok {
			return fmt.Errorf("%w: %s", ErrTopicExists, ce.Name)
		}
		t := &topic{Config: ce.TopicConfig, ID: seq, CreatedMs: ce.CreatedMs}
		for range ce.Partitions {
			t.Partitions = append(t.Partitions, &partition{Segments: []segment{}})
		}
		s.topics[ce.Name] = t
		return nil
	case TypeDeleteTopic:
		var name string
		if err := json.Unmarshal(e.Data, &name); err != nil {
			return fmt.Errorf("malformed delete entry: %v", err)
		}
		if _, ok := s.topics[name]; !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		delete(s.topics, name)
		return nil
	case TypeAddPartitions, TypeAlterTopic:
		var ae alterEntry
		if err := json.Unmarshal(e.Data, &ae); err != nil {
			return fmt.Errorf("malformed alter entry: %v", err)
		}
		t, ok := s.topics[ae.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, ae.Name)
		}
		cfg := t.Config
		if ae.Partitions != 0 {
			if ae.Partitions <= cfg.Partitions {
				return fmt.Errorf("%w: %s has %d partitions; the count can only grow", ErrInvalidConfig, ae.Name, cfg.Partitions)
			}
			cfg.Partitions = ae.Partitions
		}
		if ae.RetentionMs != nil {
			cfg.RetentionMs = *ae.RetentionMs
		}
		if ae.RetentionBytes != nil {
			cfg.RetentionBytes = *ae.RetentionBytes
		}
		if err := cfg.validate(); err != nil {
			return err
		}
		for int32(len(t.Partitions)) < cfg.Partitions {
			t.Partitions = append(t.Partitions, &partition{Segments: []segment{}})
		}
		t.Config = cfg
		return nil
	case TypeSetTopicConfigs:
		var se setConfigsEntry
		if err := json.Unmarshal(e.Data, &se); err != nil {
			return fmt.Errorf("malformed topic configs entry: %v", err)
		}
		t, ok := s.topics[se.Name]
		if !ok || (se.ID != 0 && t.ID != se.ID) {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, se.Name)
		}
		cfg := t.Config
		cfg.RetentionMs, cfg.RetentionBytes, cfg.Configs = se.RetentionMs, se.RetentionBytes, cloneConfigs(se.Configs)
		if err := cfg.validate(); err != nil {
			return err
		}
		t.Config = cfg
		return nil
	case TypeCompact:
		return s.applyCompact(e)
	case TypeKeyCompact:
		return s.applyKeyCompact(e)
	case TypeTxnInit, TypeTxnAddOffsets, TypeTxnOffsetCommit, TypeTxnEnd, TypeTxnTimeout:
		return s.applyTxn(seq, e)
	case TypeTruncate:
		var te truncateEntry
		if err := json.Unmarshal(e.Data, &te); err != nil {
			return fmt.Errorf("malformed truncate entry: %v", err)
		}
		t, ok := s.topics[te.Topic]
		if !ok || t.ID != te.ID {
			return fmt.Errorf("%w: %s", ErrUnknownTopic, te.Topic)
		}
		p, err := s.partition(te.Topic, te.Partition)
		if err != nil {
			return err
		}
		p.truncate(te.Offset)
		s.trimTxn(te.Topic, t.ID, te.Partition, p.Start)
		return nil
	}
	return fmt.Errorf("streams: entry type %d not handled", e.Type)
}

// checkSequence applies Kafka's idempotence rules for a batch of producer
// pe.PID on partition p: a retry of one of the producer's recent batches is a
// duplicate (answered with the original offset), the next sequence number is
// accepted, anything else is out of order. It creates the producer's entry
// for p when the batch is accepted.
func (s *state) checkSequence(p *partition, pe produceEntry) (*ProduceResult, error) {
	epoch, ok := s.producers[pe.PID]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownProducerID, pe.PID)
	}
	switch {
	case pe.Epoch > epoch && pe.FirstSeq == 0 && s.enabled != nil && s.enabled(formatEpochBump):
		// An idempotent producer may bump its own epoch to reset its
		// sequence numbers after a failed batch (KIP-360), as Kafka
		// accepts: the new epoch starts at sequence 0 and fences the old.
		s.producers[pe.PID] = pe.Epoch
	case pe.Epoch != epoch:
		return nil, fmt.Errorf("%w: producer %d is at epoch %d, batch has %d", ErrInvalidProducerEpoch, pe.PID, epoch, pe.Epoch)
	}
	if p.Producers == nil {
		p.Producers = map[int64]*producerSeqs{}
	}
	ps := p.Producers[pe.PID]
	if ps == nil || ps.Epoch != pe.Epoch {
		// A new producer (or epoch) on this partition starts anywhere: its
		// older state may have been trimmed away with the records.
		p.Producers[pe.PID] = &producerSeqs{Epoch: pe.Epoch, Recent: []seqBatch{}}
		return nil, nil
	}
	for _, b := range ps.Recent {
		if b.First == pe.FirstSeq && b.Last == pe.LastSeq {
			return &ProduceResult{Base: b.Base, Duplicate: true}, nil
		}
	}
	last := ps.Recent[len(ps.Recent)-1].Last
	next := last + 1
	if last == 2147483647 {
		next = 0 // sequence numbers wrap, as in Kafka
	}
	if pe.FirstSeq != next {
		return nil, fmt.Errorf("%w: expected %d, got %d", ErrOutOfOrderSequence, next, pe.FirstSeq)
	}
	return nil, nil
}

// truncate drops records below offset: whole segments go, and Start moves.
func (p *partition) truncate(offset int64) {
	offset = min(offset, p.End)
	if offset <= p.Start {
		return
	}
	p.Start = offset
	i := sort.Search(len(p.Segments), func(i int) bool {
		return p.Segments[i].Base+p.Segments[i].Count > offset
	})
	for _, seg := range p.Segments[:i] {
		p.Bytes -= seg.Ref.Len
	}
	p.Segments = append([]segment{}, p.Segments[i:]...)
}

func (s *state) partition(name string, idx int32) (*partition, error) {
	t, ok := s.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if idx < 0 || int(idx) >= len(t.Partitions) {
		return nil, fmt.Errorf("%w: %s has partitions 0 to %d, not %d", ErrUnknownPartition, name, len(t.Partitions)-1, idx)
	}
	return t.Partitions[idx], nil
}

// Maintain proposes retention: for each partition, truncate past segments
// older than retention_ms (by the time they were appended) and past the
// oldest segments while the partition holds more than retention_bytes.
func (s *state) Maintain(now time.Time) []commitlog.Entry {
	var out []commitlog.Entry
	names := make([]string, 0, len(s.topics))
	for n := range s.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t := s.topics[name]
		if !t.Config.Deletes() {
			continue // cleanup.policy=compact alone: no retention, as Kafka
		}
		for i, p := range t.Partitions {
			cut := p.Start
			bytes := p.Bytes
			for _, seg := range p.Segments {
				old := t.Config.RetentionMs > 0 && now.UnixMilli()-seg.AppendMs > t.Config.RetentionMs
				big := t.Config.RetentionBytes > 0 && bytes-seg.Ref.Len >= t.Config.RetentionBytes
				if !old && !big {
					break
				}
				cut = seg.Base + seg.Count
				bytes -= seg.Ref.Len
			}
			if cut > p.Start {
				data, _ := json.Marshal(truncateEntry{Topic: name, ID: t.ID, Partition: int32(i), Offset: cut})
				out = append(out, commitlog.Entry{Type: TypeTruncate, Data: data})
			}
		}
	}
	return out
}
