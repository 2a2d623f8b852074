//go:build !nosql

package tables

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// kafkaFront serves the agent's streams over the Kafka protocol on a
// loopback port, with the transaction coordinator on.
func (a *agent) kafkaFront(t *testing.T) string {
	t.Helper()
	srv := kafka.NewServer(kafka.Config{Service: a.streams, Addr: "127.0.0.1:0", Logger: quiet(), TxnLeaseDuration: time.Second})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		srv.Close()
		<-errc
	})
	return srv.Addr().String()
}

func txnProducer(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// orderValue is a row of ordersSchema; item says where it came from.
func orderValue(id int, item string) string {
	return fmt.Sprintf(`{"id": %d, "amount": 1, "item": %q}`, id, item)
}

// beginAndProduce opens a transaction and produces ids into it,
// alternating partitions 0 and 1, keyed by id.
func beginAndProduce(t *testing.T, cl *kgo.Client, topic, item string, ids []int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		r := &kgo.Record{Topic: topic, Partition: int32(i % 2), Key: []byte(strconv.Itoa(id)), Value: []byte(orderValue(id, item))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s %d: %v", item, id, err)
		}
	}
}

func endTxn(t *testing.T, cl *kgo.Client, commit bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

func idRange(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// TestTableReadsCommitted: with transactional producers writing into a
// topic with a table (transactions committed, aborted, one left open
// while the table commits, one aborted by its timeout), the Iceberg table
// read back by iceberg-go and SQL over the table and over the raw topic
// hold exactly the committed records, each once; the table's offsets
// never pass the open transaction's first offset, and its records appear
// once it commits.
func TestTableReadsCommitted(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			url := "file://" + t.TempDir()
			if backend == "s3" {
				url = s3URL(t)
			}
			b, err := bucketurl.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			checkTableReadsCommitted(t, b)
		})
	}
}

func checkTableReadsCommitted(t *testing.T, b bucket.Bucket) {
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "tx", 2)
	addr := a.kafkaFront(t)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "tx", Topic: "tx", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	var committed []int // ids the table must hold, once each
	plain := func(item string, ids []int) {
		for i, id := range ids {
			a.produce(t, "tx", int32(i%2), orderValue(id, item))
		}
	}

	plain("plain", idRange(0, 4))
	committed = append(committed, idRange(0, 4)...)
	p1 := txnProducer(t, addr, "t1")
	beginAndProduce(t, p1, "tx", "c1", idRange(100, 6))
	endTxn(t, p1, true)
	committed = append(committed, idRange(100, 6)...)
	p2 := txnProducer(t, addr, "t2")
	beginAndProduce(t, p2, "tx", "a2", idRange(200, 6))
	endTxn(t, p2, false)

	// An open transaction, then committed records after it: those wait
	// for it.
	p3 := txnProducer(t, addr, "t3")
	beginAndProduce(t, p3, "tx", "o3", idRange(300, 4))
	lso := map[int32]int64{}
	for p := int32(0); p < 2; p++ {
		v, err := a.streams.TxnView("tx", p, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		lso[p] = v.LastStable
	}
	beginAndProduce(t, p1, "tx", "c4", idRange(400, 4))
	endTxn(t, p1, true)
	plain("plain2", idRange(500, 4))
	before := slices.Clone(committed)
	after := append(slices.Clone(committed), idRange(300, 4)...)
	after = append(after, idRange(400, 4)...)
	after = append(after, idRange(500, 4)...)

	// The table reaches the open transaction's first offset in every
	// partition, and no further.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.set.Log().Sync(ctx)
		tb, _ := a.tables.Get("tx")
		done := true
		for p, l := range lso {
			if tb.Offsets[p] > l {
				t.Fatalf("partition %d: the table's next offset %d passed the open transaction's first offset %d", p, tb.Offsets[p], l)
			}
			done = done && tb.Offsets[p] == l
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table did not reach the last stable offsets %v: %v", lso, tb.Offsets)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkTableIDs(t, a, "while a transaction is open", before)
	// A little later, still no further (commits may come meanwhile).
	time.Sleep(time.Second)
	a.set.Log().Sync(ctx)
	if tb, _ := a.tables.Get("tx"); tb.Offsets[0] != lso[0] || tb.Offsets[1] != lso[1] {
		t.Fatalf("the table moved past the open transaction: offsets %v, last stable %v", tb.Offsets, lso)
	}
	checkTableIDs(t, a, "while a transaction is still open", before)

	endTxn(t, p3, true)
	a.waitMaterialized(t, "tx", 30*time.Second)
	checkTableIDs(t, a, "once it committed", after)

	// A transaction abandoned until its timeout aborts it: never in the
	// table, and what follows it is.
	p5 := txnProducer(t, addr, "t5", kgo.TransactionTimeout(1500*time.Millisecond))
	beginAndProduce(t, p5, "tx", "t5", idRange(600, 4))
	plain("plain3", idRange(700, 2))
	after = append(after, idRange(700, 2)...)
	deadline = time.Now().Add(30 * time.Second)
	for {
		if x, ok := a.streams.Transaction("t5"); ok && x.State == stream.TxnCompleteAbort {
			break
		}
		if time.Now().After(deadline) {
			x, _ := a.streams.Transaction("t5")
			t.Fatalf("the abandoned transaction did not time out: %+v", x)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitMaterialized(t, "tx", 30*time.Second)
	checkTableIDs(t, a, "after a timed-out transaction", after)
}

// checkTableIDs checks that the table read by iceberg-go (the table
// has read everything committed below the last stable offsets when this
// is called), SQL over the table (files and fresh tail) and SQL over the
// topic (all tail) hold exactly want, each once.
func checkTableIDs(t *testing.T, a *agent, when string, want []int) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	tb, _ := a.tables.Get("tx")
	var files []int
	if tb.Main.Metadata != "" {
		for _, r := range icebergScan(t, a.tables.b, tb.Main.Metadata) {
			files = append(files, int(r["id"].(int64)))
		}
	}
	slices.Sort(files)
	if !slices.Equal(files, want) {
		t.Fatalf("%s: the Iceberg table holds ids %v, want %v", when, files, want)
	}
	if tb.Rows != int64(len(files)) || tb.DLQRows != 0 {
		t.Fatalf("%s: the table counts %d rows and %d dead letters; iceberg-go reads %d", when, tb.Rows, tb.DLQRows, len(files))
	}
	rows := queryRows(t, a, `select id from tx order by id`)
	got := make([]int, len(rows))
	for i, r := range rows {
		got[i] = int(r[0].(float64))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: SQL over the table gives ids %v, want %v", when, got, want)
	}
	for _, q := range []string{`select count(*), count(distinct id) from tx`, `select count(*), count(distinct (_partition, _offset)) from topic('tx')`} {
		rows := queryRows(t, a, q)
		if rows[0][0] != float64(len(want)) || rows[0][1] != float64(len(want)) {
			t.Fatalf("%s: %s = %v, want %d", when, q, rows[0], len(want))
		}
	}
}
