package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
)

// Special ListOffsets timestamps.
const (
	tsLatest           = -1
	tsEarliest         = -2
	tsMaxTimestamp     = -3 // v7+
	tsEarliestLocal    = -4 // v8+: there is no tiered storage, so the log start
	tsLatestTiered     = -5 // v9+: nothing is tiered: no offset
	tsEarliestPending  = -6 // v11+: nothing pending upload: no offset
	undefinedOffset    = -1
	undefinedTimestamp = -1
	undefinedEpoch     = -1
)

// listOffsets answers ListOffsets after catching up with the log, so that an
// offset another agent handed out is never reported as beyond the end.
// Topics the principal may not DESCRIBE fail with TOPIC_AUTHORIZATION_FAILED.
func (s *Server) listOffsets(ctx context.Context, req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	if err := s.svc.Sync(ctx); err != nil {
		s.log.Warn("kafka list offsets: cannot catch up with the log; answering from what this agent knows", "err", err)
	}
	describes := s.topicAuth(ctx, auth.OpDescribe)
	for _, rt := range req.Topics {
		out := kmsg.NewListOffsetsResponseTopic()
		out.Topic = rt.Topic
		denied := describes.check(rt.Topic) != nil
		ti, ok := s.topicInfo(rt.Topic)
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			op.Timestamp, op.Offset, op.LeaderEpoch = undefinedTimestamp, undefinedOffset, 0
			if denied {
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
				out.Partitions = append(out.Partitions, op)
				continue
			}
			if !ok || rp.Partition < 0 || int(rp.Partition) >= len(ti.PartitionsInfo) {
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.Partitions = append(out.Partitions, op)
				continue
			}
			pi := ti.PartitionsInfo[rp.Partition]
			switch ts := rp.Timestamp; {
			case ts == tsLatest && req.IsolationLevel == 1:
				op.Offset = s.lastStable(rt.Topic, rp.Partition, pi.End)
			case ts == tsLatest:
				op.Offset = pi.End
			case ts == tsEarliest, ts == tsEarliestLocal:
				op.Offset = pi.Start
			case ts == tsLatestTiered, ts == tsEarliestPending:
			case ts == tsMaxTimestamp:
				off, t, found, err := s.svc.MaxTimestampOffset(ctx, rt.Topic, rp.Partition)
				if err != nil {
					op.ErrorCode = errorCode(err)
				} else if found {
					op.Offset, op.Timestamp = off, t
				}
			case ts >= 0:
				off, t, found, err := s.svc.OffsetForTimestamp(ctx, rt.Topic, rp.Partition, ts)
				if err != nil {
					op.ErrorCode = errorCode(err)
				} else if found {
					op.Offset, op.Timestamp = off, t
				}
			default:
				op.ErrorCode = kerr.InvalidRequest.Code
			}
			out.Partitions = append(out.Partitions, op)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// offsetForLeaderEpoch answers with epoch 0, the only one there is: its end
// offset is the high watermark. It catches up with the log first, since a
// lower end offset than a consumer's position reads as truncation. Topics
// the principal may not DESCRIBE fail with TOPIC_AUTHORIZATION_FAILED.
func (s *Server) offsetForLeaderEpoch(ctx context.Context, req *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	if err := s.svc.Sync(ctx); err != nil {
		s.log.Warn("kafka offset for leader epoch: cannot catch up with the log", "err", err)
	}
	describes := s.topicAuth(ctx, auth.OpDescribe)
	for _, rt := range req.Topics {
		out := kmsg.NewOffsetForLeaderEpochResponseTopic()
		out.Topic = rt.Topic
		denied := describes.check(rt.Topic) != nil
		ti, ok := s.topicInfo(rt.Topic)
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition = rp.Partition
			op.LeaderEpoch, op.EndOffset = undefinedEpoch, undefinedOffset
			switch {
			case denied:
				op.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case !ok || rp.Partition < 0 || int(rp.Partition) >= len(ti.PartitionsInfo):
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch > 0:
				// The client believes in a newer epoch than exists.
				op.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case rp.LeaderEpoch >= 0:
				op.LeaderEpoch, op.EndOffset = 0, ti.PartitionsInfo[rp.Partition].End
			}
			out.Partitions = append(out.Partitions, op)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}
