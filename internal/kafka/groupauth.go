package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
)

// The group APIs are authorized here, before the group handler sees them,
// as Kafka's broker does: FindCoordinator needs DESCRIBE on the group (or
// the transactional id); JoinGroup, SyncGroup, Heartbeat and LeaveGroup
// READ on the group; OffsetCommit READ on the group and on each topic;
// OffsetFetch DESCRIBE on the group and on each topic (topics it may not
// describe are left out of "all offsets"); DescribeGroups DESCRIBE and
// DeleteGroups DELETE on each group; ListGroups lists the groups the
// principal may DESCRIBE, or all with DESCRIBE on the cluster; OffsetDelete
// needs DELETE on the group and READ on each topic.

// groupAuth is how a group request is authorized: refused as a whole
// (answer), or handed to the group handler narrowed to what is allowed
// (req; nil when nothing is left to ask), the handler's response then
// completed with the refused parts (finish).
type groupAuth struct {
	// ctx, if set, replaces the request's context for the handler.
	ctx    context.Context
	answer kmsg.Response
	req    kmsg.Request
	finish func(kmsg.Response) kmsg.Response
}

func (s *Server) authorizeGroup(ctx context.Context, req kmsg.Request) groupAuth {
	whole := func(op, group string) (groupAuth, bool) {
		if err := s.authorize(ctx, op, auth.ResGroup, group); err != nil {
			return groupAuth{answer: groupError(req, kerr.GroupAuthorizationFailed.Code, err.Error())}, true
		}
		return groupAuth{req: req}, false
	}
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		return s.authorizeFindCoordinator(ctx, r)
	case *kmsg.JoinGroupRequest:
		a, _ := whole(auth.OpRead, r.Group)
		return a
	case *kmsg.SyncGroupRequest:
		a, _ := whole(auth.OpRead, r.Group)
		return a
	case *kmsg.HeartbeatRequest:
		a, _ := whole(auth.OpRead, r.Group)
		return a
	case *kmsg.LeaveGroupRequest:
		a, _ := whole(auth.OpRead, r.Group)
		return a
	case *kmsg.OffsetCommitRequest:
		if a, refused := whole(auth.OpRead, r.Group); refused {
			return a
		}
		return s.authorizeOffsetCommit(ctx, r)
	case *kmsg.OffsetFetchRequest:
		if r.Version >= 8 {
			return s.authorizeOffsetFetchGroups(ctx, r)
		}
		if a, refused := whole(auth.OpDescribe, r.Group); refused {
			return a
		}
		return s.authorizeOffsetFetch(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		return s.authorizeDescribeGroups(ctx, r)
	case *kmsg.ListGroupsRequest:
		return groupAuth{req: r, finish: func(resp kmsg.Response) kmsg.Response {
			lr := resp.(*kmsg.ListGroupsResponse)
			if authz.Allowed(ctx, auth.OpDescribe, auth.ResCluster, auth.ClusterName) {
				return lr
			}
			kept := lr.Groups[:0]
			for _, g := range lr.Groups {
				if authz.Allowed(ctx, auth.OpDescribe, auth.ResGroup, g.Group) {
					kept = append(kept, g)
				}
			}
			lr.Groups = kept
			return lr
		}}
	case *kmsg.DeleteGroupsRequest:
		return s.authorizeDeleteGroups(ctx, r)
	case *kmsg.OffsetDeleteRequest:
		if a, refused := whole(auth.OpDelete, r.Group); refused {
			return a
		}
		return s.authorizeOffsetDelete(ctx, r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		if a, refused := whole(auth.OpRead, r.Group); refused {
			return a
		}
		return s.authorizeConsumerHeartbeat(ctx, r)
	case *kmsg.ConsumerGroupDescribeRequest:
		return s.authorizeConsumerDescribe(ctx, r)
	}
	return groupAuth{req: req}
}

func (s *Server) authorizeFindCoordinator(ctx context.Context, r *kmsg.FindCoordinatorRequest) groupAuth {
	res := auth.ResGroup
	switch r.CoordinatorType {
	case 0:
	case 1:
		res = auth.ResTransactionalID
	default:
		return groupAuth{req: r} // the handler refuses it
	}
	if r.Version < 4 {
		if err := s.authorize(ctx, auth.OpDescribe, res, r.CoordinatorKey); err != nil {
			return groupAuth{answer: groupError(r, deniedCode(res), err.Error())}
		}
		return groupAuth{req: r}
	}
	refused := map[string]error{}
	var allowed []string
	for _, k := range r.CoordinatorKeys {
		err, seen := refused[k]
		if !seen {
			err = s.authorize(ctx, auth.OpDescribe, res, k)
			refused[k] = err
		}
		if err == nil {
			allowed = append(allowed, k)
		}
	}
	if len(allowed) == len(r.CoordinatorKeys) {
		return groupAuth{req: r}
	}
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		got := map[string]kmsg.FindCoordinatorResponseCoordinator{}
		for _, c := range fr.Coordinators {
			got[c.Key] = c
		}
		fr.Coordinators = nil
		for _, k := range r.CoordinatorKeys {
			if err := refused[k]; err != nil {
				c := kmsg.NewFindCoordinatorResponseCoordinator()
				c.Key, c.NodeID, c.Port, c.ErrorCode, c.ErrorMessage = k, -1, -1, deniedCode(res), errMessage(err)
				fr.Coordinators = append(fr.Coordinators, c)
			} else if c, ok := got[k]; ok {
				fr.Coordinators = append(fr.Coordinators, c)
			}
		}
		return fr
	}}
	if len(allowed) > 0 {
		sub := *r
		sub.CoordinatorKeys = allowed
		a.req = &sub
	}
	return a
}

func (s *Server) authorizeOffsetCommit(ctx context.Context, r *kmsg.OffsetCommitRequest) groupAuth {
	reads := s.topicAuth(ctx, auth.OpRead)
	var allowed []kmsg.OffsetCommitRequestTopic
	for _, t := range r.Topics {
		if reads.check(t.Topic) == nil {
			allowed = append(allowed, t)
		}
	}
	if len(allowed) == len(r.Topics) {
		return groupAuth{req: r}
	}
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		cr := resp.(*kmsg.OffsetCommitResponse)
		got := cr.Topics
		cr.Topics = nil
		j := 0
		for _, t := range r.Topics {
			if reads.check(t.Topic) != nil {
				rt := kmsg.NewOffsetCommitResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.TopicAuthorizationFailed.Code})
				}
				cr.Topics = append(cr.Topics, rt)
				continue
			}
			// The handler answers the topics it was given, in order.
			if j < len(got) {
				cr.Topics = append(cr.Topics, got[j])
				j++
			}
		}
		return cr
	}}
	if len(allowed) > 0 {
		sub := *r
		sub.Topics = allowed
		a.req = &sub
	}
	return a
}

// refusedOffsets is how OffsetFetch answers a partition of a topic the
// principal may not describe.
func refusedOffsets(partitions []int32) []kmsg.OffsetFetchResponseTopicPartition {
	out := make([]kmsg.OffsetFetchResponseTopicPartition, len(partitions))
	for i, p := range partitions {
		out[i] = kmsg.NewOffsetFetchResponseTopicPartition()
		out[i].Partition, out[i].Offset, out[i].LeaderEpoch, out[i].Metadata = p, -1, -1, strPtr("")
		out[i].ErrorCode = kerr.TopicAuthorizationFailed.Code
	}
	return out
}

// authorizeOffsetFetch narrows an OffsetFetch before v8 (one group, whose
// DESCRIBE was checked) to the topics the principal may describe.
func (s *Server) authorizeOffsetFetch(ctx context.Context, r *kmsg.OffsetFetchRequest) groupAuth {
	if r.Topics == nil {
		// All the group's offsets: only of the topics it may describe.
		return groupAuth{req: r, finish: func(resp kmsg.Response) kmsg.Response {
			fr := resp.(*kmsg.OffsetFetchResponse)
			kept := fr.Topics[:0]
			for _, t := range fr.Topics {
				if authz.Allowed(ctx, auth.OpDescribe, auth.ResTopic, t.Topic) {
					kept = append(kept, t)
				}
			}
			fr.Topics = kept
			return fr
		}}
	}
	describes := s.topicAuth(ctx, auth.OpDescribe)
	allowed := []kmsg.OffsetFetchRequestTopic{}
	for _, t := range r.Topics {
		if describes.check(t.Topic) == nil {
			allowed = append(allowed, t)
		}
	}
	if len(allowed) == len(r.Topics) {
		return groupAuth{req: r}
	}
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		fr := resp.(*kmsg.OffsetFetchResponse)
		got := map[string]kmsg.OffsetFetchResponseTopic{}
		for _, t := range fr.Topics {
			got[t.Topic] = t
		}
		fr.Topics = nil
		for _, t := range r.Topics {
			if describes.check(t.Topic) != nil {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic, rt.Partitions = t.Topic, refusedOffsets(t.Partitions)
				fr.Topics = append(fr.Topics, rt)
			} else if rt, ok := got[t.Topic]; ok {
				fr.Topics = append(fr.Topics, rt)
			}
		}
		return fr
	}}
	if len(allowed) > 0 {
		sub := *r
		sub.Topics = allowed
		a.req = &sub
	}
	return a
}

// authorizeOffsetFetchGroups narrows an OffsetFetch of v8+ (several
// groups) to the groups, and their topics, the principal may describe.
func (s *Server) authorizeOffsetFetchGroups(ctx context.Context, r *kmsg.OffsetFetchRequest) groupAuth {
	describes := s.topicAuth(ctx, auth.OpDescribe)
	refused := make([]error, len(r.Groups))
	var groups []kmsg.OffsetFetchRequestGroup
	for i, g := range r.Groups {
		if refused[i] = s.authorize(ctx, auth.OpDescribe, auth.ResGroup, g.Group); refused[i] != nil {
			continue
		}
		if g.Topics != nil {
			topics := []kmsg.OffsetFetchRequestGroupTopic{}
			for _, t := range g.Topics {
				if describes.check(t.Topic) == nil {
					topics = append(topics, t)
				}
			}
			g.Topics = topics
		}
		groups = append(groups, g)
	}
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		fr := resp.(*kmsg.OffsetFetchResponse)
		got := map[string]kmsg.OffsetFetchResponseGroup{}
		for _, g := range fr.Groups {
			got[g.Group] = g
		}
		fr.Groups = nil
		for i, g := range r.Groups {
			if refused[i] != nil {
				rg := kmsg.NewOffsetFetchResponseGroup()
				rg.Group, rg.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
				fr.Groups = append(fr.Groups, rg)
				continue
			}
			rg, ok := got[g.Group]
			if !ok {
				continue
			}
			if g.Topics == nil {
				// All the group's offsets: only of the topics it may describe.
				kept := rg.Topics[:0]
				for _, t := range rg.Topics {
					if authz.Allowed(ctx, auth.OpDescribe, auth.ResTopic, t.Topic) {
						kept = append(kept, t)
					}
				}
				rg.Topics = kept
				fr.Groups = append(fr.Groups, rg)
				continue
			}
			byName := map[string]kmsg.OffsetFetchResponseGroupTopic{}
			for _, t := range rg.Topics {
				byName[t.Topic] = t
			}
			rg.Topics = nil
			for _, t := range g.Topics {
				if describes.check(t.Topic) == nil {
					if rt, ok := byName[t.Topic]; ok {
						rg.Topics = append(rg.Topics, rt)
					}
					continue
				}
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.Topic
				for _, p := range refusedOffsets(t.Partitions) {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			fr.Groups = append(fr.Groups, rg)
		}
		return fr
	}}
	if len(groups) > 0 {
		sub := *r
		sub.Groups = groups
		a.req = &sub
	}
	return a
}

// authorizeEachGroup checks op on each group a request names: the allowed
// ones, and the refusals by position.
func (s *Server) authorizeEachGroup(ctx context.Context, op string, names []string) (allowed []string, refused []error) {
	refused = make([]error, len(names))
	for i, g := range names {
		if refused[i] = s.authorize(ctx, op, auth.ResGroup, g); refused[i] == nil {
			allowed = append(allowed, g)
		}
	}
	return allowed, refused
}

func (s *Server) authorizeDescribeGroups(ctx context.Context, r *kmsg.DescribeGroupsRequest) groupAuth {
	allowed, refused := s.authorizeEachGroup(ctx, auth.OpDescribe, r.Groups)
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		dr := resp.(*kmsg.DescribeGroupsResponse)
		got := dr.Groups
		dr.Groups = nil
		j := 0
		for i, g := range r.Groups {
			if refused[i] != nil {
				d := kmsg.NewDescribeGroupsResponseGroup()
				d.Group, d.ErrorCode, d.ErrorMessage = g, kerr.GroupAuthorizationFailed.Code, errMessage(refused[i])
				dr.Groups = append(dr.Groups, d)
				continue
			}
			// The handler answers the groups it was given, in order.
			if j < len(got) {
				d := got[j]
				j++
				if r.Version >= 3 && r.IncludeAuthorizedOperations && d.ErrorCode == 0 {
					d.AuthorizedOperations = authorizedOps(ctx, auth.ResGroup, d.Group)
				}
				dr.Groups = append(dr.Groups, d)
			}
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

func (s *Server) authorizeDeleteGroups(ctx context.Context, r *kmsg.DeleteGroupsRequest) groupAuth {
	allowed, refused := s.authorizeEachGroup(ctx, auth.OpDelete, r.Groups)
	if len(allowed) == len(r.Groups) {
		return groupAuth{req: r}
	}
	a := groupAuth{finish: func(resp kmsg.Response) kmsg.Response {
		dr := resp.(*kmsg.DeleteGroupsResponse)
		got := dr.Groups
		dr.Groups = nil
		j := 0
		for i, g := range r.Groups {
			if refused[i] != nil {
				d := kmsg.NewDeleteGroupsResponseGroup()
				d.Group, d.ErrorCode, d.ErrorMessage = g, kerr.GroupAuthorizationFailed.Code, errMessage(refused[i])
				dr.Groups = append(dr.Groups, d)
			} else if j < len(got) {
				dr.Groups = append(dr.Groups, got[j])
				j++
			}
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

func (s *Server) authorizeOffsetDelete(ctx context.Context, r *kmsg.OffsetDeleteRequest) groupAuth {
	reads := s.topicAuth(ctx, auth.OpRead)
	allowed := []kmsg.OffsetDeleteRequestTopic{}
	for _, t := range r.Topics {
		if reads.check(t.Topic) == nil {
			allowed = append(allowed, t)
		}
	}
	if len(allowed) == len(r.Topics) {
		return groupAuth{req: r}
	}
	sub := *r
	sub.Topics = allowed
	// Asked even with no topic left, for the group's own errors.
	return groupAuth{req: &sub, finish: func(resp kmsg.Response) kmsg.Response {
		dr := resp.(*kmsg.OffsetDeleteResponse)
		got := map[string]kmsg.OffsetDeleteResponseTopic{}
		for _, t := range dr.Topics {
			got[t.Topic] = t
		}
		dr.Topics = nil
		for _, t := range r.Topics {
			if reads.check(t.Topic) == nil {
				if rt, ok := got[t.Topic]; ok {
					dr.Topics = append(dr.Topics, rt)
				}
				continue
			}
			rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.TopicAuthorizationFailed.Code})
			}
			dr.Topics = append(dr.Topics, rt)
		}
		return dr
	}}
}
