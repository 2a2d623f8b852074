package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var formatter = kmsg.NewRequestFormatter(kmsg.FormatterClientID("protocol-test"))

func send(t testing.TB, c net.Conn, corr int32, req kmsg.Request) {
	t.Helper()
	if _, err := c.Write(formatter.AppendRequest(nil, req, corr)); err != nil {
		t.Fatal(err)
	}
}

// recv reads one response to req and checks its correlation id.
func recv(t testing.TB, c net.Conn, corr int32, req kmsg.Request) kmsg.Response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := readRawFrame(c)
	if err != nil {
		t.Fatalf("reading the response to %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		t.Fatalf("response has correlation id %d, want %d", got, corr)
	}
	body := frame[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != apiVersionsKey {
		body = body[1:] // empty tagged fields
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decoding %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

func roundTrip(t testing.TB, c net.Conn, corr int32, req kmsg.Request) kmsg.Response {
	t.Helper()
	send(t, c, corr, req)
	return recv(t, c, corr, req)
}

// expectClosed checks that the server closed c.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open (read %d bytes, err %v)", n, err)
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func apiVersionsWorks(t testing.TB, addr string) {
	t.Helper()
	c := dial(t, addr)
	resp := roundTrip(t, c, 1, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	var logs logBuffer
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.MaxFrameBytes = 1 << 20
	})
	addr := srv.Addr().String()

	// A connection that stays open through all of it.
	bystander := dial(t, addr)
	roundTrip(t, bystander, 1, kmsg.NewPtrApiVersionsRequest())

	cases := []struct {
		name  string
		frame []byte // written as is (size prefix included)
		log   string
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, 2<<20), "the limit is 1048576"},
		{"negative size", binary.BigEndian.AppendUint32(nil, 0xffffff00), "malformed"},
		{"short header", append(binary.BigEndian.AppendUint32(nil, 3), 0, 3, 0), "shorter than a request header"},
		{"bad client id", append(binary.BigEndian.AppendUint32(nil, 10), 0, 3, 0, 1, 0, 0, 0, 1, 0x7f, 0), "client id"},
		{"garbage body", func() []byte {
			// Metadata v1 claiming 1000 topics in 2 bytes.
			body := []byte{0, 3, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0xe8}
			return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
		}(), "Metadata v1 body"},
		{"unknown API key", append(binary.BigEndian.AppendUint32(nil, 10), 0x27, 0x0f, 0, 0, 0, 0, 0, 7, 0xff, 0xff), "unknown API key 9999"},
		{"unserved API", append(binary.BigEndian.AppendUint32(nil, 10), 0, 21, 0, 0, 0, 0, 0, 7, 0xff, 0xff), "DeleteRecords (key 21) is not supported"},
		{"unsupported version", append(binary.BigEndian.AppendUint32(nil, 10), 0, 0, 0, 1, 0, 0, 0, 7, 0xff, 0xff), "versions 3 to 13 are"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			waitFor(t, "log line "+tc.log, func() bool { return logs.contains(tc.log) })
			// The server still serves others.
			roundTrip(t, bystander, 2, kmsg.NewPtrMetadataRequest())
			apiVersionsWorks(t, addr)
		})
	}
}

// A frame that stops halfway leaves the server waiting for the rest only
// until the idle timeout, and others are served meanwhile.
func TestTruncatedFrame(t *testing.T) {
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := dial(t, srv.Addr().String())
	c.Write(append(binary.BigEndian.AppendUint32(nil, 100), 0, 18, 0, 0))
	apiVersionsWorks(t, srv.Addr().String())
	expectClosed(t, c)
}

func TestApiVersionsUnsupportedVersion(t *testing.T) {
	srv := testServer(t, testService(t, testBucket(t)))
	c := dial(t, srv.Addr().String())
	// ApiVersions v99 with a flexible header and a body of unknown shape.
	frame := []byte{0, 18, 0, 99, 0, 0, 0, 42, 0, 1, 'x', 0, 1, 2, 3}
	writeRawFrame(c, frame)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := readRawFrame(c)
	if err != nil {
		t.Fatal(err)
	}
	if corr := binary.BigEndian.Uint32(resp); corr != 42 {
		t.Fatalf("correlation id %d", corr)
	}
	var av kmsg.ApiVersionsResponse // v0
	if err := av.ReadFrom(resp[4:]); err != nil {
		t.Fatal(err)
	}
	if av.ErrorCode != kerr.UnsupportedVersion.Code || len(av.ApiKeys) == 0 {
		t.Fatalf("error %d with %d keys; want UNSUPPORTED_VERSION and the list", av.ErrorCode, len(av.ApiKeys))
	}
	// The connection stays usable at a version the server speaks.
	v3 := kmsg.NewPtrApiVersionsRequest()
	v3.Version = 3
	v3.ClientSoftwareName, v3.ClientSoftwareVersion = "test", "1"
	if r := roundTrip(t, c, 43, v3).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("v3 after v99: error %d", r.ErrorCode)
	}
}

// Pipelined requests are processed concurrently but answered in order: a
// long-polling fetch sent first is answered first, although the requests
// behind it finish earlier.
func TestPipelinedResponsesInOrder(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "p", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc)
	c := dial(t, srv.Addr().String())

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 300, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "p"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	start := time.Now()
	send(t, c, 1, fetch)
	reqs := []kmsg.Request{kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrApiVersionsRequest()}
	for i, r := range reqs {
		send(t, c, int32(i+2), r)
	}
	fr := recv(t, c, 1, fetch).(*kmsg.FetchResponse)
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("fetch answered after %v, before its max wait", time.Since(start))
	}
	if fr.SessionID != 0 || fr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch: session %d, error %d", fr.SessionID, fr.Topics[0].Partitions[0].ErrorCode)
	}
	for i, r := range reqs {
		recv(t, c, int32(i+2), r)
	}
}

// A long-polling fetch returns as soon as a record arrives.
func TestFetchWakesOnProduce(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "wake", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc)
	c := dial(t, srv.Addr().String())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes, fetch.SessionEpoch = 5000, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "wake"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	send(t, c, 7, fetch)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if _, _, err := svc.Produce(ctx, "wake", []stream.Batch{{Records: []records.Record{{Value: []byte("hi")}}}}); err != nil {
		t.Fatal(err)
	}
	fr := recv(t, c, 7, fetch).(*kmsg.FetchResponse)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("fetch answered %v after the produce", d)
	}
	p := fr.Topics[0].Partitions[0]
	if p.HighWatermark != 1 || len(p.RecordBatches) == 0 {
		t.Fatalf("high watermark %d with %d bytes", p.HighWatermark, len(p.RecordBatches))
	}
}

// With MaxInFlight requests outstanding the server stops reading: a client
// that pipelines more only waits, and every request is still answered, in
// order.
func TestBackpressure(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "bp", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc, func(c *Config) { c.MaxInFlight = 2 })
	c := dial(t, srv.Addr().String())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 100, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "bp"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	const n = 8
	start := time.Now()
	go func() {
		for i := range n {
			c.Write(formatter.AppendRequest(nil, fetch, int32(i)))
		}
	}()
	for i := range n {
		recv(t, c, int32(i), fetch)
	}
	// At most two 100ms fetches run at once.
	if d := time.Since(start); d < n/2*100*time.Millisecond {
		t.Fatalf("%d long polls with MaxInFlight 2 took %v: they ran with more concurrency", n, d)
	}
}

// Produce errors map to Kafka codes, partition by partition.
func TestProduceErrors(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "e", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc)
	c := dial(t, srv.Addr().String())

	good := records.Encode([]records.Record{{Timestamp: 5, Value: []byte("a")}, {Timestamp: 6, Value: []byte("b")}})
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 1
	gapped := records.Encode([]records.Record{{Timestamp: 5, Value: []byte("a")}})
	// Claim two offsets for one record: offsets would not be dense.
	binary.BigEndian.PutUint32(gapped[23:], 1)
	fixCRC(gapped)
	v1 := bytes.Clone(good)
	v1[16] = 1

	produce := func(acks int16, txn *string, topic string, parts map[int32][]byte) *kmsg.ProduceResponse {
		return roundTrip(t, c, 1, produceRequestWith(acks, txn, topic, parts)).(*kmsg.ProduceResponse)
	}
	codes := func(resp *kmsg.ProduceResponse) []int16 {
		var out []int16
		for _, p := range resp.Topics[0].Partitions {
			out = append(out, p.ErrorCode)
		}
		return out
	}
	check := func(name string, resp *kmsg.ProduceResponse, want ...int16) {
		t.Helper()
		got := codes(resp)
		if len(got) != len(want) {
			t.Fatalf("%s: %d partitions answered, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: partition %d error %d (%s), want %d", name, i, got[i], str(resp.Topics[0].Partitions[i].ErrorMessage), want[i])
			}
		}
	}
	check("corrupt", produce(-1, nil, "e", map[int32][]byte{0: good, 1: corrupt}), 0, kerr.CorruptMessage.Code)
	check("gapped offsets", produce(-1, nil, "e", map[int32][]byte{0: gapped}), kerr.InvalidRecord.Code)
	check("magic 1", produce(-1, nil, "e", map[int32][]byte{0: v1}), kerr.InvalidRecord.Code)
	check("empty", produce(-1, nil, "e", map[int32][]byte{0: nil}), kerr.InvalidRecord.Code)
	check("unknown partition", produce(1, nil, "e", map[int32][]byte{0: good, 2: good}), 0, kerr.UnknownTopicOrPartition.Code)
	check("unknown topic", produce(1, nil, "nope", map[int32][]byte{0: good}), kerr.UnknownTopicOrPartition.Code)
	marker := records.EncodeControl(1, 0, true, 0, time.Now().UnixMilli())
	check("control batch", produce(1, nil, "e", map[int32][]byte{0: marker}), kerr.InvalidRecord.Code)
	check("acks 2", produce(2, nil, "e", map[int32][]byte{0: good}), kerr.InvalidRequiredAcks.Code)

	// Only the good batches were appended, each at its own offsets.
	ti, _ := svc.Topic("e")
	if end := ti.PartitionsInfo[0].End; end != 4 {
		t.Fatalf("partition 0 ends at %d, want 4 (two good batches of two)", end)
	}
	if end := ti.PartitionsInfo[1].End; end != 0 {
		t.Fatalf("partition 1 ends at %d, want 0", end)
	}

	// acks=0 with an error closes the connection, as Kafka does.
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks = 9, 0
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "nope", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: good}}}}
	send(t, c, 9, req)
	expectClosed(t, c)
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32c(b[21:]))
}

// Sequence errors of idempotent producers keep their Kafka codes.
func TestProduceSequenceErrors(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "s", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc)
	c := dial(t, srv.Addr().String())
	ip := roundTrip(t, c, 1, kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
	if ip.ErrorCode != 0 || ip.ProducerID <= 0 {
		t.Fatalf("InitProducerID: error %d, id %d", ip.ErrorCode, ip.ProducerID)
	}
	batch := func(pid int64, epoch int16, seq int32) []byte {
		b := records.Encode([]records.Record{{Timestamp: 1, Value: []byte("x")}})
		binary.BigEndian.PutUint64(b[43:], uint64(pid))
		binary.BigEndian.PutUint16(b[51:], uint16(epoch))
		binary.BigEndian.PutUint32(b[53:], uint32(seq))
		fixCRC(b)
		return b
	}
	produce := func(raw []byte) kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "s", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: raw}}}}
		return roundTrip(t, c, 2, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	pid, epoch := ip.ProducerID, ip.ProducerEpoch
	steps := []struct {
		raw        []byte
		code       int16
		baseOffset int64
	}{
		{batch(pid, epoch, 0), 0, 0},
		{batch(pid, epoch, 1), 0, 1},
		{batch(pid, epoch, 1), 0, 1}, // a retry: the original offset
		{batch(pid, epoch, 5), kerr.OutOfOrderSequenceNumber.Code, -1},
		{batch(pid, epoch+1, 2), kerr.InvalidProducerEpoch.Code, -1},
		{batch(pid+1000, 0, 0), kerr.UnknownProducerID.Code, -1},
		{batch(pid, epoch, 2), 0, 2},
	}
	for i, s := range steps {
		p := produce(s.raw)
		if p.ErrorCode != s.code || p.BaseOffset != s.baseOffset {
			t.Fatalf("step %d: error %d base %d (%s), want error %d base %d", i, p.ErrorCode, p.BaseOffset, str(p.ErrorMessage), s.code, s.baseOffset)
		}
	}
	// A transactional producer needs a valid timeout; ending a
	// transaction nobody began fails.
	txn := "tx"
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &txn
	if r := roundTrip(t, c, 3, req).(*kmsg.InitProducerIDResponse); r.ErrorCode != kerr.InvalidTransactionTimeout.Code {
		t.Fatalf("transactional InitProducerID without a timeout: error %d", r.ErrorCode)
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID = txn
	if r := roundTrip(t, c, 4, end).(*kmsg.EndTxnResponse); r.ErrorCode == 0 {
		t.Fatal("EndTxn of an unknown transactional id succeeded")
	}
}

// The versions a current franz-go client negotiates, flexible ones
// included, are the ones exercised by the other tests.
func TestNegotiatedVersions(t *testing.T) {
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	var mu sync.Mutex
	used := map[int16]int16{}
	sniff := kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return &sniffConn{Conn: c, saw: func(key, version int16) {
			mu.Lock()
			used[key] = max(used[key], version)
			mu.Unlock()
		}}, nil
	})
	cl := testClient(t, addr, sniff, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createTopic(t, cl, "v", 1)
	want := testRecords("v", 1, 3)
	produceAll(t, cl, want)
	checkSame(t, want, consumeN(t, addr, "v", 3, sniff))
	mu.Lock()
	defer mu.Unlock()
	for key, min := range map[int16]int16{0: 9, 1: 12, 3: 9, 18: 3, 22: 2} {
		if used[key] < min {
			t.Errorf("%s negotiated at v%d, want a flexible version (v%d+)", kmsg.NameForKey(key), used[key], min)
		}
	}
	t.Logf("negotiated: %v", used)
}

// sniffConn reports the API key and version of every request written.
type sniffConn struct {
	net.Conn
	buf []byte
	saw func(key, version int16)
}

func (c *sniffConn) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 8 {
		n := int(binary.BigEndian.Uint32(c.buf))
		if len(c.buf) < 4+n {
			break
		}
		c.saw(int16(binary.BigEndian.Uint16(c.buf[4:])), int16(binary.BigEndian.Uint16(c.buf[6:])))
		c.buf = c.buf[4+n:]
	}
	return c.Conn.Write(p)
}

// A client that goes away with a request in flight is routine (kcat and
// other consumers exit with a fetch waiting for records): the server logs
// no warning about it, only a debug line, and keeps serving.
func TestClientGoneIsNoWarning(t *testing.T) {
	ctx := context.Background()
	var logs logBuffer
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "gone", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := dial(t, srv.Addr().String())
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes, fetch.SessionEpoch = 300, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "gone"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	// One write holding both requests: once the first is answered, the
	// server has read the second too, a fetch that waits for records.
	versions := kmsg.NewPtrApiVersionsRequest()
	both := append(formatter.AppendRequest(nil, versions, 1), formatter.AppendRequest(nil, fetch, 2)...)
	if _, err := c.Write(both); err != nil {
		t.Fatal(err)
	}
	recv(t, c, 1, versions)
	// Reset rather than close, as librdkafka does with responses unread:
	// the server's read fails at once and its write of the fetch response
	// fails too.
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the failed write of the fetch response", func() bool { return logs.contains("kafka client went away") })
	if logs.contains("level=WARN") || logs.contains("level=ERROR") {
		t.Errorf("a client going away was logged as a problem:\n%s", logs.buf.String())
	}
	apiVersionsWorks(t, srv.Addr().String())
}
