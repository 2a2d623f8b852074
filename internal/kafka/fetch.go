package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/stream"
)

// maxFetchWait caps a client's max_wait_ms.
const maxFetchWait = time.Minute

// fetch answers a Fetch without sessions (session id 0 always): it gathers
// stored batches for every partition asked for, and waits up to max_wait for
// min_bytes to be available. Partitions of topics the principal may not
// READ fail with TOPIC_AUTHORIZATION_FAILED. Batches are served as stored,
// with only the base offset (and partition leader epoch, 0) patched in;
// neither is covered by the batch CRC.
func (s *Server) fetch(ctx context.Context, req *kmsg.FetchRequest) *kmsg.FetchResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.SessionID != 0 || req.SessionEpoch > 0 {
		// This server never hands out a session, so the client cannot hold
		// one; a full fetch (epoch 0 or -1) is what it must send.
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp
	}
	wait := min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 1<<31 - 1
	}

	// Resolve topics once; ids and names stay fixed for the request.
	type topicRef struct {
		name   string
		ok     bool
		denied bool // the principal may not READ it
	}
	reads := s.topicAuth(ctx, auth.OpRead)
	refs := make([]topicRef, len(req.Topics))
	for i, rt := range req.Topics {
		if req.Version >= 13 {
			if ti, ok := s.topicByID(ctx, rt.TopicID); ok {
				refs[i] = topicRef{ti.Name, true, reads.check(ti.Name) != nil}
			}
		} else if reads.check(rt.Topic) != nil {
			refs[i] = topicRef{rt.Topic, false, true}
		} else if _, ok := s.lookupTopic(ctx, rt.Topic); ok {
			refs[i] = topicRef{rt.Topic, true, false}
		}
	}
	// read_committed (KIP-98): records up to the last stable offset only,
	// with the aborted transactions of the range returned.
	readCommitted := req.Version >= 4 && req.IsolationLevel == 1
	synced := false
	hold := holdFor(ctx) // the server's bound on fetch bytes, if any
	for {
		hold.reset()
		changed := s.svc.Log().Changed()
		resp.Topics = resp.Topics[:0]
		total, errored := 0, false
		for i, rt := range req.Topics {
			out := kmsg.NewFetchResponseTopic()
			out.Topic, out.TopicID = rt.Topic, rt.TopicID
			var ti stream.TopicInfo
			ok := refs[i].ok
			if ok {
				ti, ok = s.topicInfo(refs[i].name)
			}
			for _, rp := range rt.Partitions {
				op := kmsg.NewFetchResponseTopicPartition()
				op.Partition = rp.Partition
				op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
				op.PreferredReadReplica = -1
				// Empty, not null: librdkafka rejects a null record set.
				op.RecordBatches = []byte{}
				switch {
				case refs[i].denied:
					op.ErrorCode = kerr.TopicAuthorizationFailed.Code
				case !ok && req.Version >= 13:
					op.ErrorCode = kerr.UnknownTopicID.Code
				case !ok || rp.Partition < 0 || int(rp.Partition) >= len(ti.PartitionsInfo):
					op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				default:
					pi := ti.PartitionsInfo[rp.Partition]
					op.HighWatermark, op.LastStableOffset, op.LogStartOffset = pi.End, pi.End, pi.Start
					if rp.FetchOffset > pi.End && !synced {
						// Another agent may have appended what the client has
						// seen: catch up before calling the offset invalid.
						synced = true
						if s.svc.Sync(ctx) == nil {
							if t, found := s.topicInfo(refs[i].name); found && int(rp.Partition) < len(t.PartitionsInfo) {
								ti, pi = t, t.PartitionsInfo[rp.Partition]
								op.HighWatermark, op.LastStableOffset, op.LogStartOffset = pi.End, pi.End, pi.Start
							}
						}
					}
					if rp.FetchOffset < pi.Start || rp.FetchOffset > pi.End {
						op.ErrorCode = kerr.OffsetOutOfRange.Code
						break
					}
					lso := s.lastStable(refs[i].name, rp.Partition, pi.End)
					op.LastStableOffset = lso
					if rp.FetchOffset == pi.End || total >= maxBytes || (readCommitted && rp.FetchOffset >= lso) {
						break
					}
					limit := min(int(rp.PartitionMaxBytes), maxBytes-total)
					if rp.PartitionMaxBytes <= 0 {
						limit = maxBytes - total
					}
					limit, err := hold.take(ctx, max(limit, 1))
					if limit == 0 && err == nil {
						break // the server's fetch bytes are taken: serve what is gathered
					}
					var res stream.FetchResult
					if err == nil {
						res, err = s.svc.Fetch(ctx, refs[i].name, rp.Partition, rp.FetchOffset, limit, 0)
					}
					if err != nil {
						hold.give(limit)
						op.ErrorCode = errorCode(err)
						var oor *stream.OffsetOutOfRangeError
						if errors.As(err, &oor) {
							op.HighWatermark, op.LastStableOffset, op.LogStartOffset = oor.End, oor.End, oor.Start
						} else if op.ErrorCode == kerr.KafkaStorageError.Code {
							s.log.Warn("kafka fetch failed", "topic", refs[i].name, "partition", rp.Partition, "err", err)
						}
						break
					}
					view, verr := s.svc.TxnView(refs[i].name, rp.Partition, rp.FetchOffset, res.HighWatermark)
					if verr != nil {
						view.LastStable = res.HighWatermark
					}
					op.HighWatermark, op.LastStableOffset, op.LogStartOffset = res.HighWatermark, view.LastStable, res.LogStart
					upper := rp.FetchOffset
					for _, b := range res.Batches {
						base := int64(binary.BigEndian.Uint64(b[0:8]))
						if readCommitted && base >= view.LastStable {
							break
						}
						// Partition leader epoch: 0, the epoch Metadata reports.
						b[12], b[13], b[14], b[15] = 0, 0, 0, 0
						op.RecordBatches = append(op.RecordBatches, b...)
						upper = base + int64(binary.BigEndian.Uint32(b[23:27])) + 1
					}
					if readCommitted {
						for _, a := range view.Aborted {
							if a.First < upper {
								op.AbortedTransactions = append(op.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.PID, FirstOffset: a.First})
							}
						}
					}
					total += len(op.RecordBatches)
					hold.give(limit - len(op.RecordBatches))
				}
				errored = errored || op.ErrorCode != 0
				out.Partitions = append(out.Partitions, op)
			}
			resp.Topics = append(resp.Topics, out)
		}
		if errored || total >= int(req.MinBytes) {
			return resp
		}
		left := time.Until(deadline)
		if left <= 0 {
			return resp
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return resp
		}
		t.Stop()
	}
}

// lastStable is a partition's last stable offset (end when it cannot be
// read).
func (s *Server) lastStable(topic string, partition int32, end int64) int64 {
	v, err := s.svc.TxnView(topic, partition, end, end)
	if err != nil {
		return end
	}
	return v.LastStable
}
