package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
)

// Authorization follows Kafka's broker: each API asks for an operation on
// the resources it touches (see docs/KAFKA.md), and a refusal is answered
// with the *_AUTHORIZATION_FAILED code of the resource's type, for that
// resource only where the response has room for it. The principal and
// checker travel in each request's context (authz); without a checker,
// or with one that does not enforce, everything is allowed.

type requestKey struct{}

// requestInfo is what a request's context knows about where it came from.
type requestInfo struct {
	c   *conn
	api string
}

// requestContext is the context a request is served with: the
// connection's, with the API's name and, when the server has users, the
// principal as it is now (SASL may change it), the client's IP and the
// checker. It is built on the reader goroutine, which owns the principal.
func (c *conn) requestContext(h header) context.Context {
	ctx := context.WithValue(c.ctx, requestKey{}, &requestInfo{c: c, api: kmsg.NameForKey(h.key)})
	if c.s.cfg.Auth != nil {
		ctx = authz.With(ctx, c.principal, c.host, c.s.cfg.Auth)
	}
	return ctx
}

// authorize asks whether the request's principal may do op on the
// resource, and logs a refusal (once per connection, API and resource).
// The error wraps authz.ErrDenied and names what was refused; it is fit to
// send to the client.
func (s *Server) authorize(ctx context.Context, op, res, name string) error {
	err := authz.Check(ctx, op, res, name)
	if err != nil {
		s.refused(ctx, op, res, name)
	}
	return err
}

// maxRefusalsLogged bounds the distinct refusals a connection remembers
// having logged; beyond it, refusals are logged every time.
const maxRefusalsLogged = 1024

func (s *Server) refused(ctx context.Context, op, res, name string) {
	log, api, host := s.log, "", ""
	if ri, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		c := ri.c
		log, api, host = c.log, ri.api, c.host
		key := api + "\x00" + op + "\x00" + res + "\x00" + name
		c.refusalsMu.Lock()
		seen := c.refusals[key]
		if !seen {
			if c.refusals == nil {
				c.refusals = map[string]bool{}
			}
			if len(c.refusals) < maxRefusalsLogged {
				c.refusals[key] = true
			}
		}
		c.refusalsMu.Unlock()
		if seen {
			return
		}
	}
	principal := authz.Principal(ctx)
	if principal == "" {
		principal = "(anonymous)"
	}
	log.Info("kafka request not authorized", "api", api, "principal", principal, "host", host,
		"operation", op, "resource", res, "name", name)
}

// deniedCode is the Kafka error code for a refusal on a resource type.
func deniedCode(res string) int16 {
	switch res {
	case auth.ResTopic:
		return kerr.TopicAuthorizationFailed.Code
	case auth.ResGroup:
		return kerr.GroupAuthorizationFailed.Code
	case auth.ResTransactionalID:
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	return kerr.ClusterAuthorizationFailed.Code
}

// topicAuth remembers the answers for the topics of one request, so that a
// topic named in several places is checked (and a refusal logged) once.
type topicAuth struct {
	s    *Server
	ctx  context.Context
	op   string
	errs map[string]error
}

func (s *Server) topicAuth(ctx context.Context, op string) *topicAuth {
	return &topicAuth{s: s, ctx: ctx, op: op, errs: map[string]error{}}
}

// check returns nil when the topic is allowed, else the refusal.
func (t *topicAuth) check(topic string) error {
	err, ok := t.errs[topic]
	if !ok {
		err = t.s.authorize(t.ctx, t.op, auth.ResTopic, topic)
		t.errs[topic] = err
	}
	return err
}

// Kafka's operation codes, as the authorized-operations bit fields of
// Metadata, DescribeCluster and DescribeGroups count them.
var opCodes = map[string]kmsg.ACLOperation{
	auth.OpAll:             kmsg.ACLOperationAll,
	auth.OpRead:            kmsg.ACLOperationRead,
	auth.OpWrite:           kmsg.ACLOperationWrite,
	auth.OpCreate:          kmsg.ACLOperationCreate,
	auth.OpDelete:          kmsg.ACLOperationDelete,
	auth.OpAlter:           kmsg.ACLOperationAlter,
	auth.OpDescribe:        kmsg.ACLOperationDescribe,
	auth.OpClusterAction:   kmsg.ACLOperationClusterAction,
	auth.OpDescribeConfigs: kmsg.ACLOperationDescribeConfigs,
	auth.OpAlterConfigs:    kmsg.ACLOperationAlterConfigs,
	auth.OpIdempotentWrite: kmsg.ACLOperationIdempotentWrite,
}

// supportedOps are the operations that apply to each resource type, as
// Kafka lists them.
var supportedOps = map[string][]string{
	auth.ResTopic:   {auth.OpRead, auth.OpWrite, auth.OpCreate, auth.OpDelete, auth.OpAlter, auth.OpDescribe, auth.OpDescribeConfigs, auth.OpAlterConfigs},
	auth.ResGroup:   {auth.OpRead, auth.OpDescribe, auth.OpDelete},
	auth.ResCluster: {auth.OpCreate, auth.OpClusterAction, auth.OpDescribeConfigs, auth.OpAlterConfigs, auth.OpIdempotentWrite, auth.OpAlter, auth.OpDescribe},
}

// authorizedOps is the bit field of the operations the principal may do on
// a resource (bit n for Kafka's operation code n), as Kafka reports it.
func authorizedOps(ctx context.Context, res, name string) int32 {
	var bits int32
	for _, op := range supportedOps[res] {
		if authz.Allowed(ctx, op, res, name) {
			bits |= 1 << opCodes[op]
		}
	}
	return bits
}

// clusterOps is what Metadata (v8 to v10) and DescribeCluster report when
// asked for the cluster's authorized operations: none without DESCRIBE on
// the cluster, as Kafka does.
func clusterOps(ctx context.Context) int32 {
	if !authz.Allowed(ctx, auth.OpDescribe, auth.ResCluster, auth.ClusterName) {
		return 0
	}
	return authorizedOps(ctx, auth.ResCluster, auth.ClusterName)
}

// mayCreateTopic reports whether the principal may create the topic:
// CREATE on the cluster, or on the topic.
func (s *Server) mayCreateTopic(ctx context.Context, topic string) error {
	if authz.Allowed(ctx, auth.OpCreate, auth.ResCluster, auth.ClusterName) {
		return nil
	}
	return s.authorize(ctx, auth.OpCreate, auth.ResTopic, topic)
}

// mayProduceIdempotently is InitProducerId's rule for a producer without a
// transactional id (Kafka 3.x, KIP-679): IDEMPOTENT_WRITE on the cluster,
// or WRITE on any topic.
func (s *Server) mayProduceIdempotently(ctx context.Context) error {
	if authz.Allowed(ctx, auth.OpIdempotentWrite, auth.ResCluster, auth.ClusterName) || s.writesSomeTopic(ctx) {
		return nil
	}
	return s.authorize(ctx, auth.OpIdempotentWrite, auth.ResCluster, auth.ClusterName)
}

// writesSomeTopic is Kafka's authorizeByResourceType for WRITE on topics:
// whether some allow ACL for the principal grants WRITE on a topic name
// that no deny ACL covers. (Super users and an agent that does not enforce
// are allowed IDEMPOTENT_WRITE already.)
func (s *Server) writesSomeTopic(ctx context.Context) bool {
	ri, ok := ctx.Value(requestKey{}).(*requestInfo)
	if s.cfg.Auth == nil || !ok {
		return false
	}
	principal, host := authz.Principal(ctx), ri.c.host
	if principal == "" {
		return false // nobody authenticated: not even User:* covers it
	}
	var allowLiteral, allowPrefix []string
	wildcard := false
	denyLiteral, denyPrefix := map[string]bool{}, map[string]bool{}
	for _, a := range s.cfg.Auth.ACLs(auth.ACLFilter{Resource: auth.ResTopic}) {
		if (a.Principal != principal && a.Principal != "User:*") || (a.Host != "*" && a.Host != host) ||
			(a.Operation != auth.OpWrite && a.Operation != auth.OpAll) {
			continue
		}
		switch {
		case a.Permission == auth.Deny && a.Pattern == auth.PatternLiteral:
			if a.Name == "*" {
				return false
			}
			denyLiteral[a.Name] = true
		case a.Permission == auth.Deny:
			denyPrefix[a.Name] = true
		case a.Pattern == auth.PatternLiteral && a.Name == "*":
			wildcard = true
		case a.Pattern == auth.PatternLiteral:
			allowLiteral = append(allowLiteral, a.Name)
		default:
			allowPrefix = append(allowPrefix, a.Name)
		}
	}
	if wildcard {
		return true
	}
	dominated := func(name string) bool {
		for i := 1; i <= len(name); i++ {
			if denyPrefix[name[:i]] {
				return true
			}
		}
		return false
	}
	for _, name := range allowLiteral {
		if !denyLiteral[name] && !dominated(name) {
			return true
		}
	}
	for _, prefix := range allowPrefix {
		if !dominated(prefix) {
			return true
		}
	}
	return false
}
