package functions

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/kafka"
)

// A subscription runs committed records only, as a read_committed Kafka
// consumer sees them: records of an aborted transaction never reach the
// function, records of an open one wait until it commits, and transaction
// markers never stall the partition.
func TestSubscriptionReadsCommitted(t *testing.T) {
	wasm := guests(t)["assemblyscript"](t)
	a := startAgent(t, fileBucket(t), Config{Workers: true})
	a.createTopic(t, "telemetry", 1)
	a.createTopic(t, "alerts", 1)
	deployTwin(t, a, wasm, map[string]string{"offline_after": "1h"})

	srv := kafka.NewServer(kafka.Config{Service: a.streams, Addr: "127.0.0.1:0", Logger: quiet(), TxnLeaseDuration: time.Second})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	t.Cleanup(func() { srv.Close(); <-errc })
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr().String()), kgo.TransactionalID("twin-feed"),
		kgo.DefaultProduceTopic("telemetry"), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	txn := func(dev string, temps []int, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range temps {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(dev), Value: fmt.Appendf(nil, `{"temp": %d}`, v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn("d1", []int{10, 20}, true)
	txn("d1", []int{99, 98, 97}, false) // aborted: the twin never sees them
	txn("d1", []int{30}, true)

	// An open transaction holds the partition back, markers and all.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("d1"), Value: []byte(`{"temp": 40}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	a.produce(t, "telemetry", "d2", `{"temp": 5}`) // not transactional, after the open one
	waitState := func(dev string, count float64) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := a.state(t, "device-twin", dev)
			if st != nil && st["count"] == count {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: state %v, want count %v", dev, st, count)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st := waitState("d1", 3)
	if st["min"] != 10.0 || st["max"] != 30.0 || st["last"] != 30.0 {
		t.Fatalf("d1 after the committed and aborted transactions: %v (the aborted temperatures must not count)", st)
	}
	time.Sleep(500 * time.Millisecond)
	if st := a.state(t, "device-twin", "d1"); st["count"] != 3.0 {
		t.Fatalf("d1 ran a record of the open transaction: %v", st)
	}
	if st := a.state(t, "device-twin", "d2"); st != nil {
		t.Fatalf("d2 ran before the open transaction before it ended: %v", st)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(kgo.TryCommit)); err != nil {
		t.Fatal(err)
	}
	if st := waitState("d1", 4); st["last"] != 40.0 {
		t.Fatalf("d1 after the commit: %v", st)
	}
	waitState("d2", 1)
	// The partition's end (after the last marker) is reached.
	a.waitCaughtUp(t, "device-twin", "telemetry", 30*time.Second)
	if alerts := a.readAll(t, "alerts"); len(alerts) != 0 {
		t.Fatalf("alerts from aborted records: %v", alerts)
	}
}
