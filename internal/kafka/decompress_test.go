package kafka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/codec"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// withCodec turns an uncompressed batch into one whose records section is
// body under codec c.
func withCodec(b []byte, c int16, body []byte) []byte {
	out := append(bytes.Clone(b[:records.HeaderLen]), body...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint16(out[21:], uint16(c))
	fixCRC(out)
	return out
}

// gzipBatch is a gzip batch of one record holding n zero bytes: a few
// hundred bytes on the wire, n bytes decompressed.
func gzipBatch(t testing.TB, n int) []byte {
	t.Helper()
	plain := records.Encode([]records.Record{{Timestamp: 1, Value: make([]byte, n)}})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(plain[records.HeaderLen:]); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return withCodec(plain, records.CodecGzip, buf.Bytes())
}

// produceRequest builds a version-9 produce request with acks=all for the
// given partitions' raw batches, in partition order.
func produceRequest(topic string, parts map[int32][]byte) *kmsg.ProduceRequest {
	return produceRequestWith(-1, nil, topic, parts)
}

func produceRequestWith(acks int16, txn *string, topic string, parts map[int32][]byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis, req.TransactionID = 9, acks, 10000, txn
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	ps := slices.Sorted(maps.Keys(parts))
	for _, p := range ps {
		rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: parts[p]})
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func partitionEnds(t *testing.T, svc *stream.Service, topic string) []int64 {
	t.Helper()
	ti, err := svc.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for _, p := range ti.PartitionsInfo {
		ends = append(ends, p.End)
	}
	return ends
}

// A produce request whose compressed batches decompress beyond
// MaxDecompressedPerRequest together, each well within the bound of one
// batch, fails the partition that goes beyond it with MESSAGE_TOO_LARGE and
// appends nothing of it; the request's other partitions, later requests on
// the same connection and other clients are served as usual.
func TestProduceDecompressedPerRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := testService(t, testBucket(t))
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "big", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	srv := testServer(t, svc, func(c *Config) { c.MaxDecompressedPerRequest = limit })
	c := dial(t, srv.Addr().String())

	batch := gzipBatch(t, 400<<10) // three of them exceed the limit, two do not
	if len(batch) > 4<<10 {
		t.Fatalf("a gzip batch of zeros takes %d bytes", len(batch))
	}
	small := records.Encode([]records.Record{{Timestamp: 1, Value: []byte("small")}})
	three := bytes.Join([][]byte{batch, batch, batch}, nil)

	resp := roundTrip(t, c, 1, produceRequest("big", map[int32][]byte{0: three, 1: small})).(*kmsg.ProduceResponse)
	p0, p1 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if p0.ErrorCode != kerr.MessageTooLarge.Code || !strings.Contains(str(p0.ErrorMessage), "limit per request") {
		t.Fatalf("partition 0 over the bound: error %d (%s), want MESSAGE_TOO_LARGE (%d) naming the limit per request",
			p0.ErrorCode, str(p0.ErrorMessage), kerr.MessageTooLarge.Code)
	}
	if p0.BaseOffset != -1 {
		t.Fatalf("partition 0 refused with base offset %d, want -1", p0.BaseOffset)
	}
	if p1.ErrorCode != 0 || p1.BaseOffset != 0 {
		t.Fatalf("partition 1 (uncompressed, same request): error %d (%s) base %d, want it appended at 0", p1.ErrorCode, str(p1.ErrorMessage), p1.BaseOffset)
	}
	if ends := partitionEnds(t, svc, "big"); ends[0] != 0 || ends[1] != 1 {
		t.Fatalf("partition ends %v after the refused request, want [0 1]: only partition 1 appended", ends)
	}

	// A batch that alone exceeds the bound of one batch is refused the same
	// way: a zstd frame that claims 300 MiB of content.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; single segment, 8-byte content size
	frame = binary.LittleEndian.AppendUint64(frame, 300<<20)
	frame = append(frame, 0x0b, 0, 0, 0) // last block, RLE of one byte
	bomb := withCodec(small, records.CodecZstd, frame)
	resp = roundTrip(t, c, 2, produceRequest("big", map[int32][]byte{0: bomb})).(*kmsg.ProduceResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.MessageTooLarge.Code || !strings.Contains(str(p.ErrorMessage), "limit per batch") {
		t.Fatalf("a batch over codec.MaxDecompressed: error %d (%s), want MESSAGE_TOO_LARGE naming the limit per batch", p.ErrorCode, str(p.ErrorMessage))
	}

	// The same connection goes on: a request within the bound is appended.
	two := bytes.Join([][]byte{batch, batch}, nil)
	resp = roundTrip(t, c, 3, produceRequest("big", map[int32][]byte{0: two})).(*kmsg.ProduceResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("a request within the bound on the same connection: error %d (%s) base %d, want base 0", p.ErrorCode, str(p.ErrorMessage), p.BaseOffset)
	}
	if ends := partitionEnds(t, svc, "big"); ends[0] != 2 || ends[1] != 1 {
		t.Fatalf("partition ends %v, want [2 1]", ends)
	}

	// A Kafka client sees the error on the records it sent, and goes on. (Not
	// an idempotent one: after a failed batch franz-go bumps its producer
	// epoch locally, which the streams state refuses as a stale epoch.)
	prod := testClient(t, srv.Addr().String(), kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(kgo.GzipCompression()),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	err := prod.ProduceSync(ctx, &kgo.Record{Topic: "big", Partition: 1, Value: make([]byte, 2<<20)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("franz-go producing a record of 2 MiB with a limit of 1 MiB: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "big", Partition: 1, Value: make([]byte, 100<<10)}).FirstErr(); err != nil {
		t.Fatalf("franz-go producing within the bound afterwards: %v", err)
	}
	if ends := partitionEnds(t, svc, "big"); ends[0] != 2 || ends[1] != 2 {
		t.Fatalf("partition ends %v, want [2 2]", ends)
	}
}

// The produce requests pipelined on one connection decompress at most
// MaxDecompressedPerConnection bytes at once, counting codec.MaxDecompressed
// for a batch being decompressed: two batches at the default, one with a
// bound below one batch. Every request is still answered, and another
// connection is not held up by them.
func TestProduceDecompressedPerConnection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		perConn     int
		connections int
		wantPeak    int32
	}{
		{"default", 0, 1, 2},
		{"one batch", 1, 1, 1},
		{"one batch on each of two connections", 1, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			svc := testService(t, testBucket(t))
			const partitions, requests = 4, 4
			if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "conn", Partitions: partitions}); err != nil {
				t.Fatal(err)
			}
			var now, peak atomic.Int32
			slow := func(c int, src []byte) ([]byte, error) {
				n := now.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(20 * time.Millisecond)
				now.Add(-1)
				return codec.Decompress(c, src)
			}
			srv := testServer(t, svc, func(c *Config) {
				c.MaxDecompressedPerConnection = tc.perConn
				c.decompress = slow
			})
			batch := gzipBatch(t, 10<<10)
			parts := map[int32][]byte{}
			for p := range int32(partitions) {
				parts[p] = batch
			}
			req := produceRequest("conn", parts)
			// Every connection pipelines all its requests before any is
			// answered.
			var conns []net.Conn
			for range tc.connections {
				c := dial(t, srv.Addr().String())
				var frames []byte
				for i := range requests {
					frames = append(frames, formatter.AppendRequest(nil, req, int32(i))...)
				}
				if _, err := c.Write(frames); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				for i := range requests {
					resp := recv(t, c, int32(i), req).(*kmsg.ProduceResponse)
					for _, p := range resp.Topics[0].Partitions {
						if p.ErrorCode != 0 {
							t.Fatalf("request %d partition %d: error %d (%s)", i, p.Partition, p.ErrorCode, str(p.ErrorMessage))
						}
					}
				}
			}
			for p, end := range partitionEnds(t, svc, "conn") {
				if want := int64(requests * tc.connections); end != want {
					t.Fatalf("partition %d ends at %d, want %d", p, end, want)
				}
			}
			if got := peak.Load(); got != tc.wantPeak {
				t.Fatalf("%d batches decompressed at once, want %d (%d requests of %d compressed batches pipelined on each of %d connections)",
					got, tc.wantPeak, requests, partitions, tc.connections)
			}
		})
	}
}
