package kafka

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/records"
)

// A non-idempotent producer with several produce requests in flight on one
// connection gets its records stored in the order it sent them, as on a
// broker that handles a connection's requests one after another, even though
// twoway commits them concurrently.
func TestPipelinedProduceKeepsOrder(t *testing.T) {
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	createTopic(t, testClient(t, addr), "ordered", 1)
	prod := testClient(t, addr, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(2048), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 3000
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Topic: "ordered", Partition: 0, Value: []byte(fmt.Sprintf("%06d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var recs []records.Record
	for len(recs) < n {
		more, _, err := svc.Read(ctx, "ordered", 0, int64(len(recs)), n, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(more) == 0 {
			break
		}
		recs = append(recs, more...)
	}
	if len(recs) != n {
		t.Fatalf("%d records stored, want %d", len(recs), n)
	}
	for i, r := range recs {
		if v, _ := strconv.Atoi(string(r.Value)); v != i {
			t.Fatalf("offset %d holds record %d: produce order lost", i, v)
		}
	}
	if c := svc.Log().Stats.Commits.Load(); c < 5 {
		t.Fatalf("only %d commits: requests did not pipeline, the test proves nothing", c)
	}
}
