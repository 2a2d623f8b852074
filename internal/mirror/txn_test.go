package mirror

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// A mirror copies committed records only, as a read_committed consumer
// reads them: an aborted transaction's records never reach the
// destination, an open one's (and everything after them) only once it
// commits, and transaction markers are passed over.
func TestMirrorCopiesCommittedOnly(t *testing.T) {
	src := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	dst := mustOpenSide(t, openURL(t, "file://"+t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := src.streams.CreateTopic(ctx, stream.TopicConfig{Name: "telemetry", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	srv := kafka.NewServer(kafka.Config{Service: src.streams, Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TxnLeaseDuration: time.Second})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	t.Cleanup(func() { srv.Close(); <-errc })
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr().String()), kgo.TransactionalID("edge-feed"),
		kgo.DefaultProduceTopic("telemetry"), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(ids ...int) {
		t.Helper()
		for _, id := range ids {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(id))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn := func(commit bool, ids ...int) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		send(ids...)
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, 1, 2)
	txn(false, 100, 101, 102)
	txn(true, 3)
	if err := cl.BeginTransaction(); err != nil { // left open for now
		t.Fatal(err)
	}
	send(4)
	produce(t, src.streams, "telemetry", 0, 5, 1) // not transactional, after the open one

	runMirror(t, Config{Source: "edge-1", Topics: mustPattern(t, "telemetry"), From: src.streams, To: dst.streams, ToMirror: dst.mirror, Poll: 20 * time.Millisecond})
	values := func() []string {
		if err := dst.streams.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.streams.Topic("telemetry"); err != nil {
			return nil
		}
		var out []string
		for _, r := range readAll(t, dst.streams, "telemetry", 0) {
			out = append(out, string(r.Value))
		}
		return out
	}
	waitValues := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := values()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("destination holds %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitValues([]string{"1", "2", "3"})
	time.Sleep(300 * time.Millisecond) // the open transaction holds the rest back
	if got := values(); len(got) != 3 {
		t.Fatalf("the mirror passed an open transaction: %q", got)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitValues([]string{"1", "2", "3", "4", "value 5 of telemetry/0"})
}
