package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/twoway/twoway/internal/auth"
)

var aclCommands = []command{
	{name: "add", summary: "allow (or --deny) a principal an operation on resources", run: runACLAdd},
	{name: "list", summary: "list the ACLs, optionally filtered", run: runACLList},
	{name: "delete", summary: "delete the ACLs matching a filter", run: runACLDelete},
}

func runACL(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "acl", `Manage the ACLs an agent started with --auth enforces on every front door
(docs/SECURITY.md): who may read, write, create, delete, alter or describe
topics, groups, the cluster, transactional ids, functions and tables. Deny
wins over allow; without an allowing ACL an operation is refused, unless
the principal is a super user (serve --super-user). The same ACLs are
managed by Kafka tools (kafka-acls, franz-go kadm) through the Kafka
listener.
`+connectHelp, aclCommands)
}

// aclFlags are the flags naming a resource, shared by add, list and delete.
type aclFlags struct {
	principal, host, operation         *string
	topic, group, txn, function, table *string
	cluster, prefixed, deny            *bool
}

func addACLFlags(fs *flagSet, filter bool) *aclFlags {
	note := ""
	if filter {
		note = " (filter: any when not given)"
	}
	return &aclFlags{
		principal: fs.String("principal", "", "the `principal`, User:NAME, or User:* for everyone"+note),
		host:      fs.String("host", "", "the client `host` (an IP) the ACL applies to (default *: any)"),
		operation: fs.String("operation", "", "the `operation`: all, read, write, create, delete, alter, describe,\ndescribe_configs, alter_configs, cluster_action, idempotent_write"+note),
		topic:     fs.String("topic", "", "a topic `name` (* for every topic)"),
		group:     fs.String("group", "", "a consumer group `name`"),
		txn:       fs.String("transactional-id", "", "a transactional `id`"),
		function:  fs.String("function", "", "a function `name`"),
		table:     fs.String("table", "", "a table `name`"),
		cluster:   fs.Bool("cluster", false, "the cluster (users, ACLs, creating topics, configs)"),
		prefixed:  fs.Bool("prefixed", false, "the name is a prefix: every resource whose name starts with it"),
		deny:      fs.Bool("deny", false, "deny instead of allow"),
	}
}

// resource returns the one resource the flags name.
func (f *aclFlags) resource(need bool) (res, name string, err error) {
	n := 0
	for _, c := range []struct {
		res, name string
	}{{auth.ResTopic, *f.topic}, {auth.ResGroup, *f.group}, {auth.ResTransactionalID, *f.txn}, {auth.ResFunction, *f.function}, {auth.ResTable, *f.table}} {
		if c.name != "" {
			res, name = c.res, c.name
			n++
		}
	}
	if *f.cluster {
		res, name = auth.ResCluster, auth.ClusterName
		n++
	}
	if n > 1 {
		return "", "", errors.New("name one resource: --topic, --group, --transactional-id, --function, --table or --cluster")
	}
	if n == 0 && need {
		return "", "", errors.New("name a resource: --topic, --group, --transactional-id, --function, --table or --cluster")
	}
	return res, name, nil
}

func (f *aclFlags) pattern() string {
	if *f.prefixed {
		return auth.PatternPrefixed
	}
	return auth.PatternLiteral
}

func (f *aclFlags) permission() string {
	if *f.deny {
		return auth.Deny
	}
	return auth.Allow
}

func runACLAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("acl add", "twoway acl add --principal User:NAME --operation OP (--topic NAME | --group NAME | --cluster | --transactional-id ID | --function NAME | --table NAME) [--prefixed] [--deny] [--host IP]", `
Allow (or with --deny, deny) a principal an operation on a resource, or on
every resource whose name starts with a prefix. For example:

  twoway acl add --principal User:alice --topic orders --operation write
  twoway acl add --principal User:bob --topic orders --operation read
  twoway acl add --principal User:bob --group billing --operation read
  twoway acl add --principal User:ci --topic test- --prefixed --operation all

read, write, delete and alter imply describe; all is every operation.
Creating a topic needs create on the cluster or on the topic.
`+connectHelp)
	f := addACLFlags(fs, false)
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	res, name, err := f.resource(true)
	if err != nil {
		return conn.usageError(e, err)
	}
	if *f.principal == "" || *f.operation == "" {
		return conn.usageError(e, errors.New("--principal and --operation are required"))
	}
	a := auth.ACL{Principal: *f.principal, Host: *f.host, Resource: res, Name: name, Pattern: f.pattern(), Operation: *f.operation, Permission: f.permission()}
	if err := a.Normalize(); err != nil {
		return conn.usageError(e, err)
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		if err := apiCall(ctx, hc, http.MethodPost, base+"/v1/acls", map[string]any{"acls": []auth.ACL{a}}, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "added: %s\n", a)
		return err
	})
}

func (f *aclFlags) filter() (auth.ACLFilter, error) {
	res, name, err := f.resource(false)
	if err != nil {
		return auth.ACLFilter{}, err
	}
	flt := auth.ACLFilter{Principal: *f.principal, Host: *f.host, Resource: res, Name: name, Operation: *f.operation}
	if *f.prefixed {
		flt.Pattern = auth.PatternPrefixed
	}
	if *f.deny {
		flt.Permission = auth.Deny
	}
	return flt, nil
}

func printACLs(e *env, acls []auth.ACL) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tPATTERN\tNAME\tHOST")
	for _, a := range acls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Permission, a.Operation, a.Resource, a.Pattern, a.Name, a.Host)
	}
	return tw.Flush()
}

func runACLList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("acl list", "twoway acl list [--principal P] [--topic NAME | ...] [--operation OP] [--json]", `
List the ACLs, all of them or those matching the flags given.
`+connectHelp)
	f := addACLFlags(fs, true)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	flt, err := f.filter()
	if err != nil {
		return conn.usageError(e, err)
	}
	q := url.Values{}
	for k, v := range map[string]string{"principal": flt.Principal, "host": flt.Host, "resource": flt.Resource, "name": flt.Name,
		"pattern": flt.Pattern, "operation": flt.Operation, "permission": flt.Permission} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		var out struct {
			ACLs []auth.ACL `json:"acls"`
		}
		if err := apiCall(ctx, hc, http.MethodGet, base+"/v1/acls?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, out.ACLs)
		}
		return printACLs(e, out.ACLs)
	})
}

func runACLDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("acl delete", "twoway acl delete [--principal P] [--topic NAME | ...] [--operation OP] [--prefixed] [--deny]", `
Delete the ACLs matching the flags (at least one must be given), and list
what was deleted.
`+connectHelp)
	f := addACLFlags(fs, true)
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	flt, err := f.filter()
	if err != nil {
		return conn.usageError(e, err)
	}
	if flt == (auth.ACLFilter{}) {
		return conn.usageError(e, errors.New("give at least one of --principal, a resource, --operation: deleting every ACL takes --principal User:* ... per principal"))
	}
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error {
		var out struct {
			Deleted []auth.ACL `json:"deleted"`
		}
		if err := apiCall(ctx, hc, http.MethodDelete, base+"/v1/acls", map[string]any{"filters": []auth.ACLFilter{flt}}, &out); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted %d ACLs\n", len(out.Deleted))
		if len(out.Deleted) == 0 {
			return nil
		}
		return printACLs(e, out.Deleted)
	})
}
