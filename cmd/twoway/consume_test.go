package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// TestConsumeIsolation: on a directory where franz-go transactional
// producers committed a transaction, aborted one and left one open,
// consume --isolation read_committed prints the committed records and
// stops at the open transaction; the default prints them all.
func TestConsumeIsolation(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "twoway-data")
	ok(t, dir, "", "topic", "create", "tx")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := filebucket.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := stream.Open(ctx, b, stream.Options{Log: commitlog.Options{Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond, Logger: quiet, NoJanitor: true}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			svc.Close()
		}
	})
	if err := svc.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	ks := kafka.NewServer(kafka.Config{Service: svc, Addr: "127.0.0.1:0", Logger: quiet, TxnLeaseDuration: time.Second})
	if err := ks.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- ks.Serve(context.Background()) }()
	t.Cleanup(func() { ks.Close() })
	plain := func(v string) {
		if _, errs, err := svc.Produce(ctx, "tx", []stream.Batch{{Records: []records.Record{{Value: []byte(v)}}}}); err != nil || errs[0] != nil {
			t.Fatalf("produce %s: %v %v", v, err, errs)
		}
	}
	txn := func(id string, end *bool, vals ...string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(ks.Addr().String()), kgo.TransactionalID(id), kgo.DefaultProduceTopic("tx"), kgo.TransactionTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		if end != nil {
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(*end)); err != nil {
				t.Fatal(err)
			}
		}
		return cl
	}
	commit, abort := true, false
	plain("p0")                      // 0
	txn("t1", &commit, "c1a", "c1b") // 1, 2, marker 3
	txn("t2", &abort, "a2a", "a2b")  // 4, 5, marker 6
	plain("p1")                      // 7
	open := txn("t3", nil, "o3a")    // 8, left open
	txn("t4", &abort, "a4")          // 9, marker 10
	plain("p2")                      // 11

	// The CLI reads the directory while this process serves it.
	all := "p0\nc1a\nc1b\na2a\na2b\np1\no3a\na4\np2\n"
	if out := ok(t, dir, "", "consume", "tx"); out != all {
		t.Errorf("consume printed %q, want %q", out, all)
	}
	if out := ok(t, dir, "", "consume", "tx", "--isolation", "read_uncommitted"); out != all {
		t.Errorf("consume --isolation read_uncommitted printed %q, want %q", out, all)
	}
	if out := ok(t, dir, "", "consume", "tx", "--isolation", "read_committed"); out != "p0\nc1a\nc1b\np1\n" {
		t.Errorf("consume --isolation read_committed printed %q", out)
	}
	if out := ok(t, dir, "", "consume", "tx", "--isolation", "read_committed", "--partition", "0", "--from", "4"); out != "p1\n" {
		t.Errorf("consume --isolation read_committed --from 4 printed %q", out)
	}

	// A read_committed follower at the open transaction prints its
	// records once it commits, and skips the aborted one after it.
	follower := exec.Command(twowayBin, "consume", "tx", "--bucket", data, "--follow", "--isolation", "read_committed", "--partition", "0", "--from", "8", "--max", "2")
	var fout, ferr bytes.Buffer
	follower.Stdout, follower.Stderr = &fout, &ferr
	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- follower.Wait() }()
	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || fout.String() != "o3a\np2\n" {
			t.Errorf("follower: %v, printed %q, stderr %q", err, fout.String(), ferr.String())
		}
	case <-time.After(30 * time.Second):
		follower.Process.Kill()
		<-done
		t.Fatalf("the follower did not print the committed transaction: %q, stderr %q", fout.String(), ferr.String())
	}
	if out := ok(t, dir, "", "consume", "tx", "--isolation", "read_committed"); out != "p0\nc1a\nc1b\np1\no3a\np2\n" {
		t.Errorf("consume --isolation read_committed after the commit printed %q", out)
	}
	ks.Close()
	<-errc
	closed = true
	svc.Close()

	fails(t, dir, 2, `--isolation "committed": use read_uncommitted or read_committed`, "", "consume", "tx", "--isolation", "committed")
}
