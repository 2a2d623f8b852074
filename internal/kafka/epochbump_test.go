package kafka

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/stream"
)

// An idempotent franz-go producer whose batch is refused for good (too
// large) goes on producing afterwards: it resets its sequence numbers by
// bumping its own epoch (KIP-360), which twoway accepts once the fleet
// enabled the rule. Without the rule the producer was stuck for good.
func TestIdempotentProducerRecoversAfterARefusedBatch(t *testing.T) {
	for _, bump := range []bool{true, false} {
		b := testBucket(t)
		svc, err := stream.Open(context.Background(), b, stream.Options{MaxBatchBytes: 2000, Log: commitlog.Options{
			Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
			Logger: quietLogger(), NoJanitor: true,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		ctx := context.Background()
		if bump {
			data, _ := json.Marshal(map[string][]string{"enable": {"format:streams-producer-epoch-bump:1"}})
			if _, _, err := svc.Log().Propose(ctx, commitlog.Entry{Type: commitlog.TypeFeatures, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: "t", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		srv := testServer(t, svc)
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr().String()), kgo.DefaultProduceTopic("t"), kgo.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		big := make([]byte, 5000)
		rand.Read(big) // incompressible
		err = cl.ProduceSync(pctx, &kgo.Record{Value: big}).FirstErr()
		if err == nil {
			t.Fatal("a batch over the limit was accepted")
		}
		cancel()
		// Without the rule the producer never gets past its bumped epoch;
		// give it 2 s to show that, and the fixed case all the time it needs.
		actx, cancel := context.WithTimeout(ctx, map[bool]time.Duration{true: 10 * time.Second, false: 2 * time.Second}[bump])
		var after error
		for i := range 3 {
			if after = cl.ProduceSync(actx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); after != nil {
				break
			}
		}
		cancel()
		t.Logf("bump rule %v: refused batch: %v; after: %v", bump, err, after)
		if bump && after != nil {
			t.Fatalf("the producer is stuck after a refused batch: %v", after)
		}
	}
}
