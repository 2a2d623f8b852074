package main

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServeACLs: with --auth, what a principal may do over HTTP and
// Kafka is what its ACLs say. The first user and ACLs are made straight on
// the bucket; the HTTP matrix answers 403 (JSON) for every operation
// without an ACL, and 2xx with it; kcat with SASL produces only with a
// write ACL; an ACL made through one agent is enforced by another at its
// next commit; a super user bypasses ACLs.
func TestServeACLs(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ok(t, dir, "alice-secret\n", "user", "create", "alice", "--password-stdin", "--bucket", data)
	ok(t, dir, "bob-secret\n", "user", "create", "bob", "--password-stdin", "--bucket", data)
	ok(t, dir, "root-secret\n", "user", "create", "root", "--password-stdin", "--bucket", data)
	ok(t, dir, "", "topic", "create", "orders", "--partitions", "2", "--bucket", data)
	ok(t, dir, "", "topic", "create", "secret", "--bucket", data)
	if out := ok(t, dir, "", "acl", "add", "--principal", "User:alice", "--topic", "orders", "--operation", "write", "--bucket", data); !strings.Contains(out, "added: allow User:alice write on literal topic \"orders\"") {
		t.Fatalf("acl add: %s", out)
	}
	fails(t, dir, 2, "operation \"fly\"", "", "acl", "add", "--principal", "User:alice", "--topic", "orders", "--operation", "fly", "--bucket", data)
	fails(t, dir, 2, "name a resource", "", "acl", "add", "--principal", "User:alice", "--operation", "read", "--bucket", data)

	a := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--auth", "--super-user", "User:root")
	b := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--auth", "--super-user", "User:root")
	hc := &http.Client{Timeout: 10 * time.Second}
	do := func(base, method, path, user, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.SetBasicAuth(user, user+"-secret")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	// The HTTP matrix for bob, who has no ACL: every operation refused
	// with 403 and a JSON error naming it; nothing changes.
	for _, c := range []struct{ method, path, body, says string }{
		{"POST", "/v1/topics", `{"name": "bobs"}`, "may not create topic"},
		{"GET", "/v1/topics/orders", "", "may not describe topic \"orders\""},
		{"POST", "/v1/topics/orders/records", `[{"value": "x"}]`, "may not write topic \"orders\""},
		{"GET", "/v1/topics/orders/partitions/0/records?offset=earliest", "", "may not read topic \"orders\""},
		{"PATCH", "/v1/topics/orders", `{"retention": "1h"}`, "may not alter configs topic"},
		{"POST", "/v1/topics/orders/partitions", `{"partitions": 4}`, "may not alter topic"},
		{"DELETE", "/v1/topics/orders", "", "may not delete topic"},
		{"GET", "/v1/users", "", "may not describe cluster"},
		{"PUT", "/v1/users/eve", `{"password": "x"}`, "may not alter cluster"},
		{"POST", "/v1/acls", `{"acls": [{"principal": "User:bob", "resource": "topic", "name": "*", "operation": "all"}]}`, "may not alter cluster"},
		{"POST", "/v1/tables", `{"name": "orders", "topic": "orders"}`, "may not create table"},
		{"PUT", "/v1/functions/f", `{"module": "AGFzbQEAAAA="}`, "may not create function"},
	} {
		code, body := do(a.base, c.method, c.path, "bob", c.body)
		body = strings.ReplaceAll(body, `\"`, `"`)
		if code != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) && !strings.Contains(body, `"code": "forbidden"`) || !strings.Contains(body, c.says) {
			t.Errorf("bob %s %s: %d %s (want 403 saying %q)", c.method, c.path, code, body, c.says)
		}
	}
	// bob lists no topics; alice lists the one she may write (write
	// implies describe).
	if code, body := do(a.base, "GET", "/v1/topics", "bob", ""); code != 200 || strings.Contains(body, "orders") {
		t.Fatalf("bob lists: %d %s", code, body)
	}
	if code, body := do(a.base, "GET", "/v1/topics", "alice", ""); code != 200 || !strings.Contains(body, `"orders"`) || strings.Contains(body, "secret") {
		t.Fatalf("alice lists: %d %s", code, body)
	}
	if code, body := do(a.base, "POST", "/v1/topics/orders/records", "alice", `[{"value": "from-alice", "partition": 0}]`); code != 200 {
		t.Fatalf("alice produces: %d %s", code, body)
	}
	if code, _ := do(a.base, "GET", "/v1/topics/orders/partitions/0/records?offset=earliest", "alice", ""); code != 403 {
		t.Fatalf("alice reads without a read ACL: %d", code)
	}

	// kcat, SASL_PLAINTEXT: bob may not produce; once root (a super user)
	// grants him write through agent a, agent b lets him.
	kcat := kcatPath(t)
	kafkaB := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(b.Logs())[1]
	kcatAs := func(user string, stdin string, args ...string) ([]byte, error) {
		cmd := exec.Command(kcat, append([]string{"-b", kafkaB, "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=SCRAM-SHA-256",
			"-X", "sasl.username=" + user, "-X", "sasl.password=" + user + "-secret"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		return cmd.CombinedOutput()
	}
	out, err := kcatAs("bob", "denied\n", "-P", "-t", "orders", "-p", "1")
	if err == nil || !strings.Contains(string(out), "Topic authorization failed") {
		t.Fatalf("kcat as bob without write: %v\n%s", err, out)
	}
	if code, body := do(a.base, "POST", "/v1/acls", "root", `{"acls": [{"principal": "User:bob", "resource": "topic", "name": "ord", "pattern": "prefixed", "operation": "write"},
		{"principal": "User:bob", "resource": "topic", "name": "orders", "operation": "read"}]}`); code != 201 {
		t.Fatalf("root adds ACLs: %d %s", code, body)
	}
	if out, err := kcatAs("bob", "granted\n", "-P", "-t", "orders", "-p", "1"); err != nil {
		t.Fatalf("kcat as bob with write, on the other agent: %v\n%s", err, out)
	}
	out, err = kcatAs("bob", "", "-C", "-t", "orders", "-p", "1", "-o", "beginning", "-e", "-q")
	if err != nil || strings.TrimSpace(string(out)) != "granted" {
		t.Fatalf("kcat -C as bob: %v\n%s (the denied record must not be there)", err, out)
	}
	// Deny wins: a deny of write on orders for everyone stops bob (and
	// alice) though they are allowed.
	ok(t, dir, "", "acl", "add", "--principal", "User:*", "--topic", "orders", "--operation", "write", "--deny", "--server", a.base, "--token", strings.TrimSpace(ok(t, dir, "", "token", "create", "--principal", "User:root", "--bucket", data)))
	eventually(t, 10*time.Second, func() string { return "the deny is not enforced" }, func() bool {
		code, _ := do(b.base, "POST", "/v1/topics/orders/records", "alice", `[{"value": "x"}]`)
		return code == 403
	})
	if code, _ := do(b.base, "POST", "/v1/topics/orders/records", "root", `[{"value": "root"}]`); code != 200 {
		t.Fatalf("the super user is refused: %d", code)
	}
	list := ok(t, dir, "", "acl", "list", "--bucket", data)
	for _, want := range []string{"User:alice  allow       write", "User:*      deny        write", "prefixed  ord"} {
		if !strings.Contains(list, want) {
			t.Fatalf("acl list lacks %q:\n%s", want, list)
		}
	}
	if out := ok(t, dir, "", "acl", "delete", "--principal", "User:*", "--bucket", data); !strings.Contains(out, "deleted 1 ACLs") {
		t.Fatalf("acl delete: %s", out)
	}
	for _, s := range []*servedAgent{a, b} {
		if strings.Contains(s.Logs(), "bob-secret") || strings.Contains(s.Logs(), "tw_") {
			t.Fatal("a secret is in an agent's log")
		}
	}
}
