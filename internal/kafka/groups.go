package kafka

import (
	"context"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/groups"
)

// GroupHandler serves the consumer-group APIs: FindCoordinator, JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups,
// DescribeGroups, DeleteGroups, OffsetDelete, ConsumerGroupHeartbeat and
// ConsumerGroupDescribe.
//
// The contract:
//   - req is one of those requests (*kmsg.JoinGroupRequest, ...), decoded at
//     the version the client sent (req.GetVersion()), at most the version
//     advertised for the API (groups.MaxVersions). Handle must not keep req
//     after returning.
//   - Handle returns the matching response (req.ResponseKind()'s type). The
//     server sets its version to the request's before encoding it, so
//     version-dependent fields are the handler's to fill correctly.
//   - Handle is called concurrently, from many connections and from
//     pipelined requests on one connection.
//   - ctx ends when the client's connection closes or the server stops; a
//     blocking call (JoinGroup waiting for a rebalance) must return then.
//     It carries the client's id and host (groups.WithClient).
//   - A non-nil error, or a response of the wrong type, is logged and the
//     client gets COORDINATOR_NOT_AVAILABLE (retriable) in every error
//     field of the response.
//   - FindCoordinator: the handler names the coordinator node. The agent
//     serving the request is Server.NodeID() at Server.Advertised(); any
//     live agent (see Metadata) can be named.
type GroupHandler interface {
	Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, error)
}

// serveGroup authorizes a group request (see groupauth.go), hands what is
// allowed of it to the group handler, and completes the answer with what
// was refused.
func (s *Server) serveGroup(ctx context.Context, c *conn, h header, req kmsg.Request) kmsg.Response {
	if s.cfg.Groups == nil {
		return groupError(req, kerr.CoordinatorNotAvailable.Code, "consumer groups are not enabled on this agent")
	}
	a := s.authorizeGroup(ctx, req)
	if a.answer != nil {
		a.answer.SetVersion(req.GetVersion())
		return a.answer
	}
	var resp kmsg.Response
	if a.ctx != nil {
		ctx = a.ctx
	}
	if a.req != nil {
		resp = s.handleGroup(ctx, c, h, a.req)
	} else {
		resp = req.ResponseKind()
	}
	if a.finish != nil {
		resp = a.finish(resp)
	}
	resp.SetVersion(req.GetVersion())
	return resp
}

func (s *Server) handleGroup(ctx context.Context, c *conn, h header, req kmsg.Request) kmsg.Response {
	resp, err := s.cfg.Groups.Handle(groups.WithClient(ctx, h.clientID, c.host), req)
	want := req.ResponseKind()
	if err == nil && (resp == nil || reflect.TypeOf(resp) != reflect.TypeOf(want)) {
		err = fmt.Errorf("group handler returned %T for %T", resp, req)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("kafka group request failed", "api", kmsg.NameForKey(req.Key()), "err", err)
		}
		return groupError(req, kerr.CoordinatorNotAvailable.Code, err.Error())
	}
	resp.SetVersion(req.GetVersion())
	return resp
}

// groupError builds the response to a group request with code in every
// error field, so the client sees one consistent error whatever it reads.
func groupError(req kmsg.Request, code int16, msg string) kmsg.Response {
	m := &msg
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID = code, m, -1
		keys := r.CoordinatorKeys
		if r.Version < 4 {
			keys = nil
		}
		for _, k := range keys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key, c.NodeID, c.ErrorCode, c.ErrorMessage = k, -1, code, m
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	case *kmsg.JoinGroupRequest:
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, r.MemberID
		return resp
	case *kmsg.SyncGroupRequest:
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.HeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.LeaveGroupRequest:
		resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.ListGroupsRequest:
		resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.DescribeGroupsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode, rg.ErrorMessage = g, code, m
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.DeleteGroupsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode, rg.ErrorMessage = g, code, m
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.OffsetDeleteRequest:
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode, resp.ErrorMessage = code, m
		return resp
	case *kmsg.ConsumerGroupDescribeRequest:
		resp := r.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group, rg.ErrorCode, rg.ErrorMessage = g, code, m
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	// Not a group request: the dispatcher never sends one here.
	return nil
}
