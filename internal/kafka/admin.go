package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/stream"
)

// adminTimeout bounds an admin request whose timeout is unset.
const adminTimeout = 30 * time.Second

func withTimeout(ctx context.Context, ms int32) (context.Context, context.CancelFunc) {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 {
		d = adminTimeout
	}
	return context.WithTimeout(ctx, d)
}

// createTopics creates the topics the principal may CREATE (on the cluster,
// or on the topic); the others fail with TOPIC_AUTHORIZATION_FAILED. A
// created topic's configs are returned to a principal that may
// DESCRIBE_CONFIGS it.
func (s *Server) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		out := kmsg.NewCreateTopicsResponseTopic()
		out.Topic = rt.Topic
		out.NumPartitions, out.ReplicationFactor = -1, -1
		if err := s.mayCreateTopic(ctx, rt.Topic); err != nil {
			out.ErrorCode, out.ErrorMessage = kerr.TopicAuthorizationFailed.Code, errMessage(err)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		cfg, code, err := s.topicToCreate(rt)
		if err == nil {
			if _, exists := s.lookupTopic(ctx, rt.Topic); exists {
				code, err = kerr.TopicAlreadyExists.Code, fmt.Errorf("%w: %s", stream.ErrTopicExists, rt.Topic)
			}
		}
		if err == nil && !req.ValidateOnly {
			if err = s.svc.CreateTopic(ctx, cfg); err != nil {
				code = errorCode(err)
			}
		}
		if err != nil {
			out.ErrorCode, out.ErrorMessage = code, errMessage(err)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		ti := stream.TopicInfo{TopicConfig: cfg}
		if !req.ValidateOnly {
			if t, ok := s.topicInfo(rt.Topic); ok {
				ti = t
				out.TopicID = topicID(t.Name, t.CreatedMs)
			}
		}
		if ti.RetentionMs == 0 {
			ti.RetentionMs = -1
		}
		if ti.RetentionBytes == 0 {
			ti.RetentionBytes = -1
		}
		out.NumPartitions, out.ReplicationFactor = ti.Partitions, 1
		if !authz.Allowed(ctx, auth.OpDescribeConfigs, auth.ResTopic, rt.Topic) {
			out.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, out)
			continue
		}
		for _, c := range describeTopicConfigs(ti, nil, describeOpts{}) {
			rc := kmsg.NewCreateTopicsResponseTopicConfig()
			rc.Name, rc.Value, rc.ReadOnly, rc.Source = c.Name, c.Value, c.ReadOnly, int8(c.Source)
			out.Configs = append(out.Configs, rc)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// topicToCreate turns a CreateTopics entry into a topic config, or says what
// is wrong with it.
func (s *Server) topicToCreate(rt kmsg.CreateTopicsRequestTopic) (stream.TopicConfig, int16, error) {
	cfg := stream.TopicConfig{Name: rt.Topic, Partitions: rt.NumPartitions}
	if err := stream.ValidateTopicName(rt.Topic); err != nil {
		return cfg, kerr.InvalidTopicException.Code, err
	}
	if isInternalTopic(rt.Topic) {
		return cfg, kerr.TopicAlreadyExists.Code, fmt.Errorf("%w: %s is an internal topic", stream.ErrTopicExists, rt.Topic)
	}
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 {
			return cfg, kerr.InvalidRequest.Code, fmt.Errorf("give either num_partitions or a replica assignment, not both")
		}
		// Replicas mean nothing here (the bucket keeps the data); the
		// assignment only counts the partitions.
		cfg.Partitions = int32(len(rt.ReplicaAssignment))
	} else if rt.NumPartitions == -1 {
		cfg.Partitions = s.cfg.DefaultPartitions
	}
	if cfg.Partitions < 1 || cfg.Partitions > stream.MaxPartitions {
		return cfg, kerr.InvalidPartitions.Code, fmt.Errorf("partitions must be between 1 and %d (or -1 for the default, %d), not %d", stream.MaxPartitions, s.cfg.DefaultPartitions, rt.NumPartitions)
	}
	if rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1 {
		return cfg, kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor must be positive or -1, not %d (twoway keeps one copy in the bucket whatever it is)", rt.ReplicationFactor)
	}
	cfg.RetentionMs, cfg.RetentionBytes = -1, -1
	for _, c := range rt.Configs {
		if err := setConfig(&cfg, c.Name, c.Value); err != nil {
			return cfg, kerr.InvalidConfig.Code, err
		}
	}
	return cfg, 0, nil
}

// deleteTopics deletes the topics the principal may DELETE; the others
// fail with TOPIC_AUTHORIZATION_FAILED (without their name, when named by
// an id the principal may not DESCRIBE, as Kafka does).
func (s *Server) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for _, name := range req.TopicNames {
			topics = append(topics, kmsg.DeleteTopicsRequestTopic{Topic: &name})
		}
	}
	for _, rt := range topics {
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic, out.TopicID = rt.Topic, rt.TopicID
		name := ""
		switch {
		case rt.Topic != nil:
			name = *rt.Topic
		default:
			ti, ok := s.topicByID(ctx, rt.TopicID)
			if !ok {
				out.ErrorCode = kerr.UnknownTopicID.Code
				out.ErrorMessage = errMessage(fmt.Errorf("%w %x", errUnknownTopicID, rt.TopicID))
				resp.Topics = append(resp.Topics, out)
				continue
			}
			name = ti.Name
			if err := s.authorize(ctx, auth.OpDescribe, auth.ResTopic, name); err != nil {
				// Named by an id it may not describe: the name stays hidden.
				out.ErrorCode = kerr.TopicAuthorizationFailed.Code
				out.ErrorMessage = errMessage(fmt.Errorf("%w: topic id %x", authz.ErrDenied, rt.TopicID))
				resp.Topics = append(resp.Topics, out)
				continue
			}
			out.Topic = &name
		}
		if err := s.authorize(ctx, auth.OpDelete, auth.ResTopic, name); err != nil {
			out.ErrorCode, out.ErrorMessage = kerr.TopicAuthorizationFailed.Code, errMessage(err)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		if isInternalTopic(name) {
			out.ErrorCode, out.ErrorMessage = kerr.InvalidRequest.Code, errMessage(fmt.Errorf("%s is an internal topic and cannot be deleted", name))
			resp.Topics = append(resp.Topics, out)
			continue
		}
		if err := s.svc.DeleteTopic(ctx, name); err != nil {
			out.ErrorCode, out.ErrorMessage = errorCode(err), errMessage(err)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// createPartitions grows the topics the principal may ALTER; the others
// fail with TOPIC_AUTHORIZATION_FAILED.
func (s *Server) createPartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	ctx, cancel := withTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		if err := s.authorize(ctx, auth.OpAlter, auth.ResTopic, rt.Topic); err != nil {
			out.ErrorCode, out.ErrorMessage = kerr.TopicAuthorizationFailed.Code, errMessage(err)
			resp.Topics = append(resp.Topics, out)
			continue
		}
		ti, ok := s.lookupTopic(ctx, rt.Topic)
		switch {
		case !ok:
			out.ErrorCode = kerr.UnknownTopicOrPartition.Code
			out.ErrorMessage = errMessage(fmt.Errorf("%w: %s", stream.ErrUnknownTopic, rt.Topic))
		case rt.Count <= ti.Partitions || rt.Count > stream.MaxPartitions:
			out.ErrorCode = kerr.InvalidPartitions.Code
			out.ErrorMessage = errMessage(fmt.Errorf("%s has %d partitions: the new count must be larger, and at most %d, not %d", rt.Topic, ti.Partitions, stream.MaxPartitions, rt.Count))
		case req.ValidateOnly:
		default:
			if err := s.svc.AlterTopic(ctx, rt.Topic, rt.Count, nil, nil); err != nil {
				out.ErrorCode, out.ErrorMessage = errorCode(err), errMessage(err)
				if out.ErrorCode == kerr.InvalidConfig.Code {
					out.ErrorCode = kerr.InvalidPartitions.Code
				}
			}
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}
