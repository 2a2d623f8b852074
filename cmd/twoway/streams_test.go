package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/stream"
)

// run runs the binary with stdin in dir and returns its result.
func runIn(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), twowayBin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// ok runs a command that must succeed and returns its output.
func ok(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	r := runIn(t, dir, stdin, args...)
	if r.code != 0 {
		t.Fatalf("twoway %s exited %d:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("twoway %s wrote to stderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

// fails runs a command that must exit with code and a first stderr line
// holding want.
func fails(t *testing.T, dir string, code int, want, stdin string, args ...string) result {
	t.Helper()
	r := runIn(t, dir, stdin, args...)
	first, _, _ := strings.Cut(r.stderr, "\n")
	if r.code != code || !strings.HasPrefix(first, "twoway: ") || !strings.Contains(first, want) {
		t.Errorf("twoway %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, first, code, want)
	}
	return r
}

// agentProc is a "twoway serve" process.
type agentProc struct {
	url    string
	cmd    *exec.Cmd
	exited chan error
	mu     sync.Mutex
	logs   bytes.Buffer
}

// startAgent runs "twoway serve" on the bucket with HTTP on a free port.
func startAgent(t *testing.T, bucket string) *agentProc {
	t.Helper()
	a := &agentProc{cmd: exec.Command(twowayBin, "serve", "--bucket", bucket, "--http", "127.0.0.1:0", "--kafka", ""), exited: make(chan error, 1)}
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Kill() })
	addr := make(chan string, 1)
	go func() {
		serving := regexp.MustCompile(`msg="twoway serving" .*http=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.logs.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
			if m := serving.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		a.exited <- a.cmd.Wait()
	}()
	select {
	case a.url = <-addr:
	case err := <-a.exited:
		t.Fatalf("serve exited early (%v):\n%s", err, a.log())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not log its address")
	}
	return a
}

func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// stop interrupts the agent and waits for a clean exit.
func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGINT:\n%s", err, a.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGINT")
	}
	if !strings.Contains(a.log(), "twoway stopped") || strings.Contains(a.log(), "level=WARN") || strings.Contains(a.log(), "level=ERROR") {
		t.Errorf("agent log:\n%s", a.log())
	}
}

// The quick start: an agent on a directory, a topic, keyed records in,
// records out through the agent and straight from the directory; then two
// new agents on the same directory serve everything back.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	a := startAgent(t, data)
	server := []string{"--server", a.url}

	out := ok(t, dir, "", append([]string{"topic", "create", "orders", "--partitions", "3"}, server...)...)
	if out != "created topic orders: 3 partitions, retention forever, retention bytes unlimited\n" {
		t.Errorf("topic create printed %q", out)
	}

	// Keyed records: each lands where Kafka's partitioner puts its key.
	var input, wantOffsets strings.Builder
	byPartition := make([][]string, 3)
	for i := range 20 {
		key, value := fmt.Sprintf("user-%d", i%7), fmt.Sprintf("order-%d", i)
		p := stream.KafkaPartition([]byte(key), 3)
		fmt.Fprintf(&input, "%s:%s\n", key, value)
		fmt.Fprintf(&wantOffsets, "%d %d\n", p, len(byPartition[p]))
		byPartition[p] = append(byPartition[p], key+":"+value)
	}
	out = ok(t, dir, input.String(), append([]string{"produce", "orders", "--key-separator", ":", "--print-offsets"}, server...)...)
	if out != wantOffsets.String() {
		t.Errorf("produce printed\n%s\nwant\n%s", out, wantOffsets.String())
	}

	// One request, one timestamp: the merged order is partition by
	// partition, each in offset order.
	var wantValues, wantKeyed strings.Builder
	for _, recs := range byPartition {
		for _, kv := range recs {
			k, v, _ := strings.Cut(kv, ":")
			fmt.Fprintln(&wantValues, v)
			fmt.Fprintf(&wantKeyed, "%s=%s\n", k, v)
		}
	}
	if out := ok(t, dir, "", append([]string{"consume", "orders"}, server...)...); out != wantValues.String() {
		t.Errorf("consume via the agent printed\n%s\nwant\n%s", out, wantValues.String())
	}
	// Straight on the directory, while the agent runs.
	out = ok(t, dir, "", "consume", "orders", "--bucket", data, "--format", "json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 20 {
		t.Fatalf("consume --format json printed %d lines:\n%s", len(lines), out)
	}
	var first struct{ Timestamp int64 }
	json.Unmarshal([]byte(lines[0]), &first)
	i := 0
	for p, recs := range byPartition {
		for off, kv := range recs {
			k, v, _ := strings.Cut(kv, ":")
			want := fmt.Sprintf(`{"partition":%d,"offset":%d,"timestamp":%d,"key":%q,"value":%q,"headers":[]}`, p, off, first.Timestamp, k, v)
			if lines[i] != want {
				t.Errorf("json line %d: %s\nwant %s", i, lines[i], want)
			}
			i++
		}
	}
	// One partition, from an offset, with keys, at most 2.
	want := strings.Join(strings.Split(wantKeyedOf(byPartition[1]), "\n")[1:3], "\n") + "\n"
	if out := ok(t, dir, "", append([]string{"consume", "orders", "--partition", "1", "--from", "1", "--max", "2", "--key-separator", "="}, server...)...); out != want {
		t.Errorf("consume --partition 1 --from 1 --max 2 printed %q, want %q", out, want)
	}
	describe := ok(t, dir, "", append([]string{"topic", "describe", "orders"}, server...)...)
	for p, recs := range byPartition {
		row := regexp.MustCompile(fmt.Sprintf(`(?m)^\s+%d\s+0\s+%d\s+%d\s+\d+\s*$`, p, len(recs), len(recs)))
		if !row.MatchString(describe) {
			t.Errorf("describe has no row for partition %d with %d records:\n%s", p, len(recs), describe)
		}
	}
	a.stop(t)

	// Two new agents on the same directory.
	b, c := startAgent(t, data), startAgent(t, data)
	late := "user-late:order-late"
	latePart := stream.KafkaPartition([]byte("user-late"), 3)
	out = ok(t, dir, late+"\n", "produce", "orders", "--key-separator", ":", "--print-offsets", "--server", b.url)
	if want := fmt.Sprintf("%d %d\n", latePart, len(byPartition[latePart])); out != want {
		t.Errorf("produce via the second agent printed %q, want %q", out, want)
	}
	wantAll := wantKeyed.String() + "user-late=order-late\n" // a later timestamp: last
	for _, args := range [][]string{{"--server", b.url}, {"--server", c.url}, {"--bucket", data}} {
		if out := ok(t, dir, "", append([]string{"consume", "orders", "--key-separator", "="}, args...)...); out != wantAll {
			t.Errorf("consume %v printed\n%s\nwant\n%s", args, out, wantAll)
		}
	}

	// A follower on one agent wakes up for a record written through the
	// other.
	end := len(byPartition[0])
	if latePart == 0 {
		end++
	}
	follower := exec.Command(twowayBin, "consume", "orders", "--server", c.url, "--follow", "--partition", "0", "--from", fmt.Sprint(end), "--max", "1")
	var fout, ferr bytes.Buffer
	follower.Stdout, follower.Stderr = &fout, &ferr
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follower.Wait() }()
	time.Sleep(100 * time.Millisecond)
	ok(t, dir, "news\n", "produce", "orders", "--partition", "0", "--server", b.url)
	select {
	case err := <-done:
		if err != nil || fout.String() != "news\n" {
			t.Errorf("follower: %v, printed %q, stderr %q", err, fout.String(), ferr.String())
		}
	case <-time.After(20 * time.Second):
		follower.Process.Kill()
		t.Fatal("the follower did not get the record")
	}

	// Ctrl-C ends --follow cleanly.
	follower = exec.Command(twowayBin, "consume", "orders", "--server", b.url, "--follow", "--from", "latest")
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- follower.Wait() }()
	// Time for the binary to start and reach its signal handling (its
	// package initialization alone takes over 100 ms: iceberg-go's).
	time.Sleep(2 * time.Second)
	follower.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("consume --follow after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		follower.Process.Kill()
		t.Fatal("consume --follow did not stop on SIGINT")
	}
	b.stop(t)
	c.stop(t)
}

func wantKeyedOf(recs []string) string {
	var sb strings.Builder
	for _, kv := range recs {
		k, v, _ := strings.Cut(kv, ":")
		fmt.Fprintf(&sb, "%s=%s\n", k, v)
	}
	return sb.String()
}

// The topic commands, embedded on a directory.
func TestTopicCommands(t *testing.T) {
	dir := t.TempDir() // the default bucket, ./twoway-data, is in here
	ok(t, dir, "", "topic", "create", "--retention", "36h", "--retention-bytes", "1GiB", "events", "--partitions", "2")
	ok(t, dir, "", "topic", "create", "audit")
	out := ok(t, dir, "", "topic", "list")
	want := "NAME    PARTITIONS  RETENTION  RETENTION BYTES\n" +
		"audit   1           forever    unlimited\n" +
		"events  2           36h        1GiB\n"
	if out != want {
		t.Errorf("topic list:\n%s\nwant\n%s", out, want)
	}
	if out := ok(t, dir, "", "topic", "alter", "events", "--retention", "7d", "--retention-bytes", "unlimited"); out != "topic events: retention 7d, retention bytes unlimited\n" {
		t.Errorf("topic alter printed %q", out)
	}
	if out := ok(t, dir, "", "topic", "add-partitions", "events", "--partitions", "4"); out != "topic events: 4 partitions\n" {
		t.Errorf("topic add-partitions printed %q", out)
	}
	ok(t, dir, "a\nb\nc\n", "produce", "events", "--partition", "3")
	var topic struct {
		Name          string
		Partitions    int
		RetentionMs   int64 `json:"retention_ms"`
		PartitionInfo []struct {
			Partition   int
			StartOffset int64 `json:"start_offset"`
			EndOffset   int64 `json:"end_offset"`
		} `json:"partition_info"`
	}
	if err := json.Unmarshal([]byte(ok(t, dir, "", "topic", "describe", "events", "--json")), &topic); err != nil {
		t.Fatal(err)
	}
	if topic.Name != "events" || topic.Partitions != 4 || topic.RetentionMs != 7*86400000 || len(topic.PartitionInfo) != 4 || topic.PartitionInfo[3].EndOffset != 3 {
		t.Errorf("describe --json: %+v", topic)
	}
	if out := ok(t, dir, "", "topic", "delete", "audit"); out != "deleted topic audit\n" {
		t.Errorf("topic delete printed %q", out)
	}
	var list []struct{ Name string }
	json.Unmarshal([]byte(ok(t, dir, "", "topic", "list", "--json")), &list)
	if len(list) != 1 || list[0].Name != "events" {
		t.Errorf("list --json after delete: %+v", list)
	}

	// Failures: one line, exit 1.
	fails(t, dir, 1, "topic already exists: events", "", "topic", "create", "events")
	fails(t, dir, 1, "unknown topic: audit", "", "topic", "describe", "audit")
	fails(t, dir, 1, "unknown topic: audit", "", "topic", "delete", "audit")
	fails(t, dir, 1, "can only grow", "", "topic", "add-partitions", "events", "--partitions", "2")
	fails(t, dir, 1, "invalid topic name", "", "topic", "create", "no/slash")
	// Usage errors: exit 2.
	for _, c := range []struct {
		want string
		args []string
	}{
		{"topic: no command given", []string{"topic"}},
		{`topic: unknown command "make"`, []string{"topic", "make"}},
		{"topic create: no topic name given", []string{"topic", "create"}},
		{`topic create: unexpected argument "b"`, []string{"topic", "create", "a", "b"}},
		{`invalid duration "7 days"`, []string{"topic", "create", "a", "--retention", "7 days"}},
		{`invalid size "lots"`, []string{"topic", "create", "a", "--retention-bytes", "lots"}},
		{"--partitions 0 out of range", []string{"topic", "create", "a", "--partitions", "0"}},
		{"nothing to change", []string{"topic", "alter", "events"}},
		{"--partitions is required", []string{"topic", "add-partitions", "events"}},
		{"give --server or --bucket, not both", []string{"topic", "list", "--server", "http://x", "--bucket", "y"}},
		{"invalid server URL", []string{"topic", "list", "--server", "ftp://x"}},
		{"produce: no topic given", []string{"produce"}},
		{`"x" is not a partition number`, []string{"produce", "t", "--partition", "x"}},
		{"consume: no topic given", []string{"consume"}},
		{"--from 5 needs --partition", []string{"consume", "t", "--from", "5"}},
		{`--from "soon"`, []string{"consume", "t", "--from", "soon"}},
		{`--format "xml"`, []string{"consume", "t", "--format", "xml"}},
		{"--max -1", []string{"consume", "t", "--max", "-1"}},
	} {
		r := fails(t, dir, 2, c.want, "", c.args...)
		if !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("twoway %v printed no usage", c.args)
		}
	}
}

func TestProduceAndConsumeEdgeCases(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "", "topic", "create", "t", "--partitions", "2")
	// CRLF, an empty line, a last line without its newline, bytes that are
	// not UTF-8.
	out := ok(t, dir, "one\r\n\nthree\xff\nfour", "produce", "t", "--partition", "1", "--print-offsets")
	if out != "1 0\n1 1\n1 2\n1 3\n" {
		t.Errorf("produce printed %q", out)
	}
	if out := ok(t, dir, "", "consume", "t", "--partition", "1"); out != "one\n\nthree\xff\nfour\n" {
		t.Errorf("consume printed %q", out)
	}
	out = ok(t, dir, "", "consume", "t", "--partition", "1", "--from", "2", "--format", "json")
	if !strings.Contains(out, `"offset":2,`) || !strings.Contains(out, `"value_b64":"dGhyZWX/"`) || !strings.Contains(out, `"value":"four"`) {
		t.Errorf("json: %s", out)
	}
	if out := ok(t, dir, "", "consume", "t", "--partition", "0", "--from", "latest"); out != "" {
		t.Errorf("consume --from latest printed %q", out)
	}

	fails(t, dir, 1, "--from 9 is out of range: partition 1 has offsets 0 to 4", "", "consume", "t", "--partition", "1", "--from", "9")

	// A line without the separator stops produce; the lines before it are
	// in.
	r := fails(t, dir, 1, `line 3 has no key separator "="`, "k=a\nk=b\nno separator\nk=d\n", "produce", "t", "--key-separator", "=", "--print-offsets")
	p, base := stream.KafkaPartition([]byte("k"), 2), 0
	if p == 1 {
		base = 4
	}
	if want := fmt.Sprintf("%d %d\n%d %d\n", p, base, p, base+1); r.stdout != want {
		t.Errorf("offsets printed before the failure: %q, want %q", r.stdout, want)
	}
	fails(t, dir, 1, "unknown topic: nope", "x\n", "produce", "nope")
	fails(t, dir, 1, "unknown partition", "x\n", "produce", "t", "--partition", "9")
	fails(t, dir, 1, "unknown topic: nope", "", "consume", "nope")
	fails(t, dir, 1, "topic t has partitions 0 to 1, not 5", "", "consume", "t", "--partition", "5")
	fails(t, dir, 1, "cannot reach the agent at http://127.0.0.1:1", "", "consume", "t", "--server", "127.0.0.1:1")
	// Nothing on stdin: nothing produced, success.
	if out := ok(t, dir, "", "produce", "t", "--print-offsets"); out != "" {
		t.Errorf("produce of nothing printed %q", out)
	}
}

// Interactive use: a line typed is sent without waiting for more.
func TestProduceInteractive(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "", "topic", "create", "chat")
	cmd := exec.Command(twowayBin, "produce", "chat", "--print-offsets")
	cmd.Dir = dir
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	rd := bufio.NewReader(stdout)
	for i := range 3 {
		io.WriteString(stdin, fmt.Sprintf("message %d\n", i))
		got := make(chan string, 1)
		go func() { l, _ := rd.ReadString('\n'); got <- l }()
		select {
		case l := <-got:
			if l != fmt.Sprintf("0 %d\n", i) {
				t.Fatalf("line %d acknowledged as %q", i, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d was not sent while stdin stayed open", i)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Kafka topic configs from the command line: --config on create and alter,
// --delete-config, shown by describe; a bad one names itself.
func TestTopicConfigCommands(t *testing.T) {
	dir := t.TempDir()
	ok(t, dir, "", "topic", "create", "kv", "--config", "cleanup.policy=compact", "--config", "max.message.bytes=10485760", "--config", "segment.bytes=1048576")
	out := ok(t, dir, "", "topic", "describe", "kv")
	for _, want := range []string{"cleanup.policy     compact\n", "max.message.bytes  10485760\n", "segment.bytes      1048576\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("topic describe does not show %q:\n%s", want, out)
		}
	}
	ok(t, dir, "", "topic", "alter", "kv", "--config", "cleanup.policy=compact,delete", "--delete-config", "segment.bytes")
	var topic struct {
		Configs map[string]string `json:"configs"`
	}
	if err := json.Unmarshal([]byte(ok(t, dir, "", "topic", "describe", "kv", "--json")), &topic); err != nil {
		t.Fatal(err)
	}
	if len(topic.Configs) != 2 || topic.Configs["cleanup.policy"] != "compact,delete" || topic.Configs["max.message.bytes"] != "10485760" {
		t.Errorf("configs after alter: %v", topic.Configs)
	}
	fails(t, dir, 1, `unknown topic config "segment.bites"`, "", "topic", "create", "bad", "--config", "segment.bites=1")
	fails(t, dir, 1, "cleanup.policy", "", "topic", "alter", "kv", "--config", "cleanup.policy=never")
	fails(t, dir, 2, "give a config as NAME=VALUE", "", "topic", "create", "bad", "--config", "cleanup.policy")
}
