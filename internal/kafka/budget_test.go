package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The server-wide memory bounds (a memory budget): producers and consumers
// on many connections, with bounds far below what they would hold at once,
// all complete with every record read back, and once the clients are gone
// nothing is left reserved: no connection leaks its share, whatever state
// its requests were in when it closed.
func TestServerWideBudgets(t *testing.T) {
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc, func(c *Config) {
		c.MaxRequestBytes = 256 << 10
		c.MaxFetchInFlight = 128 << 10
		c.MaxFetchBytes = 64 << 10
		c.MaxDecompressedInFlight = 256 << 10
	})
	addr := srv.Addr().String()
	const topic, partitions = "budget", 4
	admin := testClient(t, addr)
	createTopic(t, admin, topic, partitions)
	admin.Close()

	const producers, each = 6, 300
	var wg sync.WaitGroup
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codec := kgo.NoCompression()
			if i%2 == 1 {
				codec = kgo.ZstdCompression()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(codec), kgo.ProducerBatchMaxBytes(96<<10))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			recs := make([]*kgo.Record, each)
			for n := range recs {
				recs[n] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "%d", n), Value: fmt.Appendf(make([]byte, 0, 4<<10), "%d-%d-%04000d", i, n, n)}
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Errorf("producer %d: %v", i, err)
			}
		}()
	}
	// Consumers reading all along, one of them closed mid-flight.
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Error(err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i)*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				cl.PollFetches(ctx)
			}
			cl.Close()
		}()
	}
	wg.Wait()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var got []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < producers*each && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	cl.Close()
	seen := map[string]bool{}
	for _, r := range got {
		k := string(r.Value[:min(len(r.Value), 12)])
		seen[fmt.Sprintf("%d/%d/%s", r.Partition, r.Offset, k)] = true
	}
	if len(seen) != producers*each {
		t.Fatalf("read back %d distinct records, want %d", len(seen), producers*each)
	}
	// A raw connection whose fetch holds record bytes while it waits for
	// more than there is (min_bytes), closed before its answer: its share
	// must come back when the connection ends.
	raw := dial(t, addr)
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 11, -1, 3000, 100<<20, 100<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	send(t, raw, 1, fr)
	used := func(b *byteBudget) int { b.mu.Lock(); defer b.mu.Unlock(); return b.used }
	waitFor(t, "the raw fetch to hold bytes", func() bool { return used(srv.fetches) > 0 })
	raw.Close()

	// Every client is closed: the reservations drain.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, f, d := used(srv.requests), used(srv.fetches), used(srv.decompressed)
		if r == 0 && f == 0 && d == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every client closed, still reserved: %d request, %d fetch, %d decompressed bytes", r, f, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
