package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/stream"
)

// A producer that allows it creates a missing topic through Metadata, as on
// a Kafka broker with its default auto.create.topics.enable=true; a consumer
// (which does not ask for it) does not.
func TestAutoCreateTopics(t *testing.T) {
	svc := testService(t, testBucket(t))
	srv := testServer(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	prod := testClient(t, srv.Addr().String(), kgo.AllowAutoTopicCreation())
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "fresh", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to a new topic: %v", err)
	}
	ti, err := svc.Topic("fresh")
	if err != nil || ti.Partitions != DefaultPartitions || ti.PartitionsInfo[0].End != 1 {
		t.Fatalf("auto-created topic: %+v, %v", ti, err)
	}

	cons := testClient(t, srv.Addr().String(), kgo.ConsumeTopics("never-made"))
	fctx, fcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	cons.PollFetches(fctx)
	fcancel()
	if _, err := svc.Topic("never-made"); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Fatalf("a consumer's metadata request created a topic: %v", err)
	}

	// Its own bucket: agents on one bucket list each other as brokers, and
	// the client could reach the first server.
	svc2 := testService(t, testBucket(t))
	off := testServer(t, svc2, func(c *Config) { c.NoAutoCreateTopics = true })
	prod2 := testClient(t, off.Addr().String(), kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(time.Second))
	if err := prod2.ProduceSync(ctx, &kgo.Record{Topic: "not-allowed", Value: []byte("v")}).FirstErr(); err == nil {
		t.Fatal("produce succeeded with auto-creation turned off")
	}
	if _, err := svc2.Topic("not-allowed"); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Fatalf("topic created with auto-creation turned off: %v", err)
	}
}
