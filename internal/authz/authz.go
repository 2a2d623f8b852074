// Package authz carries who a request is from, and the authorizer that
// decides what it may do, through a context: the front doors (the HTTP
// server, the Kafka listener) put them there once a client has
// authenticated, and every operation on a resource asks Check. It has no
// dependencies, so any module can ask without knowing how principals
// authenticate or where ACLs live (internal/auth).
package authz

import (
	"context"
	"errors"
)

// ErrDenied is wrapped by every refusal: the principal may not do the
// operation on the resource. Front doors answer it as Kafka's
// *_AUTHORIZATION_FAILED codes or HTTP 403.
var ErrDenied = errors.New("not authorized")

// Checker decides. Check returns nil when principal (from host, an IP or
// "") may do op (Kafka's operation names: read, write, create, delete,
// alter, describe, describe_configs, alter_configs, cluster_action,
// idempotent_write) on the resource of type res (topic, group, cluster,
// transactional_id, function, table) named name, and an error wrapping
// ErrDenied that says what was refused otherwise.
type Checker interface {
	Check(principal, host, op, res, name string) error
}

type key struct{}

type who struct {
	principal, host string
	c               Checker
}

// With returns ctx carrying principal, host and the checker that decides
// for them. A context without one allows everything: authorization is off
// (an agent without --auth, a command working straight on the bucket).
func With(ctx context.Context, principal, host string, c Checker) context.Context {
	return context.WithValue(ctx, key{}, who{principal, host, c})
}

// Principal is the context's principal ("" when none).
func Principal(ctx context.Context) string {
	w, _ := ctx.Value(key{}).(who)
	return w.principal
}

// Check asks the context's checker; without one it allows.
func Check(ctx context.Context, op, res, name string) error {
	w, ok := ctx.Value(key{}).(who)
	if !ok || w.c == nil {
		return nil
	}
	return w.c.Check(w.principal, w.host, op, res, name)
}

// Allowed is Check as a bool, for filtering what a principal may see.
func Allowed(ctx context.Context, op, res, name string) bool { return Check(ctx, op, res, name) == nil }

// Resource types: Kafka's, and twoway's function and table.
const (
	ResTopic           = "topic"
	ResGroup           = "group"
	ResCluster         = "cluster"
	ResTransactionalID = "transactional_id"
	ResFunction        = "function"
	ResTable           = "table"
)

// ClusterName is the one cluster resource's name, as Kafka's.
const ClusterName = "kafka-cluster"

// Operations (Kafka's).
const (
	OpAll             = "all"
	OpRead            = "read"
	OpWrite           = "write"
	OpCreate          = "create"
	OpDelete          = "delete"
	OpAlter           = "alter"
	OpDescribe        = "describe"
	OpClusterAction   = "cluster_action"
	OpDescribeConfigs = "describe_configs"
	OpAlterConfigs    = "alter_configs"
	OpIdempotentWrite = "idempotent_write"
)

// CheckCreate is Kafka's rule for creating a resource: CREATE on the
// cluster, or on the resource itself.
func CheckCreate(ctx context.Context, res, name string) error {
	if Allowed(ctx, OpCreate, ResCluster, ClusterName) {
		return nil
	}
	return Check(ctx, OpCreate, res, name)
}
