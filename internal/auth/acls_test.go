package auth

import (
	"context"
	"errors"
	"testing"
)

// TestAuthorize: Kafka's rules. Deny wins, allows imply describe, all is
// everything, prefixed and * patterns, User:* and hosts, super users; and
// with enforcement off everything is allowed.
func TestAuthorize(t *testing.T) {
	m := openUsers(t)
	ctx := context.Background()
	acls := []ACL{
		{Principal: "User:alice", Resource: ResTopic, Name: "orders", Operation: OpWrite},
		{Principal: "User:alice", Resource: ResTopic, Name: "logs-", Pattern: PatternPrefixed, Operation: OpRead},
		{Principal: "User:alice", Resource: ResTopic, Name: "logs-secret", Operation: OpAll, Permission: Deny},
		{Principal: "User:*", Resource: ResTopic, Name: "public", Operation: OpRead},
		{Principal: "User:bob", Resource: ResGroup, Name: "*", Operation: OpAll},
		{Principal: "User:bob", Host: "10.0.0.1", Resource: ResTopic, Name: "orders", Operation: OpRead},
		{Principal: "User:carol", Resource: ResTopic, Name: "orders", Operation: OpAlterConfigs},
	}
	if err := m.CreateACLs(ctx, acls); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateACLs(ctx, acls[:1]); err != nil { // again: no duplicate
		t.Fatal(err)
	}
	if n := len(m.ACLs(ACLFilter{})); n != len(acls) {
		t.Fatalf("%d ACLs, want %d", n, len(acls))
	}
	// Off: everything goes.
	if !m.Authorize("User:nobody", "", OpDelete, ResCluster, ClusterName) {
		t.Fatal("refused with enforcement off")
	}
	m.SetAuthorization(true, []string{"User:root"})
	for _, c := range []struct {
		p, host, op, res, name string
		want                   bool
	}{
		{"User:alice", "", OpWrite, ResTopic, "orders", true},
		{"User:alice", "", OpDescribe, ResTopic, "orders", true}, // write implies describe
		{"User:alice", "", OpRead, ResTopic, "orders", false},
		{"User:alice", "", OpWrite, ResTopic, "orders2", false}, // literal
		{"User:alice", "", OpRead, ResTopic, "logs-app", true},  // prefixed
		{"User:alice", "", OpRead, ResTopic, "logs-secret", false},
		{"User:alice", "", OpDescribe, ResTopic, "logs-secret", false}, // deny all wins
		{"User:dave", "", OpRead, ResTopic, "public", true},            // User:*
		{"User:dave", "", OpWrite, ResTopic, "public", false},
		{"User:bob", "", OpRead, ResGroup, "any-group", true},
		{"User:bob", "", OpDelete, ResGroup, "g", true},
		{"User:bob", "10.0.0.1", OpRead, ResTopic, "orders", true},
		{"User:bob", "10.0.0.2", OpRead, ResTopic, "orders", false}, // host
		{"User:carol", "", OpDescribeConfigs, ResTopic, "orders", true},
		{"User:carol", "", OpDescribe, ResTopic, "orders", false},
		{"User:root", "", OpDelete, ResCluster, ClusterName, true}, // super user
		{"", "", OpRead, ResTopic, "public", false},                // anonymous
	} {
		if got := m.Authorize(c.p, c.host, c.op, c.res, c.name); got != c.want {
			t.Errorf("%s from %q %s %s %s: %v, want %v", c.p, c.host, c.op, c.res, c.name, got, c.want)
		}
	}
	if err := m.Check("User:alice", "", OpRead, ResTopic, "orders"); !errors.Is(err, ErrDenied) || err.Error() != `not authorized: User:alice may not read topic "orders"` {
		t.Fatalf("Check: %v", err)
	}
	// Bad ACLs are refused with the reason.
	for _, bad := range []ACL{
		{Principal: "alice", Resource: ResTopic, Name: "x", Operation: OpRead},
		{Principal: "User:alice", Resource: "queue", Name: "x", Operation: OpRead},
		{Principal: "User:alice", Resource: ResTopic, Name: "x", Operation: "fly"},
		{Principal: "User:alice", Resource: ResTopic, Name: "", Operation: OpRead},
		{Principal: "User:alice", Resource: ResCluster, Name: "c", Operation: OpRead},
	} {
		if err := m.CreateACLs(ctx, []ACL{bad}); !errors.Is(err, ErrInvalidACL) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	// Delete by filter returns what went; match finds what applies.
	if got := m.ACLs(ACLFilter{Resource: ResTopic, Pattern: PatternMatch, Name: "logs-app"}); len(got) != 1 || got[0].Name != "logs-" {
		t.Fatalf("match filter: %v", got)
	}
	gone, err := m.DeleteACLs(ctx, []ACLFilter{{Principal: "User:alice"}})
	if err != nil || len(gone) != 3 {
		t.Fatalf("deleted %v, %v", gone, err)
	}
	if m.Authorize("User:alice", "", OpWrite, ResTopic, "orders") {
		t.Fatal("alice still writes after her ACLs were deleted")
	}
}
