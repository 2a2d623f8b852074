package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/groups"
)

// The KIP-848 consumer group APIs are authorized as Kafka's broker does:
// ConsumerGroupHeartbeat needs READ on the group and DESCRIBE on every topic
// it subscribes to by name (else TOPIC_AUTHORIZATION_FAILED), and a regex
// subscription matches only the topics the principal may describe;
// ConsumerGroupDescribe needs DESCRIBE on each group, and a group whose
// members subscribe to or are assigned topics the principal may not
// describe is answered TOPIC_AUTHORIZATION_FAILED.

func (s *Server) authorizeConsumerHeartbeat(ctx context.Context, r *kmsg.ConsumerGroupHeartbeatRequest) groupAuth {
	describes := s.topicAuth(ctx, auth.OpDescribe)
	var refused []string
	for _, t := range r.SubscribedTopicNames {
		if describes.check(t) != nil {
			refused = append(refused, t)
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		msg := fmt.Sprintf("not authorized to describe the subscribed topics %s", strings.Join(slices.Compact(refused), ", "))
		return groupAuth{answer: groupError(r, kerr.TopicAuthorizationFailed.Code, msg)}
	}
	// Every heartbeat carries the filter: the member's regex is resolved
	// again whenever the topics change, on anyone's heartbeat.
	allow := func(topic string) bool { return authz.Allowed(ctx, auth.OpDescribe, auth.ResTopic, topic) }
	return groupAuth{req: r, ctx: groups.WithTopicFilter(ctx, allow)}
}

func (s *Server) authorizeConsumerDescribe(ctx context.Context, r *kmsg.ConsumerGroupDescribeRequest) groupAuth {
	allowed, refused := s.authorizeEachGroup(ctx, auth.OpDescribe, r.Groups)
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		dr := resp.(*kmsg.ConsumerGroupDescribeResponse)
		got := dr.Groups
		dr.Groups = nil
		describes := s.topicAuth(ctx, auth.OpDescribe)
		j := 0
		for i, g := range r.Groups {
			if refused[i] != nil {
				d := kmsg.NewConsumerGroupDescribeResponseGroup()
				d.Group, d.ErrorCode, d.ErrorMessage = g, kerr.GroupAuthorizationFailed.Code, errMessage(refused[i])
				dr.Groups = append(dr.Groups, d)
				continue
			}
			// The handler answers the groups it was given, in order.
			if j >= len(got) {
				continue
			}
			d := got[j]
			j++
			if d.ErrorCode == 0 {
				if t := unDescribable(d, describes); t != "" {
					d = kmsg.NewConsumerGroupDescribeResponseGroup()
					d.Group, d.ErrorCode = g, kerr.TopicAuthorizationFailed.Code
					d.ErrorMessage = strPtr(fmt.Sprintf("the group uses topic %s, which the principal may not describe", t))
				} else if r.IncludeAuthorizedOperations {
					d.AuthorizedOperations = authorizedOps(ctx, auth.ResGroup, d.Group)
				}
			}
			dr.Groups = append(dr.Groups, d)
		}
		return dr
	}}
	if len(allowed) > 0 {
		sub := *r
		sub.Groups = allowed
		a.req = &sub
	}
	return a
}

// unDescribable returns a topic the group's members use that the principal
// may not describe, or "".
func unDescribable(d kmsg.ConsumerGroupDescribeResponseGroup, describes *topicAuth) string {
	for _, m := range d.Members {
		topics := slices.Clone(m.SubscribedTopics)
		for _, tp := range m.Assignment.TopicPartitions {
			topics = append(topics, tp.Topic)
		}
		for _, tp := range m.TargetAssignment.TopicPartitions {
			topics = append(topics, tp.Topic)
		}
		for _, t := range topics {
			if describes.check(t) != nil {
				return t
			}
		}
	}
	return ""
}
