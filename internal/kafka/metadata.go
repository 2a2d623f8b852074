package kafka

import (
	"context"
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/stream"
)

// topicID is the stable UUID of a topic incarnation (stream.TopicID), the
// id the consumer groups' coordinator names topics by too.
func topicID(name string, createdMs int64) [16]byte { return stream.TopicID(name, createdMs) }

// topicIDs resolves topic ids to names, remembering the ids it has computed.
type topicIDs struct {
	mu    sync.Mutex
	names map[[16]byte]string
}

func (t *topicIDs) remember(id [16]byte, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.names == nil || len(t.names) > 100000 {
		t.names = map[[16]byte]string{}
	}
	t.names[id] = name
}

// topicByID returns the topic whose id is id, syncing with the log once
// when it is not known here (it may have been created on another agent).
func (s *Server) topicByID(ctx context.Context, id [16]byte) (stream.TopicInfo, bool) {
	for attempt := 0; attempt < 2; attempt++ {
		s.topics.mu.Lock()
		name, ok := s.topics.names[id]
		s.topics.mu.Unlock()
		if ok {
			if ti, err := s.svc.Topic(name); err == nil && topicID(ti.Name, ti.CreatedMs) == id {
				return ti, true
			}
		}
		for _, ti := range s.svc.Topics() {
			if topicID(ti.Name, ti.CreatedMs) == id {
				s.topics.remember(id, ti.Name)
				return s.topicInfo(ti.Name)
			}
		}
		if attempt == 0 && s.svc.Sync(ctx) != nil {
			break
		}
	}
	return stream.TopicInfo{}, false
}

func (s *Server) topicInfo(name string) (stream.TopicInfo, bool) {
	ti, err := s.svc.Topic(name)
	if err != nil {
		return ti, false
	}
	s.topics.remember(topicID(ti.Name, ti.CreatedMs), ti.Name)
	return ti, true
}

// lookupTopic returns a topic by name, syncing with the log once when it is
// not known here.
func (s *Server) lookupTopic(ctx context.Context, name string) (stream.TopicInfo, bool) {
	if ti, ok := s.topicInfo(name); ok {
		return ti, true
	}
	if stream.ValidateTopicName(name) != nil || s.svc.Sync(ctx) != nil {
		return stream.TopicInfo{}, false
	}
	return s.topicInfo(name)
}

// leaderFor picks the agent reported as a partition's leader: any agent
// serves any partition, so this only spreads clients over agents.
func leaderFor(brokers []broker, partition int32) int32 {
	return brokers[int(partition)%len(brokers)].NodeID
}

// metadata lists the live agents and the topics asked for (all of them
// when none are named) that the principal may DESCRIBE. A topic named but
// not describable is answered TOPIC_AUTHORIZATION_FAILED; creating an
// unknown one on demand needs CREATE on the cluster or on the topic.
func (s *Server) metadata(ctx context.Context, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	brokers := s.agents.brokers(ctx)
	for _, b := range brokers {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: b.NodeID, Host: b.Host, Port: b.Port})
	}
	resp.ClusterID = &s.cfg.ClusterID
	resp.ControllerID = s.nodeID
	if req.Version >= 8 && req.Version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = clusterOps(ctx)
	}
	add := func(ti stream.TopicInfo) {
		mt := topicMetadata(ti, brokers)
		if req.Version >= 8 && req.IncludeTopicAuthorizedOperations {
			mt.AuthorizedOperations = authorizedOps(ctx, auth.ResTopic, ti.Name)
		}
		resp.Topics = append(resp.Topics, mt)
	}

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, ti := range s.svc.Topics() {
			if !authz.Allowed(ctx, auth.OpDescribe, auth.ResTopic, ti.Name) {
				continue
			}
			if full, ok := s.topicInfo(ti.Name); ok && !isInternalTopic(ti.Name) {
				add(full)
			}
		}
		for _, name := range internalTopics {
			if authz.Allowed(ctx, auth.OpDescribe, auth.ResTopic, name) {
				add(internalTopicInfo(name))
			}
		}
		return resp
	}
	describes := s.topicAuth(ctx, auth.OpDescribe)
	for _, rt := range req.Topics {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
		var ti stream.TopicInfo
		var ok bool
		switch {
		case rt.Topic != nil:
			if err := describes.check(*rt.Topic); err != nil {
				mt.ErrorCode, mt.TopicID = kerr.TopicAuthorizationFailed.Code, [16]byte{}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			if isInternalTopic(*rt.Topic) {
				ti, ok = internalTopicInfo(*rt.Topic), true
				break
			}
			ti, ok = s.lookupTopic(ctx, *rt.Topic)
		case rt.TopicID != [16]byte{}:
			if name, internal := internalTopicByID(rt.TopicID); internal {
				ti, ok = internalTopicInfo(name), true
			} else {
				ti, ok = s.topicByID(ctx, rt.TopicID)
			}
			if ok && describes.check(ti.Name) != nil {
				// Kafka does not count ids as secret, but names are.
				mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if !ok && rt.Topic != nil && s.autoCreate(req) && stream.ValidateTopicName(*rt.Topic) == nil {
			if err := s.mayCreateTopic(ctx, *rt.Topic); err != nil {
				mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			ti, ok = s.createOnDemand(ctx, *rt.Topic)
		}
		if ok {
			add(ti)
			continue
		}
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		if rt.Topic == nil {
			mt.ErrorCode = kerr.UnknownTopicID.Code
		} else if stream.ValidateTopicName(*rt.Topic) != nil {
			mt.ErrorCode = kerr.InvalidTopicException.Code
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

// autoCreate reports whether a Metadata request may create the topics it
// names, as a Kafka broker with auto.create.topics.enable=true (Kafka's
// default) does: requests before v4 always may; later ones when the client
// allows it (producers do by default, consumers do not).
func (s *Server) autoCreate(req *kmsg.MetadataRequest) bool {
	return !s.cfg.NoAutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
}

// createOnDemand creates a topic with the default partition count. Another
// agent creating it at the same moment is fine: the log keeps one.
func (s *Server) createOnDemand(ctx context.Context, name string) (stream.TopicInfo, bool) {
	if stream.ValidateTopicName(name) != nil {
		return stream.TopicInfo{}, false
	}
	err := s.svc.CreateTopic(ctx, stream.TopicConfig{Name: name, Partitions: s.cfg.DefaultPartitions})
	if err != nil && !errors.Is(err, stream.ErrTopicExists) {
		s.log.Warn("auto-creating topic failed", "topic", name, "err", err)
		return stream.TopicInfo{}, false
	}
	if err == nil {
		s.log.Info("auto-created topic", "topic", name, "partitions", s.cfg.DefaultPartitions)
	}
	return s.topicInfo(name)
}

func topicMetadata(ti stream.TopicInfo, brokers []broker) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := ti.Name
	mt.Topic = &name
	mt.TopicID = topicID(ti.Name, ti.CreatedMs)
	mt.IsInternal = isInternalTopic(ti.Name)
	for p := range ti.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Leader = leaderFor(brokers, p)
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{mp.Leader}
		mp.ISR = []int32{mp.Leader}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// describeCluster lists the live agents. As on Kafka, any principal may ask;
// the cluster's authorized operations are reported only to one that may
// DESCRIBE the cluster.
func (s *Server) describeCluster(ctx context.Context, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOps(ctx)
	}
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.nodeID
	resp.EndpointType = req.EndpointType
	for _, b := range s.agents.brokers(ctx) {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port = b.NodeID, b.Host, b.Port
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp
}

// errUnknownTopicID is reported for requests that name topics by id.
var errUnknownTopicID = errors.New("unknown topic id")
