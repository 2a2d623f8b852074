package main

// Real Kafka clients against the real binary: kcat (librdkafka) and kafkajs
// talk to "twoway serve" exactly as a user's would. Where a client is not
// installed these tests skip, except under CI=true, where they fail: "make
// tools" installs both (kcat with apt-get, kafkajs with npm ci in
// test/kafkajs), so a missing one there is a broken setup.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/tlsconf/tlstest"
)

// clientTimeout bounds one client command; generous, for loaded machines.
const clientTimeout = 60 * time.Second

// needClient skips the test, or under CI=true fails it, for a missing client.
func needClient(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true requires it", why)
	}
	t.Skipf("%s; skipping", why)
}

func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		needClient(t, "kcat is not installed (make tools installs it)")
	}
	return p
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after %v: %s", timeout, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kafkaAgent is a "twoway serve" process with both front doors.
type kafkaAgent struct {
	http   string // base URL
	kafka  string // host:port
	nodeID string
	cmd    *exec.Cmd
	exited chan error
	logs   lockedBuffer
}

// newServeCmd is the command startKafkaAgent runs.
var newServeCmd = func(bucket string) *exec.Cmd {
	return exec.Command(twowayBin, "serve", "--bucket", bucket, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0")
}

// startKafkaAgent runs "twoway serve" on bucket with HTTP and Kafka on free
// loopback ports, read from its "twoway serving" log line.
func startKafkaAgent(t *testing.T, bucket string) *kafkaAgent {
	t.Helper()
	a := &kafkaAgent{
		cmd:    newServeCmd(bucket),
		exited: make(chan error, 1),
	}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Kill() })
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.logs.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), `msg="twoway serving"`) {
				serving <- sc.Text()
			}
		}
		a.exited <- a.cmd.Wait()
	}()
	var line string
	select {
	case line = <-serving:
	case err := <-a.exited:
		t.Fatalf("serve exited early (%v):\n%s", err, a.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not log its addresses:\n%s", a.logs.String())
	}
	attr := func(name string) string {
		m := regexp.MustCompile(` ` + name + `=(\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no %s= in %q", name, line)
		}
		return m[1]
	}
	a.http, a.kafka, a.nodeID = attr("http"), attr("kafka"), attr("node_id")
	return a
}

// stop interrupts the agent and checks that it stopped cleanly, having
// logged no warning or error while the clients came and went.
func (a *kafkaAgent) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGINT:\n%s", err, a.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit after SIGINT:\n%s", a.logs.String())
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "twoway stopped") || strings.Contains(logs, "level=WARN") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("agent log:\n%s", logs)
	}
}

// kcatClient runs kcat against one agent.
type kcatClient struct {
	path, broker string
}

// run runs kcat to completion and returns its standard output.
func (k kcatClient) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.path, append([]string{"-b", k.broker}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -b %s %s: %v\n%s", k.broker, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kcatProc is a kcat running in the background, such as a group member.
type kcatProc struct {
	args           string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan error
}

func (k kcatClient) start(t *testing.T, args ...string) *kcatProc {
	t.Helper()
	p := &kcatProc{
		args:   strings.Join(append([]string{"-b", k.broker}, args...), " "),
		cmd:    exec.Command(k.path, append([]string{"-b", k.broker}, args...)...),
		exited: make(chan error, 1),
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() { p.exited <- p.cmd.Wait() }()
	return p
}

func (p *kcatProc) String() string {
	return fmt.Sprintf("kcat %s\nstdout:\n%s\nstderr:\n%s", p.args, p.stdout.String(), p.stderr.String())
}

// wait waits for kcat to exit by itself and fails the test unless it
// exits 0.
func (p *kcatProc) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("%v: %s", err, p)
		}
	case <-time.After(clientTimeout):
		t.Fatalf("still running after %v: %s", clientTimeout, p)
	}
}

// terminate asks kcat to stop as Ctrl-C would (a group member then commits
// and leaves the group) and waits for it to exit.
func (p *kcatProc) terminate(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(clientTimeout):
		t.Fatalf("did not exit after SIGTERM: %s", p)
	}
}

// committedOffsets asks the agent at broker, as a Kafka client, for the
// offsets group has committed for partitions 0..n-1 of topic (-1: none).
func committedOffsets(t *testing.T, broker, group, topic string, n int32) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range n {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("OffsetFetch %s: %v", group, err)
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = -2 // not in the answer
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("OffsetFetch %s %s/%d: %v", group, rt.Topic, rp.Partition, err)
			}
			if rt.Topic == topic && rp.Partition >= 0 && rp.Partition < n {
				out[rp.Partition] = rp.Offset
			}
		}
	}
	return out
}

// httpRecord is a record as GET .../records answers it.
type httpRecord struct {
	Partition int32         `json:"partition"`
	Offset    int64         `json:"offset"`
	Timestamp int64         `json:"timestamp"`
	Key       *string       `json:"key"`
	KeyB64    *string       `json:"key_b64"`
	Value     *string       `json:"value"`
	ValueB64  *string       `json:"value_b64"`
	Headers   []httpBytesKV `json:"headers"`
}

type httpBytesKV struct {
	Key      *string `json:"key"`
	KeyB64   *string `json:"key_b64"`
	Value    *string `json:"value"`
	ValueB64 *string `json:"value_b64"`
}

// httpBytes decodes a byte field of the API: nil when null.
func httpBytes(t *testing.T, s, b64 *string) []byte {
	t.Helper()
	switch {
	case s != nil:
		return []byte(*s)
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			t.Fatalf("bad base64 %q: %v", *b64, err)
		}
		return b
	}
	return nil
}

// httpRecords reads every record of a partition through the HTTP API.
func httpRecords(t *testing.T, base, topic string, partition int32) []httpRecord {
	t.Helper()
	var res struct {
		Records       []httpRecord `json:"records"`
		HighWatermark int64        `json:"high_watermark"`
	}
	body := httpGet(t, fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=earliest&max=10000", base, topic, partition))
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("records of %s/%d: %v\n%s", topic, partition, err, body)
	}
	if int64(len(res.Records)) != res.HighWatermark {
		t.Fatalf("records of %s/%d: %d records, high watermark %d", topic, partition, len(res.Records), res.HighWatermark)
	}
	return res.Records
}

func httpPost(t *testing.T, url, body string, wantStatus int) string {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("POST %s = %d %s, want %d", url, resp.StatusCode, b, wantStatus)
	}
	return string(b)
}

// A Kafka user's first minutes, as they would type them: an agent, kcat -L,
// keyed lines produced into a topic that does not exist yet (auto-created,
// as on Kafka), read back from the beginning; then "kcat -G g1 orders"
// joins a new group, which (as on Kafka) starts at the end and receives what
// is produced from then on, and commits it on the way out, so that the
// group's next member starts after it.
func TestKcatQuickStart(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	a := startKafkaAgent(t, filepath.Join(t.TempDir(), "data"))
	k := kcatClient{kcat, a.kafka}

	meta := k.run(t, "", "-L")
	if !strings.Contains(meta, " 1 brokers:\n") || !strings.Contains(meta, fmt.Sprintf("broker %s at %s (controller)", a.nodeID, a.kafka)) {
		t.Errorf("kcat -L does not list the agent (node %s at %s) as the one broker:\n%s", a.nodeID, a.kafka, meta)
	}

	k.run(t, "alice:1 pizza\nbob:2 salads\ncarol:3 soups\n", "-P", "-t", "orders", "-K:")
	if meta := k.run(t, "", "-L", "-t", "orders"); !strings.Contains(meta, `topic "orders" with 1 partitions`) {
		t.Errorf("kcat -L -t orders after producing:\n%s", meta)
	}
	got := k.run(t, "", "-C", "-t", "orders", "-o", "beginning", "-e", "-f", `%p %o %k=%s\n`)
	if want := "0 0 alice=1 pizza\n0 1 bob=2 salads\n0 2 carol=3 soups\n"; got != want {
		t.Errorf("kcat -C -o beginning -e printed\n%s\nwant\n%s", got, want)
	}

	// The member reports where it starts fetching (librdkafka's fetch
	// debug log), so the new records are produced only once it is past the
	// old ones: -c 2 then ends it after exactly the new ones.
	member := k.start(t, "-G", "g1", "-c", "2", "-d", "fetch", "-f", `%p %o %k=%s\n`, "orders")
	fetching := regexp.MustCompile(`Fetch topic orders \[0\] at offset (\d+)`)
	eventually(t, clientTimeout, member.String, func() bool { return fetching.MatchString(member.stderr.String()) })
	if m := fetching.FindStringSubmatch(member.stderr.String()); m[1] != "3" {
		t.Fatalf("the new group's member starts at offset %s, want 3 (the end, auto.offset.reset=latest): %s", m[1], member)
	}
	k.run(t, "dave:4 tacos\nerin:5 ramen\n", "-P", "-t", "orders", "-K:")
	member.wait(t)
	if got, want := member.stdout.String(), "0 3 dave=4 tacos\n0 4 erin=5 ramen\n"; got != want {
		t.Errorf("kcat -G g1 orders printed\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(member.stderr.String(), "assigned: orders [0]") {
		t.Errorf("the member was not assigned orders [0]: %s", member)
	}

	// Committed on the way out: the group's offset is the end, so a member
	// told to start from the beginning when nothing is committed still
	// reads nothing. (That is auto.offset.reset; kcat's -o would override
	// the committed offsets, on Kafka too.)
	if got := committedOffsets(t, a.kafka, "g1", "orders", 1); got[0] != 5 {
		t.Errorf("g1 committed offset %d for orders [0], want 5", got[0])
	}
	again := k.start(t, "-G", "g1", "-X", "auto.offset.reset=earliest", "-e", "-f", `%p %o %k=%s\n`, "orders")
	again.wait(t)
	if again.stdout.String() != "" || !strings.Contains(again.stderr.String(), "Reached end of topic orders [0] at offset 5") {
		t.Errorf("g1's second member read past the committed offset: %s", again)
	}
	a.stop(t)
}

// Two kcat members of one group split a topic's partitions, read every
// record exactly once between them, and commit where they stopped. They use
// librdkafka's cooperative-sticky assignor (incremental rebalancing, KIP-429);
// the other tests use its default, eager one.
func TestKcatGroupMembers(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	a := startKafkaAgent(t, filepath.Join(t.TempDir(), "data"))
	k := kcatClient{kcat, a.kafka}
	httpPost(t, a.http+"/v1/topics", `{"name":"events","partitions":4}`, http.StatusCreated)

	var input strings.Builder
	want := map[string]bool{}
	for i := range 40 {
		fmt.Fprintf(&input, "user-%d:event-%d\n", i%9, i)
		want[fmt.Sprintf("user-%d=event-%d", i%9, i)] = true
	}
	k.run(t, input.String(), "-P", "-t", "events", "-K:")
	ends := make([]int64, 4)
	for p := range int32(4) {
		ends[p] = int64(len(httpRecords(t, a.http, "events", p)))
	}

	// -u: unbuffered, so that the test sees each record as it is consumed.
	args := []string{"-G", "members", "-X", "auto.offset.reset=earliest", "-X", "partition.assignment.strategy=cooperative-sticky",
		"-u", "-f", `%p %o %k=%s\n`, "events"}
	m1, m2 := k.start(t, args...), k.start(t, args...)
	consumed := func() []string { return append(recordLines(m1.stdout.String()), recordLines(m2.stdout.String())...) }
	eventually(t, clientTimeout, func() string { return fmt.Sprintf("%d of 40 records consumed:\n%s\n%s", len(consumed()), m1, m2) },
		func() bool { return len(consumed()) >= 40 })
	m1.terminate(t)
	m2.terminate(t)
	for _, m := range []*kcatProc{m1, m2} {
		if !strings.Contains(m.stderr.String(), "COOPERATIVE rebalance protocol") {
			t.Errorf("not a cooperative rebalance: %s", m)
		}
	}

	seen := map[string]bool{}
	for _, line := range consumed() {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || !want[f[2]] || seen[f[2]] {
			t.Errorf("unexpected or repeated record %q:\n%s\n%s", line, m1, m2)
		}
		seen[f[2]] = true
	}
	if len(seen) != len(want) {
		t.Errorf("the members read %d distinct records of %d", len(seen), len(want))
	}
	t.Logf("member 1 read %d records, member 2 %d", len(recordLines(m1.stdout.String())), len(recordLines(m2.stdout.String())))
	if got := committedOffsets(t, a.kafka, "members", "events", 4); !slices.Equal(got, ends) {
		t.Errorf("committed offsets %v, want the ends %v", got, ends)
	}
	a.stop(t)
}

// recordLines is the complete lines of out; a line still being written is
// left out.
func recordLines(out string) []string {
	lines := strings.SplitAfter(out, "\n")
	var done []string
	for _, l := range lines {
		if strings.HasSuffix(l, "\n") {
			done = append(done, strings.TrimSuffix(l, "\n"))
		}
	}
	return done
}

// Two agents on one bucket: what is produced and committed through one is
// read and resumed through the other, also once the first has stopped.
func TestKcatTwoAgents(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	data := filepath.Join(t.TempDir(), "data")
	a, b := startKafkaAgent(t, data), startKafkaAgent(t, data)
	ka, kb := kcatClient{kcat, a.kafka}, kcatClient{kcat, b.kafka}

	// Each agent lists both as brokers (registrations are refreshed every
	// few seconds and listings cached for one).
	for _, k := range []kcatClient{ka, kb} {
		var meta string
		eventually(t, clientTimeout, func() string { return "kcat -b " + k.broker + " -L:\n" + meta }, func() bool {
			meta = k.run(t, "", "-L")
			return strings.Contains(meta, " 2 brokers:\n") &&
				strings.Contains(meta, fmt.Sprintf("broker %s at %s", a.nodeID, a.kafka)) &&
				strings.Contains(meta, fmt.Sprintf("broker %s at %s", b.nodeID, b.kafka))
		})
	}

	const format = `%o %k=%s\n`
	ka.run(t, "k0:v0\nk1:v1\nk2:v2\n", "-P", "-t", "shared", "-K:")
	got := kb.run(t, "", "-C", "-t", "shared", "-o", "beginning", "-e", "-f", format)
	if want := "0 k0=v0\n1 k1=v1\n2 k2=v2\n"; got != want {
		t.Errorf("read through the second agent:\n%s\nwant\n%s", got, want)
	}
	first := ka.start(t, "-G", "shared-group", "-X", "auto.offset.reset=earliest", "-e", "-f", format, "shared")
	first.wait(t)
	if got, want := first.stdout.String(), "0 k0=v0\n1 k1=v1\n2 k2=v2\n"; got != want {
		t.Errorf("group member on the first agent read\n%s\nwant\n%s", got, want)
	}

	// The first agent stops (deregistering itself and releasing the group);
	// the second serves everything alone.
	a.stop(t)
	kb.run(t, "k3:v3\nk4:v4\n", "-P", "-t", "shared", "-K:")
	got = kb.run(t, "", "-C", "-t", "shared", "-o", "beginning", "-e", "-f", format)
	if want := "0 k0=v0\n1 k1=v1\n2 k2=v2\n3 k3=v3\n4 k4=v4\n"; got != want {
		t.Errorf("read through the second agent alone:\n%s\nwant\n%s", got, want)
	}
	second := kb.start(t, "-G", "shared-group", "-X", "auto.offset.reset=earliest", "-e", "-f", format, "shared")
	second.wait(t)
	if got, want := second.stdout.String(), "3 k3=v3\n4 k4=v4\n"; got != want {
		t.Errorf("the group resumed on the second agent with\n%s\nwant\n%s", got, want)
	}
	if got := committedOffsets(t, b.kafka, "shared-group", "shared", 1); got[0] != 5 {
		t.Errorf("committed offset %d, want 5", got[0])
	}
	b.stop(t)
}

// kcatRecordFormat prints everything a record has, one record a line:
// partition, offset, timestamp, key length (-1: null), key, value length,
// value, headers (name=value,...; a null value prints NULL).
const kcatRecordFormat = `%p\t%o\t%T\t%K\t%k\t%S\t%s\t%h\n`

// kcatLine is how kcatRecordFormat prints a record read through HTTP.
func kcatLine(t *testing.T, r httpRecord) string {
	t.Helper()
	lenOf := func(b []byte) int {
		if b == nil {
			return -1
		}
		return len(b)
	}
	key, value := httpBytes(t, r.Key, r.KeyB64), httpBytes(t, r.Value, r.ValueB64)
	var headers []string
	for _, h := range r.Headers {
		v := httpBytes(t, h.Value, h.ValueB64)
		if v == nil {
			v = []byte("NULL")
		}
		headers = append(headers, string(httpBytes(t, h.Key, h.KeyB64))+"="+string(v))
	}
	return fmt.Sprintf("%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s", r.Partition, r.Offset, r.Timestamp,
		lenOf(key), key, lenOf(value), value, strings.Join(headers, ","))
}

// What kcat produces, the HTTP API reads back identically, and the other
// way round: partition, offset, timestamp, key, value and headers, null
// keys and values included.
func TestKcatHTTPAgreement(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	a := startKafkaAgent(t, filepath.Join(t.TempDir(), "data"))
	k := kcatClient{kcat, a.kafka}

	// kcat → HTTP. -Z makes an empty key or value null; the headers go on
	// every record, a repeated name and an empty value included.
	k.run(t, "k1:v1\nno key\nk3:\ncafé:☕ x\n", "-P", "-t", "from-kcat", "-K:", "-Z", "-H", "h1=v1", "-H", "h1=again", "-H", "h2=")
	kcatOut := k.run(t, "", "-C", "-t", "from-kcat", "-o", "beginning", "-e", "-f", kcatRecordFormat)
	recs := httpRecords(t, a.http, "from-kcat", 0)
	var viaHTTP strings.Builder
	for _, r := range recs {
		fmt.Fprintln(&viaHTTP, kcatLine(t, r))
	}
	if viaHTTP.String() != kcatOut {
		t.Errorf("kcat and HTTP disagree on the records kcat produced;\nkcat:\n%s\nHTTP:\n%s", kcatOut, viaHTTP.String())
	}
	if len(recs) != 4 || recs[0].Timestamp < time.Now().Add(-time.Hour).UnixMilli() ||
		recs[1].Key != nil || recs[2].Value != nil || *recs[3].Key != "café" || len(recs[0].Headers) != 3 {
		t.Errorf("records as HTTP reads them: %+v", recs)
	}

	// HTTP → kcat: two partitions, explicit and agent-given timestamps,
	// repeated header names, a null header value, a null key, an empty key
	// and value, a tombstone, UTF-8 beyond ASCII.
	httpPost(t, a.http+"/v1/topics", `{"name":"from-http","partitions":2}`, http.StatusCreated)
	httpPost(t, a.http+"/v1/topics/from-http/records", `[
		{"key":"alice","value":"1 pizza","partition":1,"timestamp":1767225600000,
		 "headers":[{"key":"source","value":"web"},{"key":"source","value":"app"},{"key":"trace"}]},
		{"value":"no key","partition":0},
		{"key":"","value":"","partition":0},
		{"key":"tomb","partition":0,"timestamp":1767225600001},
		{"key":"café","value":"☕ x","headers":{"a":"b"},"partition":1}]`, http.StatusOK)
	var want strings.Builder
	for p := range int32(2) {
		for _, r := range httpRecords(t, a.http, "from-http", p) {
			fmt.Fprintln(&want, kcatLine(t, r))
		}
	}
	got := k.run(t, "", "-C", "-t", "from-http", "-o", "beginning", "-e", "-f", kcatRecordFormat)
	// kcat interleaves partitions; compare them in partition, offset order.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	slices.SortStableFunc(lines, func(x, y string) int {
		px, _ := strconv.Atoi(strings.SplitN(x, "\t", 2)[0])
		py, _ := strconv.Atoi(strings.SplitN(y, "\t", 2)[0])
		return px - py
	})
	if got := strings.Join(lines, "\n") + "\n"; got != want.String() {
		t.Errorf("kcat and HTTP disagree on the records HTTP produced;\nkcat:\n%s\nHTTP:\n%s", got, want.String())
	}
	for _, line := range []string{
		"1\t0\t1767225600000\t5\talice\t7\t1 pizza\tsource=web,source=app,trace=NULL",
		"0\t2\t1767225600001\t4\ttomb\t-1\t\t",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("kcat did not print %q:\n%s", line, got)
		}
	}
	a.stop(t)
}

// kafkajs: test/kafkajs/roundtrip.js creates a topic, produces keyed
// records with headers in gzip batches with an idempotent producer, and
// reads them back in a consumer group that commits and resumes (the script
// says what it checks). The records then read back identically through the
// HTTP API.
func TestKafkajs(t *testing.T) {
	t.Parallel()
	a := startKafkaAgent(t, filepath.Join(t.TempDir(), "data"))
	runKafkajs(t, a, a.kafka, nil)
	checkJSOrders(t, a.http, nil)
	a.stop(t)
}

// The same roundtrip through SASL_SSL: kafkajs with SCRAM-SHA-256 over
// TLS against an agent that requires authentication.
func TestKafkajsScramOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ok(t, dir, "js-secret\n", "user", "create", "js", "--password-stdin", "--bucket", data)
	// Exactly what the roundtrip needs: its topics, its group, creating
	// topics and idempotent writes.
	for _, acl := range [][]string{
		{"--topic", "js-", "--prefixed", "--operation", "all"},
		{"--group", "js-", "--prefixed", "--operation", "read"},
		{"--cluster", "--operation", "create"},
		{"--cluster", "--operation", "idempotent_write"},
	} {
		ok(t, dir, "", append([]string{"acl", "add", "--principal", "User:js", "--bucket", data}, acl...)...)
	}
	ca := tlstest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "server", true)
	a := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--auth")
	kafkaAddr := regexp.MustCompile(` kafka=(\S+)`).FindStringSubmatch(a.Logs())[1]
	ka := &kafkaAgent{http: a.base, kafka: kafkaAddr}
	runKafkajs(t, ka, kafkaAddr, []string{"TWOWAY_KAFKAJS_CA=" + ca.File, "TWOWAY_KAFKAJS_SASL=scram-sha-256:js:js-secret"})
	if !strings.Contains(a.Logs(), `kafka client authenticated" component=kafka`) || !strings.Contains(a.Logs(), "principal=User:js") {
		t.Errorf("no SCRAM authentication of js in the agent's log:\n%s", a.Logs())
	}
}

// runKafkajs runs test/kafkajs/roundtrip.js against broker and checks
// what it printed.
func runKafkajs(t *testing.T, a *kafkaAgent, broker string, env []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needClient(t, "node is not installed (the kafkajs test needs Node.js 20 or later)")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "kafkajs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json")); err != nil {
		needClient(t, "kafkajs is not installed in test/kafkajs (make tools runs npm ci there)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "roundtrip.js"), broker, "js-orders")
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node roundtrip.js: %v\nstdout:\n%s\nstderr:\n%s\nagent log:\n%s", err, stdout.String(), stderr.String(), a.logs.String())
	}
	want := `created topic js-orders with 3 partitions
produced 30 records (wave 1)
consumed 30 records (wave 1) in group js-orders-group
committed offsets: 0=10 1=10 2=10
produced 30 records (wave 2)
consumed 30 records (wave 2) in group js-orders-group
committed offsets: 0=20 1=20 2=20
roundtrip ok: 60 records
`
	if stdout.String() != want {
		t.Errorf("node roundtrip.js printed\n%s\nwant\n%s\nstderr:\n%s", stdout.String(), want, stderr.String())
	}
	if stderr.Len() > 0 {
		// kafkajs warnings (say, a rebalance on a slow machine) are worth
		// seeing, but it recovered: every record and offset checked out.
		t.Logf("kafkajs logged:\n%s", stderr.String())
	}
}

// checkJSOrders reads js-orders back through the HTTP API at base.
func checkJSOrders(t *testing.T, base string, _ *http.Client) {
	t.Helper()
	a := struct{ http string }{base}
	// The records as roundtrip.js made them: record i of wave w goes to
	// partition i%3 with key key-w-i.
	for p := range int32(3) {
		recs := httpRecords(t, a.http, "js-orders", p)
		if len(recs) != 20 {
			t.Fatalf("partition %d has %d records, want 20", p, len(recs))
		}
		for j, r := range recs {
			w, i := 1+j/10, int(p)+3*(j%10)
			key := fmt.Sprintf("key-%d-%d", w, i)
			value := fmt.Sprintf("value %d %d ", w, i) + strings.Repeat("abc", i*5)
			if got, want := kcatLine(t, r), kcatLine(t, httpRecord{
				Partition: p, Offset: int64(j), Timestamp: 1767225600000 + int64(w)*1000 + int64(i),
				Key: &key, Value: &value,
				Headers: []httpBytesKV{{Key: ptr("wave"), Value: ptr(fmt.Sprint(w))}, {Key: ptr("index"), Value: ptr(fmt.Sprint(i))},
					{Key: ptr("bin"), ValueB64: ptr(base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, byte(i)}))}},
			}); got != want {
				t.Errorf("js-orders/%d@%d through HTTP:\n%q\nwant\n%q", p, j, got, want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// kafkajs transactions: test/kafkajs/transactions.js commits and aborts
// transactions, runs a consume-transform-produce loop whose transactions
// carry the consumed offsets (sendOffsets), and reads the output with
// readUncommitted false (committed records only, each once) and true (the
// aborted ones too); the script says what it checks.
func TestKafkajsTransactions(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		needClient(t, "node is not installed (the kafkajs test needs Node.js 20 or later)")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "kafkajs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json")); err != nil && os.Getenv("NODE_PATH") == "" {
		needClient(t, "kafkajs is not installed in test/kafkajs (make tools runs npm ci there)")
	}
	a := startKafkaAgent(t, filepath.Join(t.TempDir(), "data"))
	ctx, cancel := context.WithTimeout(t.Context(), 3*clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "transactions.js"), a.kafka, "js-txn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node transactions.js: %v\nstdout:\n%s\nstderr:\n%s\nagent log:\n%s", err, stdout.String(), stderr.String(), a.logs.String())
	}
	want := `produced 30 records to js-txn-in
committed a transaction of 10, aborted one of 5
copied 30 records in transactions with their offsets
committed offsets: 30
read_committed: 40 records
read_uncommitted: 45 records
transactions ok
`
	if stdout.String() != want {
		t.Errorf("node transactions.js printed\n%s\nwant\n%s\nstderr:\n%s", stdout.String(), want, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("kafkajs logged:\n%s", stderr.String())
	}
	a.stop(t)
}
