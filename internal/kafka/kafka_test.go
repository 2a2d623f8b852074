package kafka

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

func createTopic(t testing.TB, cl *kgo.Client, name string, partitions int32, configs ...string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, -1
	for i := 0; i+1 < len(configs); i += 2 {
		v := configs[i+1]
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: configs[i], Value: &v})
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create topic %s: %v (%v)", name, err, str(resp.Topics[0].ErrorMessage))
	}
}

func str(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// testRecords makes n records per partition with distinct keys, values,
// headers and timestamps (values compress well, so codecs get work).
func testRecords(topic string, partitions int32, n int) []*kgo.Record {
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	var out []*kgo.Record
	for i := range n {
		for p := range partitions {
			out = append(out, &kgo.Record{
				Topic:     topic,
				Partition: p,
				Key:       fmt.Appendf(nil, "key-%d-%d", p, i),
				Value:     bytes.Repeat(fmt.Appendf(nil, "value %d/%d;", p, i), 1+i%7),
				Headers: []kgo.RecordHeader{
					{Key: "i", Value: fmt.Appendf(nil, "%d", i)},
					{Key: "empty", Value: []byte{}},
					{Key: "i", Value: []byte("repeated key")},
				},
				Timestamp: time.UnixMilli(base + int64(i)*10 + int64(p)),
			})
		}
	}
	return out
}

func produceAll(t testing.TB, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeN reads n records of topic from the start, without a group.
func consumeN(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := testClient(t, addr, append([]kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	return got
}

// checkSame verifies that got holds exactly want: per partition the same
// order, dense offsets from 0, and identical keys, values, headers and
// timestamps.
func checkSame(t testing.TB, want, got []*kgo.Record) {
	t.Helper()
	byPart := func(rs []*kgo.Record) map[int32][]*kgo.Record {
		m := map[int32][]*kgo.Record{}
		for _, r := range rs {
			m[r.Partition] = append(m[r.Partition], r)
		}
		return m
	}
	w, g := byPart(want), byPart(got)
	if len(w) != len(g) {
		t.Fatalf("records in %d partitions, want %d", len(g), len(w))
	}
	for p, ws := range w {
		gs := g[p]
		if len(gs) != len(ws) {
			t.Fatalf("partition %d: %d records, want %d", p, len(gs), len(ws))
		}
		for i := range ws {
			if gs[i].Offset != int64(i) {
				t.Fatalf("partition %d record %d has offset %d: offsets are not dense", p, i, gs[i].Offset)
			}
			if err := sameRecord(ws[i], gs[i]); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, i, err)
			}
		}
	}
}

func sameRecord(w, g *kgo.Record) error {
	switch {
	case !bytes.Equal(w.Key, g.Key):
		return fmt.Errorf("key %q, want %q", g.Key, w.Key)
	case !bytes.Equal(w.Value, g.Value):
		return fmt.Errorf("value %q, want %q", g.Value, w.Value)
	case !w.Timestamp.Equal(g.Timestamp):
		return fmt.Errorf("timestamp %v, want %v", g.Timestamp, w.Timestamp)
	case len(w.Headers) != len(g.Headers):
		return fmt.Errorf("%d headers, want %d", len(g.Headers), len(w.Headers))
	}
	for i := range w.Headers {
		if w.Headers[i].Key != g.Headers[i].Key || !bytes.Equal(w.Headers[i].Value, g.Headers[i].Value) {
			return fmt.Errorf("header %d is %q=%q, want %q=%q", i, g.Headers[i].Key, g.Headers[i].Value, w.Headers[i].Key, w.Headers[i].Value)
		}
	}
	return nil
}

func TestProduceConsumeEveryCodec(t *testing.T) {
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc)
	addr := srv.Addr().String()
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		id    int
	}{
		{"none", kgo.NoCompression(), records.CodecNone},
		{"gzip", kgo.GzipCompression(), records.CodecGzip},
		{"snappy", kgo.SnappyCompression(), records.CodecSnappy},
		{"lz4", kgo.Lz4Compression(), records.CodecLZ4},
		{"zstd", kgo.ZstdCompression(), records.CodecZstd},
	}
	admin := testClient(t, addr)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "codec-" + c.name
			const partitions = 6
			createTopic(t, admin, topic, partitions)
			prod := testClient(t, addr,
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(c.codec),
				kgo.ProducerLinger(5*time.Millisecond))
			want := testRecords(topic, partitions, 40)
			produceAll(t, prod, want[:len(want)/2])
			produceAll(t, prod, want[len(want)/2:])

			got := consumeN(t, addr, topic, len(want))
			checkSame(t, want, got)

			// The batches are stored as the producer compressed them.
			res, err := svc.Fetch(context.Background(), topic, 0, 0, 1<<20, 0)
			if err != nil || len(res.Batches) == 0 {
				t.Fatalf("fetch stored batches: %v", err)
			}
			m, err := records.ParseMeta(res.Batches[0])
			if err != nil {
				t.Fatal(err)
			}
			if m.Codec() != c.id {
				t.Fatalf("stored batch has codec %d, want %d", m.Codec(), c.id)
			}

			// The HTTP path (Service.Read) decodes the same records.
			for p := range int32(partitions) {
				recs, _, err := svc.Read(context.Background(), topic, p, 0, 1000, 0)
				if err != nil {
					t.Fatalf("Service.Read: %v", err)
				}
				var fromKafka []*kgo.Record
				for _, r := range got {
					if r.Partition == p {
						fromKafka = append(fromKafka, r)
					}
				}
				if len(recs) != len(fromKafka) {
					t.Fatalf("partition %d: Service.Read returned %d records, Kafka %d", p, len(recs), len(fromKafka))
				}
				for i, r := range recs {
					if err := sameRecord(fromKafka[i], toKgo(r, p)); err != nil || r.Offset != fromKafka[i].Offset {
						t.Fatalf("partition %d offset %d: Service.Read differs from Kafka: %v", p, r.Offset, err)
					}
				}
			}
		})
	}
}

func toKgo(r records.Record, p int32) *kgo.Record {
	out := &kgo.Record{Partition: p, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return out
}

// Records produced through the streams service (the HTTP path) read back
// identically through Kafka.
func TestServiceProduceKafkaConsume(t *testing.T) {
	ctx := context.Background()
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc)
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "http", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var want []*kgo.Record
	for i := range 30 {
		r := records.Record{
			Timestamp: 1700000000000 + int64(i),
			Key:       fmt.Appendf(nil, "k%d", i),
			Value:     fmt.Appendf(nil, "v%d", i),
			Headers:   []records.Header{{Key: "h", Value: []byte("x")}},
		}
		p := int32(i % 2)
		if _, errs, err := svc.Produce(ctx, "http", []stream.Batch{{Partition: p, Records: []records.Record{r}}}); err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
		want = append(want, toKgo(r, p))
	}
	got := consumeN(t, srv.Addr().String(), "http", len(want))
	checkSame(t, want, got)
}

// Produce on one agent, consume on another: two Servers over two Services
// on one bucket. Each client's connections all go to its own agent, whatever
// broker the metadata names, since every agent serves every partition.
func TestTwoAgents(t *testing.T) {
	b := testBucket(t)
	a := testServer(t, testService(t, b))
	bsrv := testServer(t, testService(t, b))
	only := func(addr string) kgo.Opt {
		return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		})
	}
	aAddr, bAddr := a.Addr().String(), bsrv.Addr().String()
	prod := testClient(t, aAddr, only(aAddr), kgo.RecordPartitioner(kgo.ManualPartitioner()))

	// Both agents are listed as brokers (once A's one-second cache of the
	// registry has seen B).
	waitFor(t, "both agents in metadata", func() bool {
		meta, err := kmsg.NewPtrMetadataRequest().RequestWith(context.Background(), prod)
		return err == nil && len(meta.Brokers) == 2
	})

	createTopic(t, prod, "shared", 4)
	want := testRecords("shared", 4, 50)
	produceAll(t, prod, want)
	got := consumeN(t, bAddr, "shared", len(want), only(bAddr))
	checkSame(t, want, got)
}

// acks=0 writes no response, yet the records are appended.
func TestAcksZero(t *testing.T) {
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	admin := testClient(t, addr)
	createTopic(t, admin, "fire", 1)
	prod := testClient(t, addr, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	want := testRecords("fire", 1, 25)
	produceAll(t, prod, want)
	checkSame(t, want, consumeN(t, addr, "fire", len(want)))
}

func TestListOffsetsByTimestamp(t *testing.T) {
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	cl := testClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	createTopic(t, cl, "times", 1)
	// Ten batches of ten records; timestamps 1000, 1010, ... (offset*10 +
	// 1000), except that offset 55 jumps ahead.
	for batch := range 10 {
		var recs []*kgo.Record
		for i := range 10 {
			off := batch*10 + i
			ts := int64(1000 + off*10)
			if off == 55 {
				ts = 9000
			}
			recs = append(recs, &kgo.Record{Topic: "times", Value: []byte{byte(off)}, Timestamp: time.UnixMilli(ts)})
		}
		produceAll(t, cl, recs)
	}
	cases := []struct {
		ts, offset, at int64
	}{
		{-2, 0, -1},
		{-1, 100, -1},
		{0, 0, 1000},
		{1000, 0, 1000},
		{1001, 1, 1010},
		{1545, 55, 9000},
		{1530, 53, 1530},
		{1540, 54, 1540},
		{1991, 55, 9000},
		{9001, -1, -1},
		{-3, 55, 9000},
	}
	for _, c := range cases {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "times"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = c.ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Offset != c.offset || p.Timestamp != c.at {
			t.Errorf("timestamp %d: offset %d at %d (error %d), want offset %d at %d", c.ts, p.Offset, p.Timestamp, p.ErrorCode, c.offset, c.at)
		}
	}
}
