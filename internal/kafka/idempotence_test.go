package kafka

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// dropProxy forwards Kafka connections to target, but when a produce
// response comes back and drop says so, it closes the connection instead of
// forwarding it: the produce was applied, the client never learns, and it
// retries the same batch on a new connection.
type dropProxy struct {
	ln      net.Listener
	target  string
	drop    func() bool
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func newDropProxy(t *testing.T, drop func() bool) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, drop: drop}
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var mu sync.Mutex
		apiKeys := map[int32]int16{} // correlation id → api key
		p.wg.Add(2)
		go func() { // client → server
			defer p.wg.Done()
			defer s.Close()
			for {
				frame, err := readRawFrame(c)
				if err != nil {
					return
				}
				if len(frame) >= 8 {
					mu.Lock()
					apiKeys[int32(binary.BigEndian.Uint32(frame[4:]))] = int16(binary.BigEndian.Uint16(frame))
					mu.Unlock()
				}
				if writeRawFrame(s, frame) != nil {
					return
				}
			}
		}()
		go func() { // server → client
			defer p.wg.Done()
			defer c.Close()
			for {
				frame, err := readRawFrame(s)
				if err != nil || len(frame) < 4 {
					return
				}
				mu.Lock()
				key := apiKeys[int32(binary.BigEndian.Uint32(frame))]
				mu.Unlock()
				if key == 0 && p.drop() {
					p.dropped.Add(1)
					s.Close()
					return
				}
				if writeRawFrame(c, frame) != nil {
					return
				}
			}
		}()
	}
}

func readRawFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r, frame)
	return frame, err
}

func writeRawFrame(w io.Writer, frame []byte) error {
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(frame))))
	if err == nil {
		_, err = w.Write(frame)
	}
	return err
}

// An idempotent producer whose produce responses are lost retries, and the
// retries are recognised: every record is stored once, in order.
func TestIdempotentRetriesNoDuplicates(t *testing.T) {
	svc := testService(t, testBucket(t))
	var n atomic.Int64
	proxy := newDropProxy(t, func() bool { return n.Add(1)%3 == 0 })
	srv := testServer(t, svc, func(c *Config) { c.Advertise = proxy.ln.Addr().String() })
	proxy.target = srv.Addr().String()
	go proxy.serve()

	addr := proxy.ln.Addr().String()
	admin := testClient(t, srv.Addr().String())
	createTopic(t, admin, "idem", 3)
	prod := testClient(t, addr,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		kgo.ProducerLinger(0))
	want := testRecords("idem", 3, 40)
	// Produce in small groups so that there are many produce requests.
	for i := 0; i < len(want); i += 6 {
		produceAll(t, prod, want[i:min(i+6, len(want))])
	}
	if proxy.dropped.Load() == 0 {
		t.Fatal("the proxy dropped no produce response; the test proves nothing")
	}
	t.Logf("%d produce responses dropped", proxy.dropped.Load())
	got := consumeN(t, srv.Addr().String(), "idem", len(want))
	checkSame(t, want, got)

	// Nothing beyond: the high watermark is exactly the record count.
	for p := range int32(3) {
		ti, _ := svc.Topic("idem")
		if end := ti.PartitionsInfo[p].End; end != 40 {
			t.Fatalf("partition %d ends at %d, want 40: duplicates were appended", p, end)
		}
	}
}
