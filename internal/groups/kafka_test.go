package groups_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// These tests run real franz-go consumer groups against agents serving the
// Kafka protocol, with this package as their group coordinator.

const (
	topic      = "events"
	partitions = 6
	groupID    = "g"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// node is one agent: log, streams, group coordinator and Kafka server.
type node struct {
	svc   *stream.Service
	coord *groups.Coordinator
	srv   *kafka.Server
	addr  string
	once  sync.Once
}

func startNode(t *testing.T, b bucket.Bucket, lease time.Duration) *node {
	t.Helper()
	gm, err := groups.NewModule(groups.ModuleConfig{Coordinate: true, Coordinator: groups.Config{
		LeaseDuration:         lease,
		MinSessionTimeout:     500 * time.Millisecond,
		InitialRebalanceDelay: 200 * time.Millisecond,
		Logger:                quiet,
	}})
	if err != nil {
		t.Fatal(err)
	}
	coord := gm.Coordinator()
	svc, err := stream.Open(context.Background(), b, stream.Options{
		Log: commitlog.Options{
			Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 20 * time.Millisecond,
			Logger: quiet, NoJanitor: true,
		},
	}, gm)
	if err != nil {
		t.Fatal(err)
	}
	srv := kafka.NewServer(kafka.Config{
		Service: svc, Addr: "127.0.0.1:0", Groups: coord, Logger: quiet,
		AgentRefresh: 100 * time.Millisecond, AgentTTL: 2 * time.Second,
	})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	host, port := srv.Advertised()
	n := &node{svc: svc, coord: coord, srv: srv, addr: net.JoinHostPort(host, strconv.Itoa(int(port)))}
	if err := coord.Start(svc.Log(), n.addr, svc); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background())
	t.Cleanup(n.stop)
	return n
}

// stop shuts the agent down cleanly: its group leases are released.
func (n *node) stop() {
	n.once.Do(func() {
		n.srv.Close()
		n.coord.Close()
		n.svc.Close()
	})
}

// kill stops the agent without releasing anything, as a crash would: its
// connections drop and its log stops, so its group leases go unrenewed.
func (n *node) kill() {
	n.once.Do(func() {
		n.srv.Close()
		n.svc.Log().Close()
		n.svc.Close() // the log is closed: the coordinator releases nothing
	})
}

// ledger records every delivery of every record: which consumer processed
// it and whether the commit that followed succeeded.
type ledger struct {
	mu            sync.Mutex
	by            map[string][]*delivery
	n             int
	failedCommits []error
}

type delivery struct {
	consumer  string
	committed bool
}

func newLedger() *ledger { return &ledger{by: map[string][]*delivery{}} }

func (l *ledger) deliver(consumer string, recs []*kgo.Record) []*delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := make([]*delivery, len(recs))
	for i, r := range recs {
		ds[i] = &delivery{consumer: consumer}
		l.by[string(r.Value)] = append(l.by[string(r.Value)], ds[i])
	}
	l.n += len(recs)
	return ds
}

func (l *ledger) commitResult(ds []*delivery, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failedCommits = append(l.failedCommits, err)
		return
	}
	for _, d := range ds {
		d.committed = true
	}
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by)
}

func consumers(ds []*delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s(committed=%v)", d.consumer, d.committed))
	}
	return out
}

// exactlyOnce requires every value in want to have been processed exactly
// once, every commit to have succeeded, and nothing else consumed.
func (l *ledger) exactlyOnce(t *testing.T, want []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.failedCommits {
		t.Errorf("commit failed: %v", err)
	}
	missing, dup := 0, 0
	for _, v := range want {
		switch ds := l.by[v]; {
		case len(ds) == 0:
			if missing++; missing <= 5 {
				t.Errorf("record %s never consumed", v)
			}
		case len(ds) > 1:
			if dup++; dup <= 5 {
				t.Errorf("record %s consumed %d times: %v", v, len(ds), consumers(ds))
			}
		}
	}
	if len(l.by) != len(want) || l.n != len(want) || missing+dup > 0 {
		t.Fatalf("%d records produced, %d distinct consumed, %d deliveries, %d missing, %d duplicated", len(want), len(l.by), l.n, missing, dup)
	}
}

// noLossNoRecommit requires every value in want to have been processed, and
// a record to be delivered again only if the commit after its earlier
// delivery failed: a committed record is never processed again. It returns
// the number of redelivered records.
func (l *ledger) noLossNoRecommit(t *testing.T, want []string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	redelivered := 0
	for _, v := range want {
		ds := l.by[v]
		if len(ds) == 0 {
			t.Errorf("record %s never consumed", v)
			continue
		}
		if len(ds) > 1 {
			redelivered++
		}
		for _, d := range ds[:len(ds)-1] {
			if d.committed {
				t.Errorf("record %s was processed again after a successful commit: %v", v, consumers(ds))
			}
		}
	}
	if len(l.by) != len(want) {
		t.Errorf("%d distinct records consumed, %d produced", len(l.by), len(want))
	}
	return redelivered
}

// consumer is a group member that processes what it polls, commits it, and
// only then lets a rebalance proceed (BlockRebalanceOnPoll), so no record
// can be processed by two members.
type consumer struct {
	name string
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	events   []string // "assigned"/"revoked"/"lost" with partitions
	assigned []time.Time
	revoked  []time.Time
	lost     []time.Time
}

func (c *consumer) note(kind string, m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m[topic]) == 0 {
		return
	}
	c.events = append(c.events, fmt.Sprintf("%s %v", kind, m[topic]))
	switch kind {
	case "assigned":
		c.assigned = append(c.assigned, time.Now())
	case "revoked":
		c.revoked = append(c.revoked, time.Now())
	case "lost":
		c.lost = append(c.lost, time.Now())
	}
}

func startConsumer(t *testing.T, name string, seeds []string, l *ledger, opts ...kgo.Opt) *consumer {
	t.Helper()
	c := &consumer{name: name, stop: make(chan struct{}), done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(3 * time.Second),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ClientID(name),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.note("assigned", m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.note("revoked", m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.note("lost", m) }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.cl = cl
	go func() {
		defer close(c.done)
		defer cl.Close() // leaves the group
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			fetches := cl.PollRecords(ctx, 50)
			cancel()
			fetches.EachError(func(tp string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					t.Logf("%s: fetch %s/%d: %v", name, tp, p, err)
				}
			})
			if recs := fetches.Records(); len(recs) > 0 {
				ds := l.deliver(name, recs)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cl.CommitUncommittedOffsets(ctx)
				cancel()
				if err != nil {
					err = fmt.Errorf("%s: commit of %d processed records: %w", name, len(recs), err)
				}
				l.commitResult(ds, err)
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { c.leave() })
	return c
}

// leave stops polling (after committing what was processed) and leaves.
func (c *consumer) leave() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

func (c *consumer) revokedAfter(at time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, ts := range append(slices.Clone(c.revoked), c.lost...) {
		if ts.After(at) {
			out = append(out, ts)
		}
	}
	return out
}

func (c *consumer) assignedAfter(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.assigned) > 0 && c.assigned[len(c.assigned)-1].After(at)
}

func (c *consumer) history() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func newProducer(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records to every partition, values "<tag>-p<partition>-<i>".
func produce(t *testing.T, cl *kgo.Client, tag string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	var values []string
	for i := range n {
		for p := range int32(partitions) {
			v := fmt.Sprintf("%s-p%d-%d", tag, p, i)
			values = append(values, v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return values
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// committedOffsets asks the group's coordinator for its committed offsets.
func committedOffsets(t *testing.T, cl *kgo.Client) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = groupID
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0, 1, 2, 3, 4, 5}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// checkCommittedAtEnd requires the group's committed offsets to be the end
// of every partition: everything consumed was committed.
func checkCommittedAtEnd(t *testing.T, cl *kgo.Client, svc *stream.Service) {
	t.Helper()
	if err := svc.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ti, err := svc.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var got map[int32]int64
	waitFor(t, "commits of the last records", 5*time.Second, func() bool {
		got = committedOffsets(t, cl)
		for _, p := range ti.PartitionsInfo {
			if got[p.Partition] != p.End {
				return false
			}
		}
		return true
	})
}

func setupTopic(t *testing.T, svc *stream.Service) {
	t.Helper()
	if err := svc.CreateTopic(context.Background(), stream.TopicConfig{Name: topic, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

func fileBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// groupRebalance: three members share six partitions while records flow;
// one leaves; the other two take its partitions over. Every record is
// processed exactly once across the group, and the committed offsets end
// at the end of every partition.
func groupRebalance(t *testing.T, balancer kgo.GroupBalancer) {
	n := startNode(t, fileBucket(t), 10*time.Second)
	setupTopic(t, n.svc)
	seeds := []string{n.addr}
	prod := newProducer(t, seeds)
	l := newLedger()

	want := produce(t, prod, "a", 50)
	c1 := startConsumer(t, "c1", seeds, l, kgo.Balancers(balancer))
	c2 := startConsumer(t, "c2", seeds, l, kgo.Balancers(balancer))
	c3 := startConsumer(t, "c3", seeds, l, kgo.Balancers(balancer))
	for i := range 5 {
		want = append(want, produce(t, prod, fmt.Sprintf("b%d", i), 10)...)
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, "the first records", 15*time.Second, func() bool { return l.count() >= len(want) })
	waitFor(t, "every member to own partitions", 10*time.Second, func() bool {
		return len(c1.history()) > 0 && len(c2.history()) > 0 && len(c3.history()) > 0
	})

	// c3 leaves while records keep coming.
	left := time.Now()
	done := make(chan []string)
	go func() {
		var vs []string
		for i := range 5 {
			vs = append(vs, produce(t, prod, fmt.Sprintf("c%d", i), 10)...)
			time.Sleep(50 * time.Millisecond)
		}
		done <- vs
	}()
	c3.leave()
	want = append(want, <-done...)
	want = append(want, produce(t, prod, "d", 20)...)
	waitFor(t, "every record", 15*time.Second, func() bool { return l.count() >= len(want) })
	time.Sleep(200 * time.Millisecond) // a duplicate would show up now
	l.exactlyOnce(t, want)
	checkCommittedAtEnd(t, prod, n.svc)

	// Records produced after c3 left went to c1 and c2 only.
	l.mu.Lock()
	for v, ds := range l.by {
		if v[0] == 'd' && ds[0].consumer == "c3" {
			t.Errorf("record %s produced after c3 left was consumed by c3", v)
		}
	}
	l.mu.Unlock()
	if balancer.ProtocolName() == "cooperative-sticky" {
		// Cooperative rebalancing: the members that stay keep their
		// partitions when one leaves; they only gain.
		for _, c := range []*consumer{c1, c2} {
			if r := c.revokedAfter(left); len(r) > 0 {
				t.Errorf("%s lost partitions when c3 left: %v", c.name, c.history())
			}
		}
	}
	for _, c := range []*consumer{c1, c2, c3} {
		t.Logf("%s: %v", c.name, c.history())
	}
}

func TestGroupRebalanceEagerRange(t *testing.T) {
	groupRebalance(t, kgo.RangeBalancer())
}

func TestGroupRebalanceCooperativeSticky(t *testing.T) {
	groupRebalance(t, kgo.CooperativeStickyBalancer())
}

// failoverSetup starts two agents, a group of two members, and consumes a
// first lot of records; it returns the agent coordinating the group.
func failoverSetup(t *testing.T) (coord, survivor *node, prod *kgo.Client, l *ledger, cs []*consumer, want []string) {
	const lease = time.Second
	b := fileBucket(t)
	n1 := startNode(t, b, lease)
	n2 := startNode(t, b, lease)
	setupTopic(t, n1.svc)
	seeds := []string{n1.addr, n2.addr}
	prod = newProducer(t, seeds)
	l = newLedger()
	want = produce(t, prod, "a", 30)
	cs = []*consumer{startConsumer(t, "c1", seeds, l), startConsumer(t, "c2", seeds, l)}
	waitFor(t, "the first records", 15*time.Second, func() bool { return l.count() >= len(want) })
	checkCommittedAtEnd(t, prod, n1.svc)
	switch lease := n1.svc.Log().Lease(groups.LeaseName(groupID)); lease.Addr {
	case n1.addr:
		return n1, n2, prod, l, cs, want
	case n2.addr:
		return n2, n1, prod, l, cs, want
	default:
		t.Fatalf("group lease %+v names neither agent", lease)
		return
	}
}

// The agent coordinating the group dies; once its lease expires the other
// agent coordinates, the members rejoin there and resume from their
// committed offsets: nothing is lost and nothing is processed twice.
func TestCoordinatorFailover(t *testing.T) {
	coord, survivor, prod, l, cs, want := failoverSetup(t)
	before := survivor.svc.Log().Lease(groups.LeaseName(groupID))
	coord.kill()
	killed := time.Now()
	waitFor(t, "the members to rejoin at the other agent", 20*time.Second, func() bool {
		return cs[0].assignedAfter(killed) && cs[1].assignedAfter(killed)
	})
	rejoined := time.Since(killed)
	after := survivor.svc.Log().Lease(groups.LeaseName(groupID))
	if after.Addr != survivor.addr || after.Epoch <= before.Epoch {
		t.Fatalf("lease after failover: %+v (before %+v)", after, before)
	}

	want = append(want, produce(t, prod, "b", 30)...)
	waitFor(t, "the records produced after the failover", 20*time.Second, func() bool { return l.count() >= len(want) })
	time.Sleep(300 * time.Millisecond) // a duplicate would show up now
	// Kafka's contract around a coordinator change: a commit made in the
	// rebalance window may be refused with a rebalance error (the member
	// must rejoin first) and its records are then delivered again; nothing
	// is lost, and a record whose commit succeeded is never processed again.
	// Usually no commit fails at all (then this is exactly once); on a loaded
	// machine a commit racing the rejoin has been seen refused.
	l.mu.Lock()
	for _, err := range l.failedCommits {
		// A commit sent to the killed coordinator before the client
		// learned of the new one fails to connect: also part of the
		// change, as on Kafka.
		toKilled := (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")) && strings.Contains(err.Error(), coord.addr)
		if !toKilled && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.IllegalGeneration) &&
			!errors.Is(err, kerr.RebalanceInProgress) && !errors.Is(err, kerr.NotCoordinator) {
			t.Errorf("commit failed with an error that is not part of a rebalance: %v", err)
		} else {
			t.Logf("commit refused during the failover: %v", err)
		}
	}
	l.mu.Unlock()
	redelivered := l.noLossNoRecommit(t, want)
	t.Logf("%d records delivered again after a refused commit", redelivered)
	checkCommittedAtEnd(t, prod, survivor.svc)
	t.Logf("coordinator %s killed; members rejoined at %s (epoch %d) after %v",
		coord.addr, survivor.addr, after.Epoch, rejoined.Round(time.Millisecond))
	for _, c := range cs {
		t.Logf("%s: %v", c.name, c.history())
	}
}

// The coordinator dies while records flow. Members process records whose
// commits then fail (no coordinator until the lease expires, and the new
// one does not know them): those records are processed again after the
// rejoin, as Kafka's at-least-once contract allows. Nothing is lost, and no
// record whose commit succeeded is ever processed again.
func TestCoordinatorFailoverUnderLoad(t *testing.T) {
	coord, survivor, prod, l, cs, want := failoverSetup(t)
	stop := make(chan struct{})
	produced := make(chan []string)
	go func() {
		var vs []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				produced <- vs
				return
			default:
			}
			vs = append(vs, produce(t, prod, fmt.Sprintf("b%d", i), 2)...)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	coord.kill()
	killed := time.Now()
	waitFor(t, "the members to rejoin at the other agent", 20*time.Second, func() bool {
		return cs[0].assignedAfter(killed) && cs[1].assignedAfter(killed)
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	want = append(want, <-produced...)
	want = append(want, produce(t, prod, "c", 10)...)
	waitFor(t, "every record", 20*time.Second, func() bool { return l.count() >= len(want) })
	time.Sleep(300 * time.Millisecond)
	redelivered := l.noLossNoRecommit(t, want)
	checkCommittedAtEnd(t, prod, survivor.svc)
	l.mu.Lock()
	failed := len(l.failedCommits)
	l.mu.Unlock()
	t.Logf("%d records, %d processed again after %d failed commits", len(want), redelivered, failed)
}
