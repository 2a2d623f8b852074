package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/internal/tlsconf/tlstest"
)

// twoway serve --auth over TLS: users made straight on the bucket
// authenticate with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN (franz-go) and
// SCRAM through kcat (SASL_SSL); wrong passwords, unknown users and
// clients without SASL are refused with Kafka's errors; HTTP wants Basic
// with the same users, probes stay open; a user created through one agent
// authenticates on another.
func TestServeAuth(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ok(t, dir, "alice-secret\n", "user", "create", "alice", "--password-stdin", "--bucket", data)
	ok(t, dir, "bob-secret\n", "user", "create", "bob", "--password-stdin", "--mechanism", "SCRAM-SHA-512", "--bucket", data)
	fails(t, dir, 2, "--password-stdin is required", "", "user", "create", "eve", "--bucket", data)
	if out := ok(t, dir, "", "user", "list", "--bucket", data); !strings.Contains(out, "alice  SCRAM-SHA-256,SCRAM-SHA-512") || !strings.Contains(out, "bob    SCRAM-SHA-512") {
		t.Fatalf("user list:\n%s", out)
	}

	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", true)
	a := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--auth", "--super-user", "User:alice", "--super-user", "User:bob")
	kafkaAddr := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(a.Logs())[1]
	tlsCfg := ca.ClientConfig(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()

	client := func(m sasl.Mechanism, topic string) *kgo.Client {
		opts := []kgo.Opt{kgo.SeedBrokers(kafkaAddr), kgo.DialTLSConfig(tlsCfg), kgo.AllowAutoTopicCreation(),
			kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.RequestRetries(2), kgo.RecordRetries(2)}
		if m != nil {
			opts = append(opts, kgo.SASL(m))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	roundTrip := func(name string, cl *kgo.Client) {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(name)}).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		for {
			fs := cl.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				t.Fatalf("%s: fetch: %v", name, err)
			}
			if fs.NumRecords() > 0 {
				return
			}
		}
	}
	s256 := func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() }
	s512 := func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() }
	roundTrip("scram-sha-256", client(s256("alice", "alice-secret"), "t256"))
	roundTrip("scram-sha-512", client(s512("bob", "bob-secret"), "t512"))
	roundTrip("plain", client(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(), "tplain"))

	refused := func(what string, m sasl.Mechanism, want error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
		defer ccancel()
		start := time.Now()
		err := client(m, "refused").Ping(cctx)
		t.Logf("%s: refused in %v: %v", what, time.Since(start), err)
		if err == nil || (want != nil && !strings.Contains(err.Error(), want.Error())) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	refused("wrong password", s256("alice", "nope"), kerr.SaslAuthenticationFailed)
	refused("unknown user", s256("mallory", "x"), kerr.SaslAuthenticationFailed)
	refused("no SCRAM-SHA-256 credential", s256("bob", "bob-secret"), kerr.SaslAuthenticationFailed)
	refused("plain wrong password", plain.Auth{User: "alice", Pass: "x"}.AsMechanism(), kerr.SaslAuthenticationFailed)
	refused("no SASL", nil, nil)
	eventually(t, 10*time.Second, a.Logs, func() bool {
		logs := a.Logs()
		return strings.Contains(logs, "kafka SASL authentication failed") && strings.Contains(logs, "before SASL authentication; closing")
	})
	if strings.Contains(a.Logs(), "alice-secret") {
		t.Error("a password is in the agent's log")
	}

	// kcat, SASL_SSL with SCRAM-SHA-256.
	kcat := kcatPath(t)
	args := []string{"-b", kafkaAddr, "-X", "security.protocol=sasl_ssl", "-X", "ssl.ca.location=" + ca.File,
		"-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"}
	prod := exec.CommandContext(ctx, kcat, append(args, "-P", "-t", "t256")...)
	prod.Stdin = strings.NewReader("from-kcat\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P SASL_SSL: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, append(args, "-C", "-t", "t256", "-o", "beginning", "-e", "-q")...).Output()
	if err != nil || !strings.Contains(string(out), "from-kcat") || !strings.Contains(string(out), "scram-sha-256") {
		t.Fatalf("kcat -C SASL_SSL: %v\n%s", err, out)
	}

	// HTTP: Basic with the same users; the probes stay open.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	do := func(method, path, user, pass string, body io.Reader) (int, string) {
		req, _ := http.NewRequest(method, a.base+path, body)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/v1/topics", "", "", nil); code != 401 || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Fatalf("no credentials: %d %s", code, body)
	}
	if code, _ := do("GET", "/v1/topics", "alice", "wrong", nil); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	if code, body := do("GET", "/v1/topics", "alice", "alice-secret", nil); code != 200 || !strings.Contains(body, "t256") {
		t.Fatalf("alice: %d %s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := do("GET", p, "", "", nil); code != 200 {
			t.Fatalf("%s without credentials: %d", p, code)
		}
	}

	// A user made through this agent authenticates on another one.
	if code, body := do("PUT", "/v1/users/carol", "alice", "alice-secret", strings.NewReader(`{"password":"carol-secret"}`)); code != 204 {
		t.Fatalf("create carol over HTTP: %d %s", code, body)
	}
	b := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--auth", "--metrics-auth", "--super-user", "User:alice", "--super-user", "User:bob")
	for path, want := range map[string]int{"/metrics": 401, "/healthz": 200} {
		req, _ := http.NewRequest("GET", b.base+path, nil)
		resp, err := hc.Do(req)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("%s with --metrics-auth and no credentials: %v %v, want %d", path, resp, err, want)
		}
		resp.Body.Close()
	}
	kafkaB := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(b.Logs())[1]
	clB, err := kgo.NewClient(kgo.SeedBrokers(kafkaB), kgo.DialTLSConfig(tlsCfg), kgo.SASL(s512("carol", "carol-secret")))
	if err != nil {
		t.Fatal(err)
	}
	defer clB.Close()
	if err := clB.Ping(ctx); err != nil {
		t.Fatalf("carol on the second agent: %v", err)
	}
	var users []map[string]any
	if err := json.Unmarshal([]byte(ok(t, dir, "", "user", "list", "--json", "--bucket", data)), &users); err != nil || len(users) != 3 {
		t.Fatalf("users: %v %v", users, err)
	}
	ok(t, dir, "", "user", "delete", "carol", "--bucket", data)

	// Bearer tokens: made straight on the bucket, printed once; the CLI
	// sends one from $TWOWAY_TOKEN; revoked or expired, refused.
	tok := strings.TrimSpace(ok(t, dir, "", "token", "create", "--principal", "User:alice", "--expires", "1h", "--bucket", data))
	if !strings.HasPrefix(tok, "tw_") {
		t.Fatalf("token %q", tok)
	}
	bearer := func(token string) int {
		req, _ := http.NewRequest("GET", a.base+"/v1/topics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 10*time.Second, func() string { return "the new token is not accepted" }, func() bool { return bearer(tok) == 200 })
	if code := bearer(tok + "x"); code != 401 {
		t.Fatalf("a wrong token: %d", code)
	}
	cli := exec.CommandContext(ctx, twowayBin, "topic", "list", "--server", a.base)
	cli.Env = append(cli.Environ(), "TWOWAY_TOKEN="+tok, "SSL_CERT_FILE="+ca.File)
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "t256") {
		t.Fatalf("topic list --server with $TWOWAY_TOKEN: %v\n%s", err, out)
	}
	if list := ok(t, dir, "", "token", "list", "--bucket", data); strings.Contains(list, tok) || !strings.Contains(list, "User:alice") {
		t.Fatalf("token list:\n%s", list)
	}
	id := strings.Split(strings.TrimPrefix(tok, "tw_"), "_")[0]
	ok(t, dir, "", "token", "delete", id, "--bucket", data)
	eventually(t, 10*time.Second, func() string { return "the revoked token still works" }, func() bool { return bearer(tok) == 401 })
	short := strings.TrimSpace(ok(t, dir, "", "token", "create", "--principal", "User:alice", "--expires", "1ms", "--bucket", data))
	time.Sleep(10 * time.Millisecond)
	if code := bearer(short); code != 401 {
		t.Fatalf("an expired token: %d", code)
	}
	_ = fmt.Sprint
}

// Without authentication, serve refuses to listen beyond loopback unless
// told to.
func TestServeRefusesExposureWithoutAuth(t *testing.T) {
	dir := t.TempDir()
	r := runIn(t, dir, "", "serve", "--bucket", filepath.Join(dir, "data"), "--http", "0.0.0.0:0", "--kafka", "")
	if r.code != 1 || !strings.Contains(r.stderr, "without authentication") || !strings.Contains(r.stderr, "--insecure-no-auth") {
		t.Fatalf("serve on 0.0.0.0 without auth: exit %d, %s", r.code, r.stderr)
	}
	r = runIn(t, dir, "", "serve", "--bucket", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--kafka", "[::]:0")
	if r.code != 1 || !strings.Contains(r.stderr, "--kafka") {
		t.Fatalf("Kafka on [::] without auth: exit %d, %s", r.code, r.stderr)
	}
	a := startServe(t, "--bucket", filepath.Join(dir, "data"), "--http", "0.0.0.0:0", "--kafka", "", "--insecure-no-auth")
	if resp, err := http.Get(strings.Replace(a.base, "0.0.0.0", "127.0.0.1", 1) + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("--insecure-no-auth: %v", err)
	}
}
