package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/stream"
)

// txnServer is one agent with transactions switched on.
func txnServer(t *testing.T, mod ...func(*Config)) (*stream.Service, string) {
	t.Helper()
	svc := testService(t, testBucket(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	srv := testServer(t, svc, append([]func(*Config){func(c *Config) { c.TxnLeaseDuration = time.Second }}, mod...)...)
	return svc, srv.Addr().String()
}

func txnClient(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	return testClient(t, addr, append([]kgo.Opt{kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
}

func produceTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, vals ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// readValues reads topic from the start until a poll of a second and a
// half brings nothing, and returns the values, sorted.
func readValues(t *testing.T, addr, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := testClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %d: %v", p, err)
			}
		})
		if len(fs.Records()) == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	slices.Sort(out)
	return out
}

// endOffsets lists the latest offset of every partition of topic:
// the last stable offsets with committed.
func endOffsets(t *testing.T, cl *kgo.Client, topic string, partitions int32, committed bool) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if committed {
		req.IsolationLevel = 1
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	// Retried: after an agent is killed, Metadata may name it as a
	// partition's leader until its registration goes stale.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	for err != nil {
		if ctx.Err() != nil {
			t.Fatalf("list offsets of %s: %v", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
		resp, err = req.RequestWith(ctx, cl)
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("list offsets %s/%d: %v", topic, p.Partition, err)
		}
		out[p.Partition] = p.Offset
	}
	return out
}

func describeTxn(t *testing.T, cl *kgo.Client, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.TransactionStates[0]
}

func TestTxnCommitAbortIsolation(t *testing.T) {
	_, addr := txnServer(t)
	admin := testClient(t, addr)
	createTopic(t, admin, "tx", 2)
	p := txnClient(t, addr, "tx-1")
	produceTxn(t, p, "tx", true, "c1", "c2", "c3", "c4")
	produceTxn(t, p, "tx", false, "a1", "a2", "a3")
	produceTxn(t, p, "tx", true, "c5", "c6")

	if got, want := readValues(t, addr, "tx", true), []string{"c1", "c2", "c3", "c4", "c5", "c6"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed sees %v, want %v", got, want)
	}
	if got, want := readValues(t, addr, "tx", false), []string{"a1", "a2", "a3", "c1", "c2", "c3", "c4", "c5", "c6"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted sees %v, want %v", got, want)
	}

	// An open transaction holds the last stable offset back.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "tx", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	l0 := endOffsets(t, admin, "tx", 2, true)[0]
	h0 := endOffsets(t, admin, "tx", 2, false)[0]
	if l0 != h0-1 {
		t.Fatalf("with a transaction open at offset %d, the last stable offset is %d (high watermark %d)", h0-1, l0, h0)
	}
	if got := readValues(t, addr, "tx", true); slices.Contains(got, "open") {
		t.Fatalf("read_committed sees a record of an open transaction: %v", got)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := readValues(t, addr, "tx", true); !slices.Contains(got, "open") || len(got) != 7 {
		t.Fatalf("after the commit read_committed sees %v", got)
	}

	// DescribeTransactions and ListTransactions.
	d := describeTxn(t, admin, "tx-1")
	if d.ErrorCode != 0 || d.State != stream.TxnCompleteCommit || d.ProducerID < 0 {
		t.Fatalf("DescribeTransactions: %+v", d)
	}
	lreq := kmsg.NewPtrListTransactionsRequest()
	lt, err := lreq.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if lt.ErrorCode != 0 || len(lt.TransactionStates) != 1 || lt.TransactionStates[0].TransactionalID != "tx-1" {
		t.Fatalf("ListTransactions: %+v", lt)
	}
}

func TestTxnZombieFenced(t *testing.T) {
	_, addr := txnServer(t)
	admin := testClient(t, addr)
	createTopic(t, admin, "z", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zombie := txnClient(t, addr, "z-1")
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "z", Partition: 0, Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A second producer with the same id fences the first and aborts its
	// open transaction.
	fresh := txnClient(t, addr, "z-1")
	produceTxn(t, fresh, "z", true, "fresh-1", "fresh-2")

	err := zombie.ProduceSync(ctx, &kgo.Record{Topic: "z", Partition: 1, Value: []byte("zombie-2")}).FirstErr()
	if err == nil {
		err = zombie.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the fenced producer's write: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	// Nor may it take the id back by initialising with its old producer
	// (KIP-360's form): only the current one, or one fenced by a timeout,
	// may.
	d := describeTxn(t, admin, "z-1")
	id := "z-1"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis, init.ProducerID, init.ProducerEpoch = 4, &id, 60000, d.ProducerID, d.ProducerEpoch-1
	r, err := init.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("the zombie re-initialising: error %d, want PRODUCER_FENCED", r.ErrorCode)
	}
	if got, want := readValues(t, addr, "z", true), []string{"fresh-1", "fresh-2"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed sees %v, want %v", got, want)
	}
	if got := readValues(t, addr, "z", false); !slices.Contains(got, "zombie-1") || slices.Contains(got, "zombie-2") {
		t.Fatalf("read_uncommitted sees %v: want zombie-1 (aborted) and not zombie-2 (refused)", got)
	}
}

func TestTxnTimeoutAborts(t *testing.T) {
	_, addr := txnServer(t)
	admin := testClient(t, addr)
	createTopic(t, admin, "to", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := txnClient(t, addr, "to-1", kgo.TransactionTimeout(1500*time.Millisecond))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "to", Partition: 0, Value: []byte("abandoned")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The producer is abandoned: the coordinator aborts the transaction
	// and the last stable offset moves on to the end.
	for {
		l := endOffsets(t, admin, "to", 2, true)[0]
		h := endOffsets(t, admin, "to", 2, false)[0]
		if h == 2 && l == 2 {
			break // the record and the abort marker
		}
		if ctx.Err() != nil {
			t.Fatalf("the abandoned transaction was not aborted: last stable offset %d, high watermark %d", l, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := describeTxn(t, admin, "to-1"); d.State != stream.TxnCompleteAbort || d.ProducerEpoch != 1 {
		t.Fatalf("after the timeout: %+v, want CompleteAbort at epoch 1", d)
	}
	if got := readValues(t, addr, "to", true); len(got) != 0 {
		t.Fatalf("read_committed sees %v", got)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the timed-out transaction committed")
	}
}

// A coordinator that goes away with a transaction open, while no client
// asks for a coordinator any more: another agent takes the lease over by
// itself and aborts the transaction when it times out.
func TestTxnTimeoutAfterCoordinatorLeaves(t *testing.T) {
	b := testBucket(t)
	svcA, svcB := testService(t, b), testService(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := svcA.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	lease := func(c *Config) { c.TxnLeaseDuration = time.Second }
	srvA, srvB := testServer(t, svcA, lease), testServer(t, svcB, lease)
	addrA, addrB := srvA.Addr().String(), srvB.Addr().String()
	createTopic(t, testClient(t, addrA), "left", 2)
	p := txnClient(t, addrA, "left-1", kgo.TransactionTimeout(2*time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "left", Partition: 0, Value: []byte("orphan")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if holder := svcA.Log().Lease(TxnLease).Addr; holder != addrA {
		t.Fatalf("the transaction coordinator is %q, want agent A %s", holder, addrA)
	}
	p.Close()
	srvA.Close()
	admin := testClient(t, addrB, kgo.SeedBrokers(addrB))
	for {
		if err := svcB.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if x, ok := svcB.Transaction("left-1"); ok && x.State == stream.TxnCompleteAbort {
			break
		}
		if ctx.Err() != nil {
			x, _ := svcB.Transaction("left-1")
			t.Fatalf("the orphaned transaction was not aborted: %+v (lease %+v)", x, svcB.Log().Lease(TxnLease))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l, h := endOffsets(t, admin, "left", 2, true)[0], endOffsets(t, admin, "left", 2, false)[0]; l != 2 || h != 2 {
		t.Fatalf("after the abort: last stable offset %d, high watermark %d; want 2, 2", l, h)
	}
	if holder := svcB.Log().Lease(TxnLease).Addr; holder != addrB {
		t.Fatalf("the transaction coordinator is %q, want agent B %s", holder, addrB)
	}
}
