package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
)

// Authorization: ACLs as Kafka models them. An ACL allows or denies a
// principal (User:NAME, or User:* for everyone) an operation on resources
// of a type whose names match a pattern (literal, or a prefix), from a
// host ("*": any). Deny wins over allow; without an allowing ACL an
// operation is denied, unless the principal is a super user. ACLs are
// entries in the log, so every agent enforces the same ones from the
// commit that made them.
const (
	// TypeACLCreate adds ACLs (payload {"acls": [...]}); adding one that
	// exists changes nothing.
	TypeACLCreate uint16 = 504
	// TypeACLDelete removes the ACLs matching any of the filters
	// (payload {"filters": [...]}); the result is the ACLs removed.
	TypeACLDelete uint16 = 505
)

// Resource types (authz's). Topic, group, cluster and transactional id
// are Kafka's; function and table are twoway's own (not visible over
// Kafka).
const (
	ResTopic           = authz.ResTopic
	ResGroup           = authz.ResGroup
	ResCluster         = authz.ResCluster
	ResTransactionalID = authz.ResTransactionalID
	ResFunction        = authz.ResFunction
	ResTable           = authz.ResTable
)

// ClusterName is the one cluster resource's name, as Kafka's.
const ClusterName = authz.ClusterName

// Pattern types.
const (
	PatternLiteral  = "literal"
	PatternPrefixed = "prefixed"
	// In filters only: any pattern type; "match": the ACLs that would
	// apply to the filter's name (literal equal or *, or a prefix of it).
	PatternAny   = "any"
	PatternMatch = "match"
)

// Operations (Kafka's, authz's).
const (
	OpAll             = authz.OpAll
	OpRead            = authz.OpRead
	OpWrite           = authz.OpWrite
	OpCreate          = authz.OpCreate
	OpDelete          = authz.OpDelete
	OpAlter           = authz.OpAlter
	OpDescribe        = authz.OpDescribe
	OpClusterAction   = authz.OpClusterAction
	OpDescribeConfigs = authz.OpDescribeConfigs
	OpAlterConfigs    = authz.OpAlterConfigs
	OpIdempotentWrite = authz.OpIdempotentWrite
)

// Permissions.
const (
	Allow = "allow"
	Deny  = "deny"
)

var (
	resources  = []string{ResTopic, ResGroup, ResCluster, ResTransactionalID, ResFunction, ResTable}
	operations = []string{OpAll, OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite}
)

// ACL is one access control entry.
type ACL struct {
	Principal  string `json:"principal"`
	Host       string `json:"host"`
	Resource   string `json:"resource"`
	Pattern    string `json:"pattern"`
	Name       string `json:"name"`
	Operation  string `json:"operation"`
	Permission string `json:"permission"`
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s on %s %s %q from %s", a.Permission, a.Principal, a.Operation, a.Pattern, a.Resource, a.Name, a.Host)
}

// ACLFilter selects ACLs: an empty field matches any value; Pattern may
// also be PatternAny or PatternMatch.
type ACLFilter struct {
	Principal  string `json:"principal,omitempty"`
	Host       string `json:"host,omitempty"`
	Resource   string `json:"resource,omitempty"`
	Pattern    string `json:"pattern,omitempty"`
	Name       string `json:"name,omitempty"`
	Operation  string `json:"operation,omitempty"`
	Permission string `json:"permission,omitempty"`
}

// ErrInvalidACL says what is wrong with an ACL or a filter.
var ErrInvalidACL = errors.New("invalid ACL")

// Normalize fills defaults (host *, pattern literal, permission allow) and
// checks the ACL.
func (a *ACL) Normalize() error {
	if a.Host == "" {
		a.Host = "*"
	}
	if a.Pattern == "" {
		a.Pattern = PatternLiteral
	}
	if a.Permission == "" {
		a.Permission = Allow
	}
	a.Resource, a.Operation, a.Pattern, a.Permission = strings.ToLower(a.Resource), strings.ToLower(a.Operation), strings.ToLower(a.Pattern), strings.ToLower(a.Permission)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidACL, fmt.Sprintf(format, args...))
	}
	if err := validateACLPrincipal(a.Principal); err != nil {
		return bad("%v", err)
	}
	if !slices.Contains(resources, a.Resource) {
		return bad("resource type %q: use one of %s", a.Resource, strings.Join(resources, ", "))
	}
	if !slices.Contains(operations, a.Operation) {
		return bad("operation %q: use one of %s", a.Operation, strings.Join(operations, ", "))
	}
	if a.Pattern != PatternLiteral && a.Pattern != PatternPrefixed {
		return bad("pattern type %q: use literal or prefixed", a.Pattern)
	}
	if a.Permission != Allow && a.Permission != Deny {
		return bad("permission %q: use allow or deny", a.Permission)
	}
	if a.Name == "" {
		return bad("no resource name (use * for every %s)", a.Resource)
	}
	if a.Resource == ResCluster && a.Name != ClusterName {
		return bad("the cluster resource is named %s", ClusterName)
	}
	if a.Pattern == PatternPrefixed && a.Name == "*" {
		return bad("a prefixed pattern of * would only match names starting with *: use a literal *")
	}
	return nil
}

func validateACLPrincipal(p string) error {
	if p == "User:*" {
		return nil
	}
	name, ok := strings.CutPrefix(p, "User:")
	if !ok || name == "" {
		return fmt.Errorf("principal %q: use User:NAME or User:*", p)
	}
	return nil
}

func eqOrAny(f, v string) bool { return f == "" || strings.EqualFold(f, v) || f == "any" }

// Matches reports whether the filter selects acl.
func (f ACLFilter) Matches(a ACL) bool {
	if !eqOrAny(f.Principal, a.Principal) || !eqOrAny(f.Host, a.Host) || !eqOrAny(f.Resource, a.Resource) ||
		!eqOrAny(f.Operation, a.Operation) || !eqOrAny(f.Permission, a.Permission) {
		return false
	}
	switch strings.ToLower(f.Pattern) {
	case "", PatternAny:
		return f.Name == "" || f.Name == a.Name
	case PatternMatch:
		return f.Name == "" || nameMatches(a, f.Name)
	default:
		return strings.EqualFold(f.Pattern, a.Pattern) && (f.Name == "" || f.Name == a.Name)
	}
}

// nameMatches reports whether acl's pattern covers resource name.
func nameMatches(a ACL, name string) bool {
	if a.Pattern == PatternPrefixed {
		return strings.HasPrefix(name, a.Name)
	}
	return a.Name == "*" || a.Name == name
}

// implies reports whether an allow of op grants want: all grants
// everything; read, write, delete and alter grant describe;
// alter_configs grants describe_configs (Kafka's rules).
func implies(op, want string) bool {
	switch {
	case op == want, op == OpAll:
		return true
	case want == OpDescribe:
		return op == OpRead || op == OpWrite || op == OpDelete || op == OpAlter
	case want == OpDescribeConfigs:
		return op == OpAlterConfigs
	}
	return false
}

func (s *state) applyACL(e commitlog.Entry) any {
	switch e.Type {
	case TypeACLCreate:
		var p struct {
			ACLs []ACL `json:"acls"`
		}
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return fmt.Errorf("malformed ACL entry: %v", err)
		}
		for i := range p.ACLs {
			if err := p.ACLs[i].Normalize(); err != nil {
				return err
			}
		}
		for _, a := range p.ACLs {
			if !slices.Contains(s.acls, a) {
				s.acls = append(s.acls, a)
			}
		}
		return nil
	case TypeACLDelete:
		var p struct {
			Filters []ACLFilter `json:"filters"`
		}
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return fmt.Errorf("malformed ACL delete entry: %v", err)
		}
		var gone, kept []ACL
		for _, a := range s.acls {
			if slices.ContainsFunc(p.Filters, func(f ACLFilter) bool { return f.Matches(a) }) {
				gone = append(gone, a)
			} else {
				kept = append(kept, a)
			}
		}
		s.acls = kept
		return gone
	}
	return fmt.Errorf("acls: unknown entry type %d", e.Type)
}

// CreateACLs adds ACLs (each normalized and checked first).
func (m *Module) CreateACLs(ctx context.Context, acls []ACL) error {
	for i := range acls {
		if err := acls[i].Normalize(); err != nil {
			return err
		}
	}
	data, _ := json.Marshal(map[string]any{"acls": acls})
	_, err := m.proposeResult(ctx, "type:504", TypeACLCreate, data)
	return err
}

// DeleteACLs removes the ACLs matching any filter and returns them.
func (m *Module) DeleteACLs(ctx context.Context, filters []ACLFilter) ([]ACL, error) {
	data, _ := json.Marshal(map[string]any{"filters": filters})
	res, err := m.proposeResult(ctx, "type:504", TypeACLDelete, data)
	if err != nil {
		return nil, err
	}
	gone, _ := res.([]ACL)
	return gone, nil
}

// ACLs lists the ACLs a filter selects, in the order they were added.
func (m *Module) ACLs(f ACLFilter) []ACL {
	var out []ACL
	m.log.View(m.st, func() {
		for _, a := range m.st.acls {
			if f.Matches(a) {
				out = append(out, a)
			}
		}
	})
	return out
}

// Authorizer is how this agent authorizes: off (everyone may do
// everything, as with no authentication), or by the log's ACLs with super
// users who bypass them.
type Authorizer struct {
	mu      sync.RWMutex
	enabled bool
	supers  map[string]bool

	syncMu sync.Mutex
	synced time.Time
}

// SetAuthorization turns ACL enforcement on or off and names the super
// users (principals such as User:admin).
func (m *Module) SetAuthorization(enabled bool, superUsers []string) {
	m.authz.mu.Lock()
	defer m.authz.mu.Unlock()
	m.authz.enabled = enabled
	m.authz.supers = map[string]bool{}
	for _, p := range superUsers {
		m.authz.supers[p] = true
	}
}

// Enforcing reports whether ACLs are enforced.
func (m *Module) Enforcing() bool {
	if m == nil {
		return false
	}
	m.authz.mu.RLock()
	defer m.authz.mu.RUnlock()
	return m.authz.enabled
}

// Authorize reports whether principal, connecting from host (an IP; "" if
// unknown), may do op on the resource of type res named name.
func (m *Module) Authorize(principal, host, op, res, name string) bool {
	if m == nil {
		return true
	}
	m.authz.mu.RLock()
	enabled, super := m.authz.enabled, m.authz.supers[principal]
	m.authz.mu.RUnlock()
	if !enabled || super {
		return true
	}
	if principal == "" {
		return false // nobody authenticated: not even User:* covers it
	}
	allowed := false
	m.log.View(m.st, func() {
		for _, a := range m.st.acls {
			if a.Resource != res || !(a.Principal == principal || a.Principal == "User:*") ||
				!(a.Host == "*" || a.Host == host) || !nameMatches(a, name) {
				continue
			}
			if a.Permission == Deny && (a.Operation == op || a.Operation == OpAll) {
				allowed = false
				return // deny wins
			}
			if a.Permission == Allow && implies(a.Operation, op) {
				allowed = true
			}
		}
	})
	return allowed
}

// catchUp syncs the log for a refusal, unless one did within 100 ms.
func (m *Module) catchUp() bool {
	m.authz.syncMu.Lock()
	defer m.authz.syncMu.Unlock()
	if time.Since(m.authz.synced) < 100*time.Millisecond || m.log == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := m.log.Sync(ctx)
	m.authz.synced = time.Now()
	return err == nil
}

// ErrDenied is authz.ErrDenied: every refusal wraps it.
var ErrDenied = authz.ErrDenied

// Check is Authorize as an error naming what was denied (authz.Checker).
// A refusal is checked again once this agent has caught up with the
// bucket, so an ACL granted through any agent is honoured here from its
// commit on (at most one catch-up per 100 ms is spent on refusals).
func (m *Module) Check(principal, host, op, res, name string) error {
	if m.Authorize(principal, host, op, res, name) {
		return nil
	}
	if m.catchUp() && m.Authorize(principal, host, op, res, name) {
		return nil
	}
	who := principal
	if who == "" {
		who = "an anonymous client"
	}
	return fmt.Errorf("%w: %s may not %s %s %q", ErrDenied, who, strings.ReplaceAll(op, "_", " "), strings.ReplaceAll(res, "_", " "), name)
}
