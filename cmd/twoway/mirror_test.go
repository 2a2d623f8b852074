package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// linkProxy forwards TCP connections to a target while it is up; down, it
// drops every open connection and refuses new ones (an edge's link cut).
type linkProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
	// dropped counts connections a cut closed, refused the ones it did
	// not let through.
	dropped, refused int
}

func startLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.set(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *linkProxy) serve(c net.Conn) {
	p.mu.Lock()
	if !p.up {
		p.refused++
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if !p.up {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[s] = true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

func (p *linkProxy) set(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			c.Close()
			p.dropped++
		}
		p.conns = map[net.Conn]bool{}
	}
}

// The offline-first edge, end to end: an agent on a directory, with no
// way to the central bucket (MinIO behind a cut link), takes records from
// a Kafka producer and serves them to a Kafka consumer group; its mirror
// reports what it has not sent. The link then comes up flaky (connections
// dropped every second or two) while producing goes on; once it holds,
// the backlog drains, and a central agent on MinIO serves every record
// once, to a Kafka consumer, with its source offset.
func TestOfflineEdgeMirrorsOverFlakyLink(t *testing.T) {
	central := testS3URL(t, "edge")
	u, err := url.Parse(central)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	minio, err := url.Parse(q.Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	link := startLinkProxy(t, minio.Host)
	q.Set("endpoint", "http://"+link.ln.Addr().String())
	u.RawQuery = q.Encode()
	viaLink := u.String()

	edgeDir := t.TempDir()
	if r := twoway(t, "topic", "create", "telemetry", "--partitions", "3", "--bucket", edgeDir); r.code != 0 {
		t.Fatal(r.stderr)
	}
	edge := startMirroringAgent(t, edgeDir, "--mirror-to", viaLink, "--mirror-topics", "telemetry", "--mirror-name", "edge-1")

	cl, err := kgo.NewClient(kgo.SeedBrokers(edge.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	produced := map[string]bool{}
	produceSome := func(from, n int) {
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			v := fmt.Sprintf(`{"device":"d%d","reading":%d}`, i%17, i)
			produced[v] = true
			recs = append(recs, &kgo.Record{Topic: "telemetry", Key: fmt.Appendf(nil, "d%d", i%17), Value: []byte(v),
				Headers: []kgo.RecordHeader{{Key: "unit", Value: []byte("celsius")}}})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Offline: the edge produces and consumes on its own.
	produceSome(0, 300)
	group, err := kgo.NewClient(kgo.SeedBrokers(edge.kafka), kgo.ConsumerGroup("dashboard"), kgo.ConsumeTopics("telemetry"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	deadline := time.Now().Add(60 * time.Second)
	for seen < 300 && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := group.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(*kgo.Record) { seen++ })
	}
	group.Close()
	if seen != 300 {
		t.Fatalf("the offline edge served %d records to its consumer group, want 300", seen)
	}
	st := mirrorStatus(t, edge.http)
	if len(st.Mirrors) != 1 || st.Mirrors[0].Connected {
		t.Fatalf("status while offline: %+v", st)
	}
	lag := int64(0)
	for _, p := range st.Mirrors[0].Partitions {
		lag += p.LagRecords
	}
	if lag != 300 {
		t.Fatalf("offline lag %d records, want 300", lag)
	}

	// The link comes up, flaky, while the edge keeps producing.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 8 {
		link.set(true)
		produceSome(300+i*50, 25)
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		link.set(false)
		produceSome(300+i*50+25, 25) // the mirror meets the cut with records to send
		time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond)
	}
	link.set(true)
	total := 300 + 8*50
	eventually(t, 2*time.Minute, func() string { return fmt.Sprintf("%+v\n%s", mirrorStatus(t, edge.http), edge.logs.String()) }, func() bool {
		st := mirrorStatus(t, edge.http)
		if len(st.Mirrors) != 1 || !st.Mirrors[0].Connected {
			return false
		}
		n := int64(0)
		for _, p := range st.Mirrors[0].Partitions {
			if p.LagRecords != 0 {
				return false
			}
			n += p.Next
		}
		return n == int64(total)
	})

	// The central agent serves everything once.
	cen := startKafkaAgent(t, central)
	cons, err := kgo.NewClient(kgo.SeedBrokers(cen.kafka), kgo.ConsumeTopics("telemetry"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]string{}
	deadline = time.Now().Add(60 * time.Second)
	for len(got) < total && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cons.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			src := h["twoway.mirror.source"]
			if !strings.HasPrefix(src, fmt.Sprintf("telemetry/%d/", r.Partition)) || h["twoway.mirror.origin"] != "edge-1" || h["unit"] != "celsius" {
				t.Fatalf("central record %s/%d@%d headers %v", r.Topic, r.Partition, r.Offset, h)
			}
			if prev, dup := got[src]; dup {
				t.Fatalf("source record %s arrived twice (%s, %s)", src, prev, r.Value)
			}
			if !produced[string(r.Value)] {
				t.Fatalf("central holds a record never produced: %s", r.Value)
			}
			got[src] = string(r.Value)
		})
	}
	if len(got) != total {
		t.Fatalf("the central agent serves %d of the %d records", len(got), total)
	}
	values := map[string]bool{}
	for _, v := range got {
		values[v] = true
	}
	if len(values) != total {
		t.Fatalf("%d distinct values at the central agent, want %d", len(values), total)
	}
	if out := twoway(t, "mirror", "status", "--to", central, "--format", "json"); out.code != 0 || !strings.Contains(out.stdout, `"source": "edge-1"`) {
		t.Fatalf("mirror status --to: %d %s %s", out.code, out.stdout, out.stderr)
	}
	// The cuts dropped connections in use and refused new ones; the edge
	// stops cleanly.
	link.mu.Lock()
	dropped, refused := link.dropped, link.refused
	link.mu.Unlock()
	t.Logf("the link cuts dropped %d connections and refused %d", dropped, refused)
	if dropped == 0 || refused == 0 {
		t.Errorf("the link cuts met no connection (%d dropped, %d refused)", dropped, refused)
	}
	if err := edge.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-edge.exited:
		if err != nil || !strings.Contains(edge.logs.String(), "twoway stopped") {
			t.Fatalf("the edge agent exited with %v:\n%s", err, edge.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the edge agent did not stop on SIGINT:\n%s", edge.logs.String())
	}
}

type mirrorReport struct {
	Mirrors []struct {
		Connected  bool `json:"connected"`
		Partitions []struct {
			Next       int64 `json:"next"`
			LagRecords int64 `json:"lag_records"`
		} `json:"partitions"`
	} `json:"mirrors"`
}

func mirrorStatus(t *testing.T, base string) mirrorReport {
	t.Helper()
	var r mirrorReport
	if err := json.Unmarshal([]byte(httpGet(t, base+"/v1/mirrors")), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// startMirroringAgent is startKafkaAgent with more serve flags.
func startMirroringAgent(t *testing.T, bucket string, args ...string) *kafkaAgent {
	t.Helper()
	old := newServeCmd
	newServeCmd = func(bucket string) *exec.Cmd {
		return exec.Command(twowayBin, append([]string{"serve", "--bucket", bucket, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0"}, args...)...)
	}
	defer func() { newServeCmd = old }()
	return startKafkaAgent(t, bucket)
}

// Mistakes in the mirror's flags exit 2, naming what was wrong.
func TestMirrorUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mirror"}, "mirror: no --from given"},
		{[]string{"mirror", "--from", "a"}, "mirror: no --to given"},
		{[]string{"mirror", "--from", "a", "--to", "b"}, "mirror: no --topics given"},
		{[]string{"mirror", "--from", "a", "--to", "b", "--topics", "/x(/"}, "is not a regular expression"},
		{[]string{"mirror", "--from", "a", "--to", "a", "--topics", "t"}, "--from and --to are the same bucket"},
		{[]string{"mirror", "--from", "a", "--to", "b", "--topics", "t", "--rate", "fast"}, `invalid size "fast"`},
		{[]string{"mirror", "status"}, "give --to (a bucket) or --server (an agent)"},
		{[]string{"mirror", "--from", "a", "--to", "b", "--topics", "t", "--http", "0.0.0.0:0"}, "loopback only"},
		{[]string{"mirror", "status", "--to", "a", "--format", "xml"}, "--format must be text or json"},
		{[]string{"serve", "--mirror-topics", "t"}, "go with --mirror-to or --mirror-from"},
		{[]string{"serve", "--mirror-to", "a"}, "need --mirror-topics"},
		{[]string{"serve", "--mirror-to", "a", "--mirror-from", "b", "--mirror-topics", "t"}, "not both"},
		{[]string{"bench", "mirror", "--to", "x"}, "--from and --to are required"},
	} {
		r := twoway(t, c.args...)
		if r.code != 2 {
			t.Errorf("twoway %v exited %d, want 2: %s", c.args, r.code, r.stderr)
		}
		if first, _, _ := strings.Cut(r.stderr, "\n"); !strings.Contains(first, c.want) {
			t.Errorf("twoway %v: first line %q, want it to contain %q", c.args, first, c.want)
		}
	}
}

// twoway mirror on its own, between two directories: it runs until
// interrupted, a second run resumes without copying anything twice, and
// mirror status reads the positions from the buckets.
func TestMirrorCommand(t *testing.T) {
	dir := t.TempDir()
	edge, central := dir+"/edge", dir+"/central"
	if r := twoway(t, "topic", "create", "telemetry", "--partitions", "2", "--bucket", edge); r.code != 0 {
		t.Fatal(r.stderr)
	}
	produceLines := func(from, n int) {
		var sb strings.Builder
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&sb, "k%d:v%d\n", i, i)
		}
		cmd := exec.Command(twowayBin, "produce", "telemetry", "--key-separator", ":", "--bucket", edge)
		cmd.Stdin = strings.NewReader(sb.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("produce: %v: %s", err, out)
		}
	}
	run := func() {
		cmd := exec.Command(twowayBin, "mirror", "--from", edge, "--to", central, "--topics", "tele*", "--name", "edge-1", "--rate", "1MiB", "--http", "127.0.0.1:0")
		var logs lockedBuffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		httpLine := regexp.MustCompile(`http=(http://\S+)`)
		eventually(t, 60*time.Second, logs.String, func() bool { return httpLine.MatchString(logs.String()) })
		eventually(t, 60*time.Second, logs.String, func() bool {
			r := twoway(t, "mirror", "status", "--to", central, "--from", edge, "--topics", "telemetry", "--name", "edge-1", "--format", "json")
			var rep struct {
				Mirrors []struct {
					Partitions []struct{ LagRecords, Next int64 } `json:"partitions"`
				} `json:"mirrors"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Mirrors) != 1 || len(rep.Mirrors[0].Partitions) != 2 {
				return false
			}
			for _, p := range rep.Mirrors[0].Partitions {
				if p.LagRecords != 0 {
					return false
				}
			}
			return true
		})
		// --http serves the mirror's metrics and status, and nothing else.
		m := httpLine.FindStringSubmatch(logs.String())
		if m == nil {
			t.Fatalf("no http= in the mirror's log:\n%s", logs.String())
		}
		if body := httpGet(t, m[1]+"/metrics"); !strings.Contains(body, `twoway_mirror_lag_records{partition="0",source="edge-1",topic="telemetry"} 0`) {
			t.Fatalf("metrics without the mirror's lag:\n%s", body)
		}
		if resp, err := http.Post(m[1]+"/v1/topics", "application/json", strings.NewReader(`{"name":"x","partitions":1}`)); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("POST /v1/topics on the mirror's listener: %v %v", resp, err)
		}
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil || !strings.Contains(logs.String(), "mirror stopped") {
			t.Fatalf("mirror exited with %v:\n%s", err, logs.String())
		}
	}
	produceLines(0, 50)
	run()
	produceLines(50, 30)
	run()
	r := twoway(t, "consume", "telemetry", "--from", "earliest", "--format", "json", "--bucket", central)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 80 {
		t.Fatalf("%d records at the destination, want 80:\n%s", len(lines), r.stdout)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct {
			Headers []struct{ Key, Value string } `json:"headers"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		src := ""
		for _, h := range rec.Headers {
			if h.Key == "twoway.mirror.source" {
				src = h.Value
			}
		}
		if src == "" || seen[src] {
			t.Fatalf("record %s: source %q missing or seen twice", l, src)
		}
		seen[src] = true
	}
	if r := twoway(t, "mirror", "status", "--to", central); r.code != 0 || !strings.Contains(r.stdout, "edge-1") {
		t.Fatalf("mirror status --to: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
