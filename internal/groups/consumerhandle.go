package groups

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FeatureConsumerGroups is the log feature that switches KIP-848 consumer
// groups on: their state is entry type TypeConsumerGroup, proposed only once
// every agent sharing the bucket knows it. Until then ConsumerGroupHeartbeat
// answers UNSUPPORTED_VERSION, on which clients fall back to the classic
// protocol.
var FeatureConsumerGroups = fmt.Sprintf("type:%d", TypeConsumerGroup)

// Serves reports whether an API of MaxVersions is served now: the KIP-848
// ones (68, 69) only once FeatureConsumerGroups is on, so clients are not
// offered them before (the Kafka server leaves them out of ApiVersions).
func (c *Coordinator) Serves(key int16) bool {
	if key != 68 && key != 69 {
		return true
	}
	cl := c.commitLog()
	return cl != nil && cl.Enabled(FeatureConsumerGroups)
}

type topicFilterKey struct{}

// WithTopicFilter attaches to a ConsumerGroupHeartbeat's context the topics
// its principal may describe: a regex subscription matches only those, as
// on Kafka.
func WithTopicFilter(ctx context.Context, allow func(topic string) bool) context.Context {
	return context.WithValue(ctx, topicFilterKey{}, allow)
}

func topicFilterFrom(ctx context.Context) func(string) bool {
	f, _ := ctx.Value(topicFilterKey{}).(func(string) bool)
	return f
}

func (c *Coordinator) consumerHeartbeat(ctx context.Context, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = strp(msg)
		}
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code, "the group id is empty")
	}
	if cl := c.commitLog(); cl != nil && !cl.Enabled(FeatureConsumerGroups) {
		return fail(kerr.UnsupportedVersion.Code, "the consumer group protocol is switched on once every agent sharing the bucket supports it; use the classic protocol meanwhile")
	}
	h, _, err := c.coordinating(req.Group)
	if err != nil {
		return fail(kerr.NotCoordinator.Code, "")
	}
	res := h.cg.heartbeat(req, clientFrom(ctx), topicFilterFrom(ctx), h.g.busy)
	if res.code == 0 {
		res.code = h.cg.flush(ctx, res.version)
	}
	if res.code != 0 {
		return fail(res.code, res.msg)
	}
	resp.MemberID = strp(res.memberID)
	resp.MemberEpoch = res.epoch
	resp.HeartbeatIntervalMillis = int32(c.cfg.ConsumerHeartbeatInterval.Milliseconds())
	resp.Assignment = res.assignment
	return resp
}

func (c *Coordinator) consumerDescribe(req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, name := range req.Groups {
		d := kmsg.NewConsumerGroupDescribeResponseGroup()
		d.Group = name
		h, _, err := c.coordinating(name)
		switch {
		case name == "":
			d.ErrorCode = kerr.InvalidGroupID.Code
		case err != nil:
			d.ErrorCode = kerr.NotCoordinator.Code
		case h.g.busy():
			d.ErrorCode, d.ErrorMessage = kerr.GroupIDNotFound.Code, strp(fmt.Sprintf("group %s is not a consumer group: it has classic members", name))
		case !h.cg.known():
			d.ErrorCode, d.ErrorMessage = kerr.GroupIDNotFound.Code, strp(fmt.Sprintf("group %s does not exist", name))
		default:
			d = h.cg.describe()
		}
		resp.Groups = append(resp.Groups, d)
	}
	return resp
}

// describeClassic is a consumer group as DescribeGroups shows it, as Kafka
// does for tools that know only the classic API: protocol type "consumer",
// the assignor as protocol, and the consumer protocol's encodings of each
// member's subscription and assignment.
func (g *consumerGroup) describeClassic() kmsg.DescribeGroupsResponseGroup {
	cd := g.describe()
	d := kmsg.NewDescribeGroupsResponseGroup()
	d.Group, d.State, d.ProtocolType, d.Protocol = cd.Group, cd.State, "consumer", cd.AssignorName
	for _, m := range cd.Members {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
		md := kmsg.NewConsumerMemberMetadata()
		md.Version = 3
		md.Topics = m.SubscribedTopics
		dm.ProtocolMetadata = md.AppendTo(nil)
		a := kmsg.NewConsumerMemberAssignment()
		a.Version = 3
		for _, t := range m.Assignment.TopicPartitions {
			a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
		dm.MemberAssignment = a.AppendTo(nil)
		d.Members = append(d.Members, dm)
	}
	return d
}
