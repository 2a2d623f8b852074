package stream_test

import (
	"context"
	"fmt"
	"os"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// Streams on a local directory: create a topic, produce, read back. Any
// other process opening the same directory sees the same records.
func ExampleService() {
	dir, _ := os.MkdirTemp("", "twoway-example")
	defer os.RemoveAll(dir)
	b, _ := filebucket.Open(dir)
	ctx := context.Background()
	svc, err := stream.Open(ctx, b, stream.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()

	_ = svc.CreateTopic(ctx, stream.TopicConfig{Name: "orders", Partitions: 3})
	key := []byte("alice")
	p := svc.PickPartition(key, 3) // murmur2, like Kafka's default partitioner
	bases, _, _ := svc.Produce(ctx, "orders", []stream.Batch{{
		Partition: p,
		Records:   []records.Record{{Key: key, Value: []byte("1 pizza")}, {Key: key, Value: []byte("2 salads")}},
	}})
	fmt.Println("first offset:", bases[0])

	recs, _, _ := svc.Read(ctx, "orders", p, 0, 10, 0)
	for _, r := range recs {
		fmt.Printf("%d %s=%s\n", r.Offset, r.Key, r.Value)
	}
	// Output:
	// first offset: 0
	// 0 alice=1 pizza
	// 1 alice=2 salads
}
