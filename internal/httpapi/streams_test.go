package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/stream"
)

func fileBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hintsFor turns commit hints off for a service meant to lag (polling an
// hour apart), which hints would wake.
func hintsFor(pollMin time.Duration) string {
	if pollMin >= time.Hour {
		return "off"
	}
	return ""
}

// openService opens a Service that polls the log for others' commits
// every pollMin to pollMax.
func openService(t *testing.T, b bucket.Bucket, pollMin, pollMax time.Duration) *stream.Service {
	t.Helper()
	svc, err := stream.Open(context.Background(), b, stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: pollMin, PollMax: pollMax,
		NoJanitor: true, Logger: quietLogger(), HintAddr: hintsFor(pollMin),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// newAPI is an agent's HTTP API over a real Service on a directory.
func newAPI(t *testing.T, b bucket.Bucket, cfg httpapi.Config) (*httpapi.Server, *stream.Service) {
	t.Helper()
	svc := openService(t, b, time.Millisecond, 10*time.Millisecond)
	cfg.Logger = quietLogger()
	srv := httpapi.New(cfg)
	httpapi.RegisterStreams(srv, svc)
	return srv, svc
}

type response struct {
	code int
	body string
	hdr  http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func do(t *testing.T, h http.Handler, method, path, body string, header ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Body.String(), rec.Header()}
}

// must runs a request that must answer want.
func must(t *testing.T, h http.Handler, want int, method, path, body string, header ...string) response {
	t.Helper()
	r := do(t, h, method, path, body, header...)
	if r.code != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, r.code, want, r.body)
	}
	return r
}

func TestTopicLifecycle(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	r := must(t, srv, 201, "POST", "/v1/topics", `{"name":"orders","partitions":3,"retention":"7d","retention_bytes":1048576}`)
	if loc := r.hdr.Get("Location"); loc != "/v1/topics/orders" {
		t.Errorf("Location %q", loc)
	}
	var topic httpapi.Topic
	json.Unmarshal([]byte(r.body), &topic)
	if topic.Name != "orders" || topic.Partitions != 3 || topic.RetentionMs != 7*24*3600*1000 || topic.RetentionBytes != 1<<20 || topic.CreatedMs == 0 || len(topic.PartitionInfo) != 3 {
		t.Errorf("created %+v", topic)
	}
	r = must(t, srv, 409, "POST", "/v1/topics", `{"name":"orders","partitions":1}`)
	if c := r.json(t)["code"]; c != "topic_exists" {
		t.Errorf("code %v", c)
	}
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"audit"}`) // one partition, kept forever

	r = must(t, srv, 200, "GET", "/v1/topics", "")
	var list struct{ Topics []httpapi.Topic }
	json.Unmarshal([]byte(r.body), &list)
	if len(list.Topics) != 2 || list.Topics[0].Name != "audit" || list.Topics[1].Name != "orders" ||
		list.Topics[0].Partitions != 1 || list.Topics[0].RetentionMs != -1 || list.Topics[0].RetentionBytes != -1 {
		t.Errorf("list %+v", list.Topics)
	}

	r = must(t, srv, 200, "PATCH", "/v1/topics/orders", `{"retention":"36h"}`)
	json.Unmarshal([]byte(r.body), &topic)
	if topic.RetentionMs != 36*3600*1000 || topic.RetentionBytes != 1<<20 {
		t.Errorf("after PATCH: %+v", topic)
	}
	r = must(t, srv, 200, "PATCH", "/v1/topics/orders", `{"retention_ms":-1,"retention_bytes":-1}`)
	json.Unmarshal([]byte(r.body), &topic)
	if topic.RetentionMs != -1 || topic.RetentionBytes != -1 {
		t.Errorf("after PATCH: %+v", topic)
	}
	r = must(t, srv, 200, "POST", "/v1/topics/orders/partitions", `{"partitions":5}`)
	json.Unmarshal([]byte(r.body), &topic)
	if topic.Partitions != 5 || len(topic.PartitionInfo) != 5 {
		t.Errorf("after adding partitions: %+v", topic)
	}
	r = must(t, srv, 200, "GET", "/v1/topics/orders", "")
	json.Unmarshal([]byte(r.body), &topic)
	if topic.Partitions != 5 || topic.PartitionInfo[4] != (httpapi.Partition{Partition: 4}) {
		t.Errorf("describe: %+v", topic)
	}

	must(t, srv, 204, "DELETE", "/v1/topics/orders", "")
	for _, req := range [][2]string{{"GET", "/v1/topics/orders"}, {"DELETE", "/v1/topics/orders"}, {"GET", "/v1/topics/orders/partitions/0/records"}} {
		r = must(t, srv, 404, req[0], req[1], "")
		if c := r.json(t)["code"]; c != "unknown_topic" {
			t.Errorf("%s %s: code %v", req[0], req[1], c)
		}
	}
}

type produced struct {
	Offsets []httpapi.ProduceOffset
}

type readBody struct {
	Records        []httpapi.Record `json:"records"`
	NextOffset     int64            `json:"next_offset"`
	HighWatermark  int64            `json:"high_watermark"`
	LogStartOffset int64            `json:"log_start_offset"`
}

func read(t *testing.T, h http.Handler, path string) readBody {
	t.Helper()
	r := must(t, h, 200, "GET", path, "")
	var rb readBody
	if err := json.Unmarshal([]byte(r.body), &rb); err != nil {
		t.Fatal(err)
	}
	return rb
}

func TestProduceAndRead(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t","partitions":3}`)
	binary := []byte{0xff, 0x00, 0xfe}
	b64 := base64.StdEncoding.EncodeToString(binary)
	body := `[
		{"key":"alice","value":"one","headers":{"trace":"abc","trace":"def","gone":null}},
		{"key":"bob","value":"two","headers":[{"key":"h","value":"v"},{"key":"bin","value_b64":"` + b64 + `"}]},
		{"value_b64":"` + b64 + `","partition":2,"timestamp":1700000000000},
		{"key_b64":"` + b64 + `","partition":1},
		{"key":"alice","value":""},
		{"partition":0}
	]`
	r := must(t, srv, 200, "POST", "/v1/topics/t/records", body, "Content-Type", "application/json")
	var res produced
	json.Unmarshal([]byte(r.body), &res)
	alice, bob := stream.KafkaPartition([]byte("alice"), 3), stream.KafkaPartition([]byte("bob"), 3)
	wantParts := []int32{alice, bob, 2, 1, alice, 0}
	if len(res.Offsets) != 6 {
		t.Fatalf("offsets %+v", res.Offsets)
	}
	next := map[int32]int64{}
	for i, o := range res.Offsets {
		if o.Partition != wantParts[i] || o.Offset != next[o.Partition] || o.Error != "" {
			t.Errorf("record %d: %+v, want partition %d offset %d", i, o, wantParts[i], next[o.Partition])
		}
		next[o.Partition]++
	}

	// Read each record back where the answer said it is.
	find := func(i int) httpapi.Record {
		o := res.Offsets[i]
		rb := read(t, srv, fmt.Sprintf("/v1/topics/t/partitions/%d/records?offset=%d&max=1", o.Partition, o.Offset))
		if len(rb.Records) != 1 || rb.Records[0].Offset != o.Offset || rb.NextOffset != o.Offset+1 || rb.HighWatermark != next[o.Partition] || rb.LogStartOffset != 0 {
			t.Fatalf("read of record %d: %+v", i, rb)
		}
		return rb.Records[0]
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	rec := find(0)
	hs, _ := json.Marshal(rec.Headers)
	if str(rec.Key) != "alice" || str(rec.Value) != "one" || string(hs) != `[{"key":"trace","value":"abc"},{"key":"trace","value":"def"},{"key":"gone"}]` {
		t.Errorf("record 0: key %s value %s headers %s", str(rec.Key), str(rec.Value), hs)
	}
	if now := time.Now().UnixMilli(); rec.Timestamp < now-60000 || rec.Timestamp > now {
		t.Errorf("record 0 has timestamp %d, not the agent's clock", rec.Timestamp)
	}
	rec = find(1)
	hs, _ = json.Marshal(rec.Headers)
	if string(hs) != `[{"key":"h","value":"v"},{"key":"bin","value_b64":"`+b64+`"}]` {
		t.Errorf("record 1 headers %s", hs)
	}
	rec = find(2)
	if rec.Key != nil || rec.KeyB64 != nil || rec.Value != nil || str(rec.ValueB64) != b64 || rec.Timestamp != 1700000000000 || len(rec.Headers) != 0 {
		t.Errorf("record 2: %+v", rec)
	}
	if rec = find(3); str(rec.KeyB64) != b64 || rec.Value != nil || rec.ValueB64 != nil {
		t.Errorf("record 3: %+v", rec)
	}
	if rec = find(4); str(rec.Value) != "" {
		t.Errorf("record 4 has value %s, want empty", str(rec.Value))
	}
	if rec = find(5); rec.Key != nil || rec.Value != nil {
		t.Errorf("record 5: %+v, want null key and value", rec)
	}

	// The raw JSON of a record, as documented.
	r = must(t, srv, 200, "GET", fmt.Sprintf("/v1/topics/t/partitions/2/records?offset=%d", res.Offsets[2].Offset), "")
	if !strings.Contains(r.body, `{"partition":2,"offset":`+fmt.Sprint(res.Offsets[2].Offset)+`,"timestamp":1700000000000,"value_b64":"/wD+","headers":[]}`) {
		t.Errorf("record JSON: %s", r.body)
	}
}

func TestProduceNDJSON(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t","partitions":1}`)
	ndjson := "{\"value\":\"a\"}\n{\"key\":\"k\",\"value\":\"b\"}\r\n\n{\"value\":\"c\",\"headers\":{\"x\":\"y\"}}"
	for _, ct := range []string{"application/x-ndjson", ""} { // declared, then detected
		r := must(t, srv, 200, "POST", "/v1/topics/t/records", ndjson, "Content-Type", ct)
		var res produced
		json.Unmarshal([]byte(r.body), &res)
		if len(res.Offsets) != 3 {
			t.Fatalf("offsets %s", r.body)
		}
	}
	rb := read(t, srv, "/v1/topics/t/partitions/0/records")
	var got []string
	for _, r := range rb.Records {
		got = append(got, *r.Value)
	}
	if strings.Join(got, ",") != "a,b,c,a,b,c" || rb.NextOffset != 6 || rb.HighWatermark != 6 {
		t.Errorf("read %v, next %d", got, rb.NextOffset)
	}
}

// Records without a partition: keyed ones go where Kafka's partitioner
// puts them, the others are spread.
func TestProducePartitioning(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t","partitions":7}`)
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "{\"key\":\"user-%d\",\"value\":\"%d\"}\n", i, i)
	}
	for range 70 {
		sb.WriteString("{\"value\":\"unkeyed\"}\n")
	}
	r := must(t, srv, 200, "POST", "/v1/topics/t/records", sb.String())
	var res produced
	json.Unmarshal([]byte(r.body), &res)
	unkeyed := map[int32]int{}
	for i, o := range res.Offsets {
		if i < 200 {
			if want := stream.KafkaPartition(fmt.Appendf(nil, "user-%d", i), 7); o.Partition != want {
				t.Errorf("user-%d on partition %d, want %d", i, o.Partition, want)
			}
		} else {
			unkeyed[o.Partition]++
		}
	}
	if len(unkeyed) != 7 {
		t.Errorf("unkeyed records went to %d of 7 partitions: %v", len(unkeyed), unkeyed)
	}
	// One request, one commit: every partition's records are contiguous.
	for p := range int32(7) {
		rb := read(t, srv, fmt.Sprintf("/v1/topics/t/partitions/%d/records?max=10000", p))
		if int64(len(rb.Records)) != rb.HighWatermark {
			t.Errorf("partition %d: read %d of %d", p, len(rb.Records), rb.HighWatermark)
		}
	}
}

func TestReadOffsets(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t"}`)
	var sb strings.Builder
	for i := range 10 {
		fmt.Fprintf(&sb, "{\"value\":\"%d\"}\n", i)
	}
	must(t, srv, 200, "POST", "/v1/topics/t/records", sb.String())
	values := func(rb readBody) string {
		var vs []string
		for _, r := range rb.Records {
			vs = append(vs, *r.Value)
		}
		return strings.Join(vs, ",")
	}
	for _, c := range []struct {
		query string
		want  string
		next  int64
	}{
		{"", "0,1,2,3,4,5,6,7,8,9", 10},
		{"?offset=earliest&max=3", "0,1,2", 3},
		{"?offset=4&max=2", "4,5", 6},
		{"?offset=9&max=100000", "9", 10},
		{"?offset=10", "", 10},
		{"?offset=latest", "", 10},
		{"?offset=latest&wait=20ms", "", 10},
		{"?offset=8&wait=5s", "8,9", 10}, // data is there: no waiting
		{"?wait=0", "0,1,2,3,4,5,6,7,8,9", 10},
	} {
		rb := read(t, srv, "/v1/topics/t/partitions/0/records"+c.query)
		if got := values(rb); got != c.want || rb.NextOffset != c.next || rb.HighWatermark != 10 || rb.LogStartOffset != 0 {
			t.Errorf("%s: %q next %d hw %d, want %q next %d", c.query, got, rb.NextOffset, rb.HighWatermark, c.want, c.next)
		}
	}
	r := must(t, srv, 416, "GET", "/v1/topics/t/partitions/0/records?offset=11", "")
	m := r.json(t)
	if m["code"] != "offset_out_of_range" || m["log_start_offset"] != 0.0 || m["high_watermark"] != 10.0 || m["offset"] != 11.0 {
		t.Errorf("out of range: %s", r.body)
	}
	if !strings.Contains(m["error"].(string), "valid offsets are 0 to 10") {
		t.Errorf("message %q", m["error"])
	}
	r = must(t, srv, 404, "GET", "/v1/topics/t/partitions/1/records", "")
	if m := r.json(t); m["code"] != "unknown_partition" {
		t.Errorf("unknown partition: %s", r.body)
	}
}

func TestLongPoll(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t"}`)

	start := time.Now()
	got := make(chan readBody, 1)
	go func() {
		resp, err := http.Get(ts.URL + "/v1/topics/t/partitions/0/records?offset=0&wait=20s")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		defer resp.Body.Close()
		var rb readBody
		json.NewDecoder(resp.Body).Decode(&rb)
		got <- rb
	}()
	time.Sleep(50 * time.Millisecond)
	must(t, srv, 200, "POST", "/v1/topics/t/records", `{"value":"wake up"}`)
	select {
	case rb := <-got:
		if len(rb.Records) != 1 || *rb.Records[0].Value != "wake up" {
			t.Fatalf("long poll answered %+v", rb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the produce did not wake the long poll")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("long poll took %v", d)
	}
}

// Another agent's writes: a describe sees them at once, and a long poll on
// this agent wakes up for them.
func TestAcrossAgents(t *testing.T) {
	b := fileBucket(t)
	a1, _ := newAPI(t, b, httpapi.Config{})
	// The second agent polls the log rarely: only Sync and the wake-up
	// of its tail make it see the first agent's commits.
	svc2 := openService(t, b, 200*time.Millisecond, 200*time.Millisecond)
	a2 := httpapi.New(httpapi.Config{Logger: quietLogger()})
	httpapi.RegisterStreams(a2, svc2)

	must(t, a1, 201, "POST", "/v1/topics", `{"name":"t","partitions":2}`)
	// a2 has not seen the topic: produce and read catch up instead of 404.
	must(t, a2, 200, "POST", "/v1/topics/t/records", `{"value":"from a2","partition":1}`)
	must(t, a1, 200, "POST", "/v1/topics/t/records", `{"value":"from a1","partition":1}`)
	var topic httpapi.Topic
	json.Unmarshal([]byte(must(t, a2, 200, "GET", "/v1/topics/t", "").body), &topic)
	if topic.PartitionInfo[1].EndOffset != 2 {
		t.Errorf("describe on a2 right after a1's produce: %+v", topic.PartitionInfo)
	}
	rb := read(t, a1, "/v1/topics/t/partitions/1/records?offset=1")
	if len(rb.Records) != 1 || *rb.Records[0].Value != "from a1" {
		t.Errorf("read %+v", rb)
	}

	done := make(chan readBody, 1)
	go func() { done <- read(t, a2, "/v1/topics/t/partitions/0/records?offset=0&wait=20s") }()
	time.Sleep(20 * time.Millisecond)
	must(t, a1, 200, "POST", "/v1/topics/t/records", `{"value":"ping","partition":0}`)
	select {
	case rb := <-done:
		if len(rb.Records) != 1 || *rb.Records[0].Value != "ping" {
			t.Errorf("long poll on a2: %+v", rb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a1's produce did not wake a2's long poll")
	}
}

// Bad input: the documented status and code, the field named, and nothing
// changed.
func TestBadRequestsChangeNothing(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{MaxBodyBytes: 4096})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t","partitions":2}`)
	must(t, srv, 200, "POST", "/v1/topics/t/records", `[{"key":"k","value":"v"},{"value":"w","partition":1}]`)
	snapshot := func() string {
		return must(t, srv, 200, "GET", "/v1/topics", "").body + must(t, srv, 200, "GET", "/v1/topics/t", "").body
	}
	before := snapshot()
	big := `[{"value":"` + strings.Repeat("x", 5000) + `"}]`

	for _, c := range []struct {
		method, path, body string
		status             int
		code, field        string
		msg                string // part of the message
	}{
		// Topics.
		{"POST", "/v1/topics", ``, 400, "bad_request", "", "empty"},
		{"POST", "/v1/topics", `{"name":"x"`, 400, "bad_request", "", "invalid JSON"},
		{"POST", "/v1/topics", `["x"]`, 400, "bad_request", "", "JSON object"},
		{"POST", "/v1/topics", `{"name":"x","partitons":2}`, 400, "bad_request", "partitons", `partitons: unknown field`},
		{"POST", "/v1/topics", `{"name":"x","partitions":"2"}`, 400, "bad_request", "partitions", "want an integer"},
		{"POST", "/v1/topics", `{"name":"x","partitions":1e10}`, 400, "bad_request", "partitions", "int32"},
		{"POST", "/v1/topics", `{"name":"x"} {}`, 400, "bad_request", "", "after the object"},
		{"POST", "/v1/topics", `{"name":"a/b"}`, 400, "invalid_topic", "", "a/b"},
		{"POST", "/v1/topics", `{"name":"x","partitions":0}`, 400, "invalid_config", "", "partitions"},
		{"POST", "/v1/topics", `{"name":"x","partitions":10001}`, 400, "invalid_config", "", "partitions"},
		{"POST", "/v1/topics", `{"name":"x","retention":"7x"}`, 400, "bad_request", "retention", "unknown unit"},
		{"POST", "/v1/topics", `{"name":"x","retention":"7d","retention_ms":5}`, 400, "bad_request", "retention", "not both"},
		{"POST", "/v1/topics", `{"name":"x","retention_ms":0}`, 400, "invalid_config", "", "retention_ms"},
		{"POST", "/v1/topics", `{"name":"x","retention_bytes":-5}`, 400, "invalid_config", "", "retention_bytes"},
		{"POST", "/v1/topics", `{"name":"t"}`, 409, "topic_exists", "", "t"},
		{"PATCH", "/v1/topics/t", `{}`, 400, "bad_request", "", "nothing to change"},
		{"PATCH", "/v1/topics/t", `{"partitions":3}`, 400, "bad_request", "partitions", "unknown field"},
		{"PATCH", "/v1/topics/t", `{"retention":"-1d"}`, 400, "bad_request", "retention", "negative"},
		{"PATCH", "/v1/topics/nope", `{"retention":"1d"}`, 404, "unknown_topic", "", "nope"},
		{"POST", "/v1/topics/t/partitions", `{}`, 400, "bad_request", "partitions", "partition count"},
		{"POST", "/v1/topics/t/partitions", `{"partitions":2}`, 400, "invalid_config", "", "only grow"},
		{"POST", "/v1/topics/t/partitions", `{"partitions":1}`, 400, "invalid_config", "", "only grow"},
		{"POST", "/v1/topics/nope/partitions", `{"partitions":4}`, 404, "unknown_topic", "", "nope"},
		{"DELETE", "/v1/topics/nope", ``, 404, "unknown_topic", "", "nope"},
		{"GET", "/v1/topics/nope", ``, 404, "unknown_topic", "", "nope"},
		// Produce.
		{"POST", "/v1/topics/t/records", ``, 400, "bad_request", "", "empty"},
		{"POST", "/v1/topics/t/records", `[]`, 400, "bad_request", "", "no records"},
		{"POST", "/v1/topics/t/records", `[{"value":"a"},`, 400, "bad_request", "", "invalid JSON"},
		{"POST", "/v1/topics/t/records", `[{"value":"a"}] x`, 400, "bad_request", "", "after the array"},
		{"POST", "/v1/topics/t/records", `[{"value":"a"}, 5]`, 400, "bad_request", "", "records[1] (line 1): a record must be a JSON object"},
		{"POST", "/v1/topics/t/records", "{\"value\":\"a\"}\n{\"valeu\":\"b\"}", 400, "bad_request", "valeu", `records[1] (line 2): valeu: unknown field`},
		{"POST", "/v1/topics/t/records", "{\"value\":\"a\"}\n\n{\"value\":5}", 400, "bad_request", "value", "records[1] (line 3): value: want a string, got number"},
		{"POST", "/v1/topics/t/records", "{\"value\":\"a\"}\n{\"value\":\"b\"", 400, "bad_request", "", "invalid JSON"},
		{"POST", "/v1/topics/t/records", `{"key":"a","key_b64":"YQ=="}`, 400, "bad_request", "key", "not both"},
		{"POST", "/v1/topics/t/records", `{"value_b64":"!!"}`, 400, "bad_request", "value_b64", "base64"},
		{"POST", "/v1/topics/t/records", `{"value":"a","partition":-1}`, 400, "bad_request", "partition", "negative"},
		{"POST", "/v1/topics/t/records", `{"value":"a","partition":1.5}`, 400, "bad_request", "partition", "int32"},
		{"POST", "/v1/topics/t/records", `{"value":"a","timestamp":-3}`, 400, "bad_request", "timestamp", "negative"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":"x"}`, 400, "bad_request", "headers", "object"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":{"x":5}}`, 400, "bad_request", "headers.x", "string or null"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":[{"value":"v"}]}`, 400, "bad_request", "headers[0].key", "key"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":[{"key":"k","extra":1}]}`, 400, "bad_request", "headers[0].extra", "unknown field"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":[{"key":"k"},{"key":5}]}`, 400, "bad_request", "headers[1].key", "want a string"},
		{"POST", "/v1/topics/t/records", `{"value":"a","headers":["k"]}`, 400, "bad_request", "headers[0]", "must be an object"},
		{"POST", "/v1/topics/t/records", `[{"value":"a"},{"value":"b","partition":2}]`, 404, "unknown_partition", "", "partitions 0 to 1"},
		{"POST", "/v1/topics/nope/records", `{"value":"a"}`, 404, "unknown_topic", "", "nope"},
		{"POST", "/v1/topics/t/records", big, 413, "too_large", "", "4096 bytes"},
		{"POST", "/v1/topics", `{"name":"` + strings.Repeat("y", 5000) + `"}`, 413, "too_large", "", "4096 bytes"},
		// Read.
		{"GET", "/v1/topics/t/partitions/x/records", ``, 400, "bad_request", "partition", "partition number"},
		{"GET", "/v1/topics/t/partitions/-1/records", ``, 400, "bad_request", "partition", "partition number"},
		{"GET", "/v1/topics/t/partitions/2/records", ``, 404, "unknown_partition", "", "partitions 0 to 1"},
		{"GET", "/v1/topics/t/partitions/0/records?offset=-1", ``, 400, "bad_request", "offset", "earliest or latest"},
		{"GET", "/v1/topics/t/partitions/0/records?offset=first", ``, 400, "bad_request", "offset", "earliest or latest"},
		{"GET", "/v1/topics/t/partitions/0/records?max=0", ``, 400, "bad_request", "max", "record count"},
		{"GET", "/v1/topics/t/partitions/0/records?wait=soon", ``, 400, "bad_request", "wait", "invalid duration"},
		{"GET", "/v1/topics/t/partitions/0/records?ofset=1", ``, 400, "bad_request", "ofset", "unknown query parameter"},
		{"GET", "/v1/topics/t/partitions/0/records?offset=2", ``, 416, "offset_out_of_range", "", "valid offsets are 0 to 1"},
	} {
		r := do(t, srv, c.method, c.path, c.body)
		name := c.method + " " + c.path + " " + c.body
		if len(name) > 80 {
			name = name[:80]
		}
		if r.code != c.status {
			t.Errorf("%s: status %d, want %d: %s", name, r.code, c.status, r.body)
			continue
		}
		m := r.json(t)
		if m["code"] != c.code {
			t.Errorf("%s: code %v, want %s", name, m["code"], c.code)
		}
		if f, _ := m["field"].(string); f != c.field {
			t.Errorf("%s: field %q, want %q", name, f, c.field)
		}
		if msg, _ := m["error"].(string); !strings.Contains(msg, c.msg) {
			t.Errorf("%s: error %q does not say %q", name, msg, c.msg)
		}
		if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("bad requests changed the data:\nbefore %s\nafter  %s", before, after)
	}
}

// A batch the log refuses after the request was checked (here: the topic
// was deleted and made again with fewer partitions by another agent, which
// this agent had not seen yet) is reported per record.
func TestProducePartialFailure(t *testing.T) {
	b := fileBucket(t)
	svc1 := openService(t, b, time.Hour, time.Hour) // sees others' commits only when it commits
	a1 := httpapi.New(httpapi.Config{Logger: quietLogger()})
	httpapi.RegisterStreams(a1, svc1)
	a2, _ := newAPI(t, b, httpapi.Config{})

	must(t, a1, 201, "POST", "/v1/topics", `{"name":"t","partitions":3}`)
	must(t, a2, 204, "DELETE", "/v1/topics/t", "")
	must(t, a2, 201, "POST", "/v1/topics", `{"name":"t","partitions":1}`)

	r := must(t, a1, 404, "POST", "/v1/topics/t/records", `[{"value":"a","partition":0},{"value":"b","partition":2},{"value":"c","partition":0}]`)
	var e httpapi.Error
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatal(err)
	}
	want := []httpapi.ProduceOffset{{Partition: 0, Offset: 0}, {Partition: 2, Offset: -1, Code: "unknown_partition"}, {Partition: 0, Offset: 1}}
	if e.Code != "unknown_partition" || !strings.Contains(e.Message, "1 of 3 records were not appended") || len(e.Offsets) != 3 {
		t.Fatalf("answer %s", r.body)
	}
	for i, o := range e.Offsets {
		o.Error = ""
		if o != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, e.Offsets[i], want[i])
		}
	}
	if e.Offsets[1].Error == "" {
		t.Error("the failed record has no error message")
	}
}

// A shutdown ends long polls at once: they answer with what there is.
func TestShutdownEndsLongPolls(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{ShutdownTimeout: 30 * time.Second})
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"t"}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	c, err := httpapi.NewClient("http://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		res, err := c.Read(t.Context(), "t", 0, httpapi.OffsetLatest, 10, time.Minute)
		if err == nil && (len(res.Records) != 0 || res.NextOffset != 0) {
			err = fmt.Errorf("answer %+v", res)
		}
		polled <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-polled; err != nil {
		t.Errorf("long poll: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a long poll in flight", d)
	}
}
