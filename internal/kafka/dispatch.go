package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// dispatch serves one decoded request. It returns the response to write (nil
// for none) and whether to close the connection after it.
func (s *Server) dispatch(ctx context.Context, c *conn, h header, req kmsg.Request, turns *produceTurns) (kmsg.Response, bool) {
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return s.apiVersions(h, r), false
	case *kmsg.ProduceRequest:
		resp, failed := s.produce(ctx, r, turns)
		if r.Acks == 0 {
			if failed {
				// Kafka closes the connection when an acks=0 produce fails,
				// the only way to tell the client (it refreshes metadata).
				c.log.Warn("kafka acks=0 produce failed; closing the connection as Kafka does", "client_id", h.clientID, "first_error", firstProduceError(resp))
				return nil, true
			}
			return nil, false
		}
		return resp, false
	case *kmsg.FetchRequest:
		return s.fetch(ctx, r), false
	case *kmsg.ListOffsetsRequest:
		return s.listOffsets(ctx, r), false
	case *kmsg.MetadataRequest:
		return s.metadata(ctx, r), false
	case *kmsg.OffsetForLeaderEpochRequest:
		return s.offsetForLeaderEpoch(ctx, r), false
	case *kmsg.CreateTopicsRequest:
		return s.createTopics(ctx, r), false
	case *kmsg.DeleteTopicsRequest:
		return s.deleteTopics(ctx, r), false
	case *kmsg.CreatePartitionsRequest:
		return s.createPartitions(ctx, r), false
	case *kmsg.DescribeConfigsRequest:
		return s.describeConfigs(ctx, r), false
	case *kmsg.AlterConfigsRequest:
		return s.alterConfigs(ctx, r), false
	case *kmsg.IncrementalAlterConfigsRequest:
		return s.incrementalAlterConfigs(ctx, r), false
	case *kmsg.DescribeClusterRequest:
		return s.describeCluster(ctx, r), false
	case *kmsg.InitProducerIDRequest:
		return s.initProducerID(ctx, r), false
	case *kmsg.SASLHandshakeRequest:
		return s.saslHandshake(c, h, r)
	case *kmsg.SASLAuthenticateRequest:
		return s.saslAuthenticate(c, h, r)
	case *kmsg.CreateACLsRequest:
		return s.createACLs(ctx, r), false
	case *kmsg.DescribeACLsRequest:
		return s.describeACLs(ctx, r), false
	case *kmsg.DeleteACLsRequest:
		return s.deleteACLs(ctx, r), false
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return s.describeUserSCRAMs(ctx, r), false
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		if s.cfg.Auth == nil {
			return s.alterUnsupported(r), false
		}
		return s.alterUserSCRAMs(ctx, r), false
	case *kmsg.AddPartitionsToTxnRequest:
		if r.Version >= 4 {
			// Not advertised: the broker-to-broker batch form (KIP-890).
			return txnError(req, kerr.UnsupportedVersion.Code), false
		}
		return s.addPartitionsToTxn(ctx, r), false
	case *kmsg.AddOffsetsToTxnRequest:
		return s.addOffsetsToTxn(ctx, r), false
	case *kmsg.EndTxnRequest:
		return s.endTxn(ctx, r), false
	case *kmsg.TxnOffsetCommitRequest:
		return s.txnOffsetCommit(ctx, r), false
	case *kmsg.DescribeTransactionsRequest:
		return s.describeTransactions(ctx, r), false
	case *kmsg.ListTransactionsRequest:
		return s.listTransactions(ctx, r), false
	case *kmsg.FindCoordinatorRequest:
		if r.CoordinatorType == 1 {
			return s.findTxnCoordinator(ctx, r), false
		}
	}
	if isGroupAPI(h.key) {
		resp := s.serveGroup(ctx, c, h, req)
		if r, ok := req.(*kmsg.OffsetFetchRequest); ok && r.RequireStable {
			s.markUnstable(ctx, r, resp)
		}
		return resp, false
	}
	// parseRequest admits only the APIs above.
	c.log.Error("kafka request admitted but not dispatched; closing the connection", "api", kmsg.NameForKey(h.key))
	return nil, true
}

func firstProduceError(resp *kmsg.ProduceResponse) string {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				if p.ErrorMessage != nil {
					return *p.ErrorMessage
				}
				return kerr.ErrorForCode(p.ErrorCode).Error()
			}
		}
	}
	return ""
}

// initProducerID allocates an idempotent producer id through the log (or
// bumps the epoch of the client's id, KIP-360), for a principal with
// IDEMPOTENT_WRITE on the cluster or WRITE on some topic. With a
// transactional id it is the transaction coordinator's (txn.go).
func (s *Server) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		return s.initTxnProducer(ctx, req, resp)
	}
	if err := s.mayProduceIdempotently(ctx); err != nil {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pid, epoch := int64(-1), int16(-1)
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 {
		pid, epoch = req.ProducerID, req.ProducerEpoch
	}
	id, err := s.svc.InitProducerID(ctx, pid, epoch)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		if resp.ErrorCode == kerr.KafkaStorageError.Code || resp.ErrorCode == kerr.NotLeaderForPartition.Code {
			// InitProducerID clients retry this one.
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id.ID, id.Epoch
	return resp
}

// txnError answers a transaction request with code everywhere.
func txnError(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		resp.ErrorCode = code
		for _, t := range r.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: code})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.AddOffsetsToTxnRequest:
		resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.EndTxnRequest:
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
		return resp
	case *kmsg.TxnOffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	return nil
}

// alterUnsupported answers AlterUserScramCredentials without users.
func (s *Server) alterUnsupported(r *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	for _, u := range r.Upsertions {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User, res.ErrorCode = u.Name, kerr.UnsupportedVersion.Code
		resp.Results = append(resp.Results, res)
	}
	return resp
}
