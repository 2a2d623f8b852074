package kafka

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
)

// The KIP-848 APIs are authorized as on Kafka: ConsumerGroupHeartbeat needs
// READ on the group and DESCRIBE on each topic subscribed by name, a regex
// matches only the topics the member may describe, ConsumerGroupDescribe
// needs DESCRIBE on the group and on the topics its members use.
func TestACLConsumerGroupProtocol(t *testing.T) {
	ctx := context.Background()
	e := newACLEnv(t, true, "admin", "reader", "peeker", "grouponly", "nobody")
	if err := e.svc.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	admin := e.client(t, "admin")
	createTopic(t, admin, "orders", 2)
	createTopic(t, admin, "secret", 1)
	lit := auth.PatternLiteral
	e.grant(t,
		allow("User:reader", auth.ResGroup, lit, "next", auth.OpRead),
		allow("User:reader", auth.ResTopic, lit, "orders", auth.OpRead),
		allow("User:peeker", auth.ResGroup, lit, "next", auth.OpDescribe),
		allow("User:peeker", auth.ResTopic, lit, "orders", auth.OpDescribe),
		allow("User:grouponly", auth.ResGroup, lit, "next", auth.OpDescribe),
	)
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"next"}
	if r := e.conn(t, "admin").do(t, find).(*kmsg.FindCoordinatorResponse); r.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("find coordinator: %v", kerr.ErrorForCode(r.Coordinators[0].ErrorCode))
	}
	hb := func(user, member string, build func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Version, req.Group, req.MemberID, req.RebalanceTimeoutMillis = 1, "next", member, 10000
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		build(req)
		return e.conn(t, user).do(t, req).(*kmsg.ConsumerGroupHeartbeatResponse)
	}
	names := func(ts ...string) func(*kmsg.ConsumerGroupHeartbeatRequest) {
		return func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = ts }
	}
	wantCode(t, "peeker (DESCRIBE only) heartbeats", hb("peeker", "p1", names("orders")).ErrorCode, kerr.GroupAuthorizationFailed.Code)
	wantCode(t, "reader subscribes to secret", hb("reader", "r1", names("orders", "secret")).ErrorCode, kerr.TopicAuthorizationFailed.Code)
	if r := hb("reader", "r1", names("orders")); r.ErrorCode != 0 || r.Assignment == nil || len(r.Assignment.Topics) != 1 || len(r.Assignment.Topics[0].Partitions) != 2 {
		t.Fatalf("reader joins: %v %+v", kerr.ErrorForCode(r.ErrorCode), r.Assignment)
	}
	regex := hb("reader", "r2", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr(".*") })
	wantCode(t, "reader subscribes by regex", regex.ErrorCode, 0)

	describe := func(user string) kmsg.ConsumerGroupDescribeResponseGroup {
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = []string{"next"}
		return e.conn(t, user).do(t, req).(*kmsg.ConsumerGroupDescribeResponse).Groups[0]
	}
	d := describe("admin")
	wantCode(t, "admin describes", d.ErrorCode, 0)
	for _, m := range d.Members {
		for _, tp := range append(slices.Clone(m.Assignment.TopicPartitions), m.TargetAssignment.TopicPartitions...) {
			if tp.Topic == "secret" {
				t.Errorf("member %s was assigned secret through its regex, which it may not describe", m.MemberID)
			}
		}
	}
	if len(d.Members) != 2 {
		t.Errorf("members: %+v", d.Members)
	}
	wantCode(t, "peeker describes", describe("peeker").ErrorCode, 0)
	wantCode(t, "nobody describes", describe("nobody").ErrorCode, kerr.GroupAuthorizationFailed.Code)
	wantCode(t, "grouponly describes (not the topic)", describe("grouponly").ErrorCode, kerr.TopicAuthorizationFailed.Code)
}
