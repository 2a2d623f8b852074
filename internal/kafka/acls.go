package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
)

// CreateAcls, DescribeAcls and DeleteAcls manage the ACLs of the log
// (internal/auth), Kafka's wire enums mapped onto auth's names. Only
// Kafka's resource types are visible: ACLs on twoway's functions and
// tables are neither listed nor deleted through Kafka.

var aclResources = map[kmsg.ACLResourceType]string{
	kmsg.ACLResourceTypeTopic:           auth.ResTopic,
	kmsg.ACLResourceTypeGroup:           auth.ResGroup,
	kmsg.ACLResourceTypeCluster:         auth.ResCluster,
	kmsg.ACLResourceTypeTransactionalId: auth.ResTransactionalID,
}

var aclPatterns = map[kmsg.ACLResourcePatternType]string{
	kmsg.ACLResourcePatternTypeLiteral:  auth.PatternLiteral,
	kmsg.ACLResourcePatternTypePrefixed: auth.PatternPrefixed,
	kmsg.ACLResourcePatternTypeAny:      auth.PatternAny,
	kmsg.ACLResourcePatternTypeMatch:    auth.PatternMatch,
}

var aclPermissions = map[kmsg.ACLPermissionType]string{
	kmsg.ACLPermissionTypeAllow: auth.Allow,
	kmsg.ACLPermissionTypeDeny:  auth.Deny,
}

// kafkaResources are the resource types Kafka sees.
var kafkaResources = []string{auth.ResTopic, auth.ResGroup, auth.ResCluster, auth.ResTransactionalID}

func reverse[K comparable](m map[K]string, v string) K {
	for k, s := range m {
		if s == v {
			return k
		}
	}
	var zero K
	return zero
}

var errSecurityDisabled = errors.New("this agent has no users and no ACLs (serve with --auth, or create users)")

// aclBinding is one creation or filter as decoded from the wire.
type aclBinding struct {
	res     kmsg.ACLResourceType
	name    *string
	pattern kmsg.ACLResourcePatternType
	princ   *string
	host    *string
	op      kmsg.ACLOperation
	perm    kmsg.ACLPermissionType
}

// toACL maps a creation onto an ACL, or says what is wrong with it.
func (b aclBinding) toACL() (auth.ACL, error) {
	res, ok := aclResources[b.res]
	if !ok {
		return auth.ACL{}, fmt.Errorf("resource type %s: ACLs can be created on TOPIC, GROUP, CLUSTER and TRANSACTIONAL_ID", b.res)
	}
	pattern, ok := aclPatterns[b.pattern]
	if !ok || (pattern != auth.PatternLiteral && pattern != auth.PatternPrefixed) {
		return auth.ACL{}, fmt.Errorf("pattern type %s: an ACL's pattern is LITERAL or PREFIXED", b.pattern)
	}
	op, ok := opCodeNames[b.op]
	if !ok {
		return auth.ACL{}, fmt.Errorf("operation %s cannot be granted or denied", b.op)
	}
	perm, ok := aclPermissions[b.perm]
	if !ok {
		return auth.ACL{}, fmt.Errorf("permission type %s: an ACL ALLOWs or DENYs", b.perm)
	}
	a := auth.ACL{Resource: res, Pattern: pattern, Operation: op, Permission: perm}
	a.Name, a.Principal, a.Host = deref(b.name), deref(b.princ), deref(b.host)
	if err := a.Normalize(); err != nil {
		return auth.ACL{}, err
	}
	return a, nil
}

// toFilters maps a filter onto auth filters, one per Kafka resource type
// it selects (none for types twoway has no ACLs on, such as USER), or says
// what is wrong with it.
func (b aclBinding) toFilters() ([]auth.ACLFilter, error) {
	f := auth.ACLFilter{Name: deref(b.name), Principal: deref(b.princ), Host: deref(b.host)}
	var ok bool
	if f.Pattern, ok = aclPatterns[b.pattern]; !ok {
		return nil, fmt.Errorf("pattern type %s: filter on ANY, MATCH, LITERAL or PREFIXED", b.pattern)
	}
	switch b.op {
	case kmsg.ACLOperationAny:
	default:
		if f.Operation, ok = opCodeNames[b.op]; !ok {
			return nil, fmt.Errorf("operation %s: filter on ANY or an operation", b.op)
		}
	}
	switch b.perm {
	case kmsg.ACLPermissionTypeAny:
	default:
		if f.Permission, ok = aclPermissions[b.perm]; !ok {
			return nil, fmt.Errorf("permission type %s: filter on ANY, ALLOW or DENY", b.perm)
		}
	}
	var types []string
	switch b.res {
	case kmsg.ACLResourceTypeAny:
		types = kafkaResources
	case kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
		return nil, nil
	default:
		res, ok := aclResources[b.res]
		if !ok {
			return nil, fmt.Errorf("resource type %s: filter on ANY or a resource type", b.res)
		}
		types = []string{res}
	}
	out := make([]auth.ACLFilter, len(types))
	for i, t := range types {
		out[i] = f
		out[i].Resource = t
	}
	return out, nil
}

// opCodeNames maps Kafka's operations onto auth's.
var opCodeNames = func() map[kmsg.ACLOperation]string {
	m := map[kmsg.ACLOperation]string{}
	for name, code := range opCodes {
		m[code] = name
	}
	return m
}()

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func matchesAny(fs []auth.ACLFilter, a auth.ACL) bool {
	return slices.ContainsFunc(fs, func(f auth.ACLFilter) bool { return f.Matches(a) })
}

func (s *Server) createACLs(ctx context.Context, req *kmsg.CreateACLsRequest) *kmsg.CreateACLsResponse {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	fail := func(i int, code int16, err error) {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, errMessage(err)
	}
	if s.cfg.Auth == nil {
		for i := range resp.Results {
			fail(i, kerr.SecurityDisabled.Code, errSecurityDisabled)
		}
		return resp
	}
	if err := s.authorize(ctx, auth.OpAlter, auth.ResCluster, auth.ClusterName); err != nil {
		for i := range resp.Results {
			fail(i, kerr.ClusterAuthorizationFailed.Code, err)
		}
		return resp
	}
	var acls []auth.ACL
	var valid []int
	for i, c := range req.Creations {
		a, err := aclBinding{c.ResourceType, &c.ResourceName, c.ResourcePatternType, &c.Principal, &c.Host, c.Operation, c.PermissionType}.toACL()
		if err != nil {
			fail(i, kerr.InvalidRequest.Code, err)
			continue
		}
		acls = append(acls, a)
		valid = append(valid, i)
	}
	if len(acls) == 0 {
		return resp
	}
	ctx, cancel := withTimeout(ctx, 0)
	defer cancel()
	if err := s.cfg.Auth.CreateACLs(ctx, acls); err != nil {
		code := errorCode(err)
		if errors.Is(err, auth.ErrInvalidACL) {
			code = kerr.InvalidRequest.Code
		}
		s.log.Warn("kafka CreateAcls failed", "err", err)
		for _, i := range valid {
			fail(i, code, err)
		}
		return resp
	}
	for _, a := range acls {
		s.log.Info("ACL created", "acl", a.String())
	}
	return resp
}

func (s *Server) describeACLs(ctx context.Context, req *kmsg.DescribeACLsRequest) *kmsg.DescribeACLsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if s.cfg.Auth == nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, errMessage(errSecurityDisabled)
		return resp
	}
	if err := s.authorize(ctx, auth.OpDescribe, auth.ResCluster, auth.ClusterName); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, errMessage(err)
		return resp
	}
	filters, err := aclBinding{req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType}.toFilters()
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		return resp
	}
	// ACLs created through another agent count at once.
	if err := s.cfg.Auth.Sync(ctx); err != nil {
		s.log.Warn("kafka DescribeAcls: cannot catch up with the log; answering from what this agent knows", "err", err)
	}
	type key struct {
		res     kmsg.ACLResourceType
		name    string
		pattern kmsg.ACLResourcePatternType
	}
	index := map[key]int{}
	for _, f := range filters {
		for _, a := range s.cfg.Auth.ACLs(f) {
			k := key{reverse(aclResources, a.Resource), a.Name, reverse(aclPatterns, a.Pattern)}
			i, ok := index[k]
			if !ok {
				r := kmsg.NewDescribeACLsResponseResource()
				r.ResourceType, r.ResourceName, r.ResourcePatternType = k.res, k.name, k.pattern
				resp.Resources = append(resp.Resources, r)
				i = len(resp.Resources) - 1
				index[k] = i
			}
			d := kmsg.NewDescribeACLsResponseResourceACL()
			d.Principal, d.Host = a.Principal, a.Host
			d.Operation, d.PermissionType = opCodes[a.Operation], reverse(aclPermissions, a.Permission)
			resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, d)
		}
	}
	return resp
}

func (s *Server) deleteACLs(ctx context.Context, req *kmsg.DeleteACLsRequest) *kmsg.DeleteACLsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	for i := range resp.Results {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
	}
	fail := func(i int, code int16, err error) {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, errMessage(err)
	}
	if s.cfg.Auth == nil {
		for i := range resp.Results {
			fail(i, kerr.SecurityDisabled.Code, errSecurityDisabled)
		}
		return resp
	}
	if err := s.authorize(ctx, auth.OpAlter, auth.ResCluster, auth.ClusterName); err != nil {
		for i := range resp.Results {
			fail(i, kerr.ClusterAuthorizationFailed.Code, err)
		}
		return resp
	}
	perFilter := make([][]auth.ACLFilter, len(req.Filters))
	var all []auth.ACLFilter
	var valid []int
	for i, f := range req.Filters {
		fs, err := aclBinding{f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType}.toFilters()
		if err != nil {
			fail(i, kerr.InvalidRequest.Code, err)
			continue
		}
		perFilter[i] = fs
		all = append(all, fs...)
		valid = append(valid, i)
	}
	if len(all) == 0 {
		return resp
	}
	ctx, cancel := withTimeout(ctx, 0)
	defer cancel()
	gone, err := s.cfg.Auth.DeleteACLs(ctx, all)
	if err != nil {
		s.log.Warn("kafka DeleteAcls failed", "err", err)
		for _, i := range valid {
			fail(i, errorCode(err), err)
		}
		return resp
	}
	for _, a := range gone {
		s.log.Info("ACL deleted", "acl", a.String())
	}
	for _, i := range valid {
		for _, a := range gone {
			if !matchesAny(perFilter[i], a) {
				continue
			}
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = reverse(aclResources, a.Resource), a.Name, reverse(aclPatterns, a.Pattern)
			m.Principal, m.Host = a.Principal, a.Host
			m.Operation, m.PermissionType = opCodes[a.Operation], reverse(aclPermissions, a.Permission)
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
		}
	}
	return resp
}
