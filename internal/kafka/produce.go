package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/codec"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// defaultProduceTimeout is used when a request carries no timeout.
const defaultProduceTimeout = 30 * time.Second

// produce appends every partition's batches of the topics the principal may
// WRITE (the others fail with TOPIC_AUTHORIZATION_FAILED), each through its own
// Service.Produce call: they run concurrently and so share the agent's next
// group commit, and a failure of one partition does not fail the others (as
// in Kafka). A response is sent once the commit holding the records is
// durable, whatever acks asks for. failed reports whether any partition
// failed (acks=0 then closes the connection, as Kafka does).
func (s *Server) produce(ctx context.Context, req *kmsg.ProduceRequest, turns *produceTurns) (resp *kmsg.ProduceResponse, failed bool) {
	defer turns.passAll()
	resp = req.ResponseKind().(*kmsg.ProduceResponse)
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultProduceTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dec := s.newDecompression(ctx, turns)

	var reqErr error
	reqCode := kerr.InvalidRequiredAcks.Code
	txnal := req.TransactionID != nil && *req.TransactionID != ""
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		reqErr = fmt.Errorf("acks must be -1, 0 or 1, not %d", req.Acks)
	case txnal && s.mayTxn(ctx, auth.OpWrite, *req.TransactionID) != nil:
		reqErr = fmt.Errorf("not authorized to write as transactional id %q", *req.TransactionID)
		reqCode = kerr.TransactionalIDAuthorizationFailed.Code
	}

	writes := s.topicAuth(ctx, auth.OpWrite)
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		out := &resp.Topics[i]
		*out = kmsg.NewProduceResponseTopic()
		out.Topic, out.TopicID = rt.Topic, rt.TopicID
		out.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		key := rt.Topic
		var ti stream.TopicInfo
		var topicErr error
		var code int16
		switch {
		case reqErr != nil:
			topicErr, code = reqErr, reqCode
		case req.Version >= 13:
			key = string(rt.TopicID[:])
			var ok bool
			if name, internal := internalTopicByID(rt.TopicID); internal {
				topicErr, code = fmt.Errorf("cannot produce to %s: it is an internal topic", name), kerr.InvalidTopicException.Code
			} else if ti, ok = s.topicByID(ctx, rt.TopicID); !ok {
				topicErr, code = fmt.Errorf("%w %x", errUnknownTopicID, rt.TopicID), kerr.UnknownTopicID.Code
			} else if err := writes.check(ti.Name); err != nil {
				topicErr, code = err, kerr.TopicAuthorizationFailed.Code
			}
		default:
			var ok bool
			if err := writes.check(rt.Topic); err != nil {
				// Refused before it is looked up, as Kafka does: the
				// answer does not tell whether the topic exists.
				topicErr, code = err, kerr.TopicAuthorizationFailed.Code
			} else if isInternalTopic(rt.Topic) {
				topicErr, code = fmt.Errorf("cannot produce to %s: it is an internal topic", rt.Topic), kerr.InvalidTopicException.Code
			} else if ti, ok = s.lookupTopic(ctx, rt.Topic); !ok {
				topicErr, code = fmt.Errorf("%w: %s", stream.ErrUnknownTopic, rt.Topic), kerr.UnknownTopicOrPartition.Code
			}
		}
		for j, rp := range rt.Partitions {
			op := &out.Partitions[j]
			*op = kmsg.NewProduceResponseTopicPartition()
			op.Partition = rp.Partition
			op.BaseOffset, op.LogAppendTime, op.LogStartOffset = -1, -1, -1
			if topicErr != nil {
				op.ErrorCode, op.ErrorMessage = code, errMessage(topicErr)
				failed = true
				turns.pass(partitionKey{key, rp.Partition})
				continue
			}
			if rp.Partition < 0 || rp.Partition >= ti.Partitions {
				// The partition may have been added on another agent.
				if t, ok := s.lookupTopicFresh(ctx, ti.Name, rp.Partition); ok {
					ti = t
				} else {
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
					op.ErrorMessage = errMessage(fmt.Errorf("%w: %s has partitions 0 to %d", stream.ErrUnknownPartition, ti.Name, ti.Partitions-1))
					failed = true
					turns.pass(partitionKey{key, rp.Partition})
					continue
				}
			}
			k := partitionKey{key, rp.Partition}
			wg.Add(1)
			go func(name string, rp kmsg.ProduceRequestTopicPartition) {
				defer wg.Done()
				base, err := s.producePartition(ctx, name, rp.Partition, rp.Records, txnal, dec, turns, k)
				if err != nil {
					op.ErrorCode, op.ErrorMessage = produceErrorCode(err), errMessage(err)
					return
				}
				op.BaseOffset = base
			}(ti.Name, rp)
		}
	}
	wg.Wait()
	if dec.exceeded.Load() {
		s.log.Warn("kafka produce request decompresses beyond the limit per request; its batches beyond it were refused with MESSAGE_TOO_LARGE",
			"limit_bytes", dec.limit, "decompressed_bytes", dec.total.Load())
	}

	// Fill in log start offsets, and note failures.
	for i := range resp.Topics {
		out := &resp.Topics[i]
		var ti stream.TopicInfo
		var ok bool
		for j := range out.Partitions {
			op := &out.Partitions[j]
			if op.ErrorCode != 0 {
				failed = true
				continue
			}
			if !ok {
				name := out.Topic
				if req.Version >= 13 {
					if t, found := s.topicByID(ctx, out.TopicID); found {
						name = t.Name
					}
				}
				ti, ok = s.topicInfo(name)
			}
			if ok && int(op.Partition) < len(ti.PartitionsInfo) {
				op.LogStartOffset = ti.PartitionsInfo[op.Partition].Start
			}
		}
	}
	return resp, failed
}

// lookupTopicFresh syncs with the log and returns the topic if it now has
// the partition.
func (s *Server) lookupTopicFresh(ctx context.Context, name string, partition int32) (stream.TopicInfo, bool) {
	if partition < 0 || s.svc.Sync(ctx) != nil {
		return stream.TopicInfo{}, false
	}
	ti, ok := s.topicInfo(name)
	return ti, ok && partition < ti.Partitions
}

// producePartition validates a partition's batches, submits them to the log
// in its turn on the connection (see produceTurns) and waits for the commit.
func (s *Server) producePartition(ctx context.Context, topic string, partition int32, raw []byte, txnal bool, dec *decompression, turns *produceTurns, k partitionKey) (int64, error) {
	defer turns.pass(k)
	if err := validateBatches(raw, txnal, dec); err != nil {
		return -1, err
	}
	if err := turns.wait(ctx, k); err != nil {
		return -1, err
	}
	wait, err := s.svc.ProduceAsync(topic, []stream.Batch{{Partition: partition, Raw: raw}})
	turns.pass(k)
	var bases []int64
	var errs []error
	if err == nil {
		bases, errs, err = wait(ctx)
	}
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		if errorCode(err) == kerr.KafkaStorageError.Code {
			s.log.Warn("kafka produce failed", "topic", topic, "partition", partition, "err", err)
		}
		return -1, err
	}
	return bases[0], nil
}

// invalidRecordError is a batch that is well formed but not acceptable:
// INVALID_RECORD, which clients do not retry.
type invalidRecordError struct{ msg string }

func (e *invalidRecordError) Error() string { return "invalid record batch: " + e.msg }

// tooLargeError is a batch, or a request's batches together, decompressing
// beyond a bound: MESSAGE_TOO_LARGE, which clients do not retry as it is
// (the Java producer splits the batch).
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string { return e.msg }

func produceErrorCode(err error) int16 {
	var ire *invalidRecordError
	var tle *tooLargeError
	switch {
	case errors.As(err, &ire):
		return kerr.InvalidRecord.Code
	case errors.As(err, &tle):
		return kerr.MessageTooLarge.Code
	}
	return errorCode(err)
}

// validateBatches checks what the streams service does not: that each batch
// decodes (decompressing it) and that its records have the dense offset
// deltas 0..n-1 its header promises, so that offsets stay dense for every
// reader. Checksum and framing errors are CORRUPT_MESSAGE, the rest
// INVALID_RECORD; decompressing beyond dec's bounds is MESSAGE_TOO_LARGE.
// Transactional batches come only in requests with a transactional id;
// control batches never come from clients.
func validateBatches(raw []byte, txnal bool, dec *decompression) error {
	if len(raw) == 0 {
		return &invalidRecordError{"no records"}
	}
	for b := raw; len(b) > 0; {
		if len(b) > 16 && b[16] != 2 {
			return &invalidRecordError{fmt.Sprintf("message format (magic) %d; twoway accepts record batches v2 (magic 2) only", b[16])}
		}
		m, err := records.ParseMeta(b)
		if err != nil {
			return err
		}
		switch {
		case m.IsControl():
			return &invalidRecordError{"control batches are written by transaction coordinators, not producers"}
		case m.IsTransactional() && !txnal:
			return &invalidRecordError{"a transactional batch in a produce request without a transactional id"}
		case m.IsTransactional() && m.ProducerID < 0:
			return &invalidRecordError{"a transactional batch without a producer id"}
		case m.NumRecords == 0:
			return &invalidRecordError{"a batch without records"}
		case m.NumRecords != m.LastOffsetDelta+1:
			return &invalidRecordError{fmt.Sprintf("%d records with last offset delta %d", m.NumRecords, m.LastOffsetDelta)}
		}
		recs, release, err := dec.decode(b[:m.Length], m)
		if err != nil {
			return err
		}
		for i, r := range recs {
			if r.Offset-m.BaseOffset != int64(i) {
				release()
				return &invalidRecordError{fmt.Sprintf("record %d has offset delta %d", i, r.Offset-m.BaseOffset)}
			}
		}
		release()
		b = b[m.Length:]
	}
	return nil
}

// decompression bounds the decompression of one produce request's batches,
// which its partitions validate concurrently: the bytes they decompress to
// in total (Config.MaxDecompressedPerRequest), and, through the
// connection's budget, the decompressed bytes held at once by all the
// connection's produce requests (Config.MaxDecompressedPerConnection).
// Without them a request of many batches, or many pipelined requests, each
// decompressing to near codec.MaxDecompressed, could exhaust the agent's
// memory.
//
// The codec learns a batch's decompressed size only by decompressing it, so
// a batch reserves codec.MaxDecompressed from the connection's budget before
// it decompresses, keeps only its actual size once it has, and returns that
// once its records are checked. A batch decompressed beyond the request's
// remaining bound is refused; once the bound is exceeded, the request's
// further compressed batches are refused without being decompressed.
type decompression struct {
	ctx        context.Context
	decompress records.Decompressor
	conn       *byteBudget
	limit      int64
	total      atomic.Int64 // bytes decompressed by the request so far
	exceeded   atomic.Bool
}

func (s *Server) newDecompression(ctx context.Context, turns *produceTurns) *decompression {
	d := &decompression{ctx: ctx, decompress: s.cfg.decompress, limit: int64(s.cfg.MaxDecompressedPerRequest)}
	if turns != nil {
		d.conn = turns.decompressed
	}
	if d.conn == nil {
		d.conn = &byteBudget{max: s.cfg.MaxDecompressedPerConnection}
	}
	return d
}

// decode decodes the batch at the start of b, whose header m has been
// checked. The records may point into decompressed bytes that are counted
// against the connection's budget until release is called.
func (d *decompression) decode(b []byte, m records.BatchMeta) (recs []records.Record, release func(), err error) {
	if m.Codec() == records.CodecNone {
		recs, _, err = records.Decode(b, nil)
		return recs, func() {}, err
	}
	if d.total.Load() > d.limit {
		return nil, nil, d.requestTooLarge()
	}
	held := codec.MaxDecompressed
	if err := d.conn.acquire(d.ctx, held); err != nil {
		return nil, nil, err
	}
	release = func() { d.conn.release(held) }
	var tooLarge error
	recs, _, err = records.Decode(b, func(c int, src []byte) ([]byte, error) {
		out, err := d.decompress(c, src)
		if errors.Is(err, codec.ErrTooLarge) {
			tooLarge = &tooLargeError{fmt.Sprintf("a record batch decompresses to more than %d bytes, the limit per batch; send smaller batches", codec.MaxDecompressed)}
		}
		if err != nil {
			return nil, err
		}
		if n := len(out); n < held {
			d.conn.release(held - n)
			held = n
		}
		if d.total.Add(int64(len(out))) > d.limit {
			tooLarge = d.requestTooLarge()
			return nil, tooLarge
		}
		return out, nil
	})
	if tooLarge != nil {
		err = tooLarge
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return recs, release, nil
}

func (d *decompression) requestTooLarge() error {
	d.exceeded.Store(true)
	return &tooLargeError{fmt.Sprintf("the compressed record batches of this produce request decompress to more than %d bytes, the limit per request; send fewer or smaller batches per request", d.limit)}
}
