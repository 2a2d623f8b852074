package groups_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/groups"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// These tests run franz-go consumers that choose the KIP-848 protocol
// (kgo.ServerSideBalancer) against agents serving it.

const (
	topic848    = "orders"
	parts848    = 12
	session848  = 4 * time.Second
	interval848 = 150 * time.Millisecond
)

// start848 is startNode with the consumer protocol's timings, switched on.
func start848(t *testing.T, b bucket.Bucket, lease time.Duration) *node {
	t.Helper()
	gm, err := groups.NewModule(groups.ModuleConfig{Coordinate: true, Coordinator: groups.Config{
		LeaseDuration:             lease,
		MinSessionTimeout:         500 * time.Millisecond,
		InitialRebalanceDelay:     200 * time.Millisecond,
		ConsumerSessionTimeout:    session848,
		ConsumerHeartbeatInterval: interval848,
		Logger:                    quiet,
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
	if err := svc.Log().EnableFeatures(context.Background()); err != nil {
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

// ownership is the checker: it records which member holds which partition
// (from OnPartitionsAssigned to the end of OnPartitionsRevoked or Lost, or
// the member's death) and every record processed, and reports a partition
// held by two members at once or a record processed by a member not holding
// its partition.
type ownership struct {
	mu         sync.Mutex
	holder     map[string]map[int32]string // topic → partition → member
	violations []string
	handoffs   int
}

func newOwnership() *ownership { return &ownership{holder: map[string]map[int32]string{}} }

func (o *ownership) violate(format string, args ...any) {
	o.violations = append(o.violations, fmt.Sprintf(format, args...))
}

func (o *ownership) assigned(member string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for t, ps := range m {
		if o.holder[t] == nil {
			o.holder[t] = map[int32]string{}
		}
		for _, p := range ps {
			if h, ok := o.holder[t][p]; ok && h != member {
				o.violate("%s/%d assigned to %s while %s holds it", t, p, member, h)
			}
			o.holder[t][p] = member
			o.handoffs++
		}
	}
}

func (o *ownership) released(member string, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			if o.holder[t][p] == member {
				delete(o.holder[t], p)
			}
		}
	}
}

func (o *ownership) died(member string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range o.holder {
		for p, h := range ps {
			if h == member {
				delete(ps, p)
			}
		}
	}
}

func (o *ownership) processing(member string, recs []*kgo.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range recs {
		if h := o.holder[r.Topic][r.Partition]; h != member {
			o.violate("%s processed %s/%d@%d while %q holds the partition", member, r.Topic, r.Partition, r.Offset, h)
		}
	}
}

func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, v := range o.violations {
		if i == 10 {
			t.Errorf("... %d violations in all", len(o.violations))
			break
		}
		t.Error(v)
	}
}

// member848 is a KIP-848 group member that processes what it polls and
// commits it before the next poll; a rebalance waits for that
// (BlockRebalanceOnPoll), and a revocation commits what was processed.
type member848 struct {
	name string
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
}

func startMember848(t *testing.T, name, group string, seeds []string, l *ledger, own *ownership, opts ...kgo.Opt) *member848 {
	t.Helper()
	m := &member848{name: name, stop: make(chan struct{}), done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(group),
		kgo.ServerSideBalancer(),
		kgo.ConsumeTopics(topic848),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(20 * time.Second),
		kgo.HeartbeatInterval(interval848),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(500 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ClientID(name),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { own.assigned(name, a) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("%s: commit on revoke: %v", name, err)
			}
			own.released(name, r)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { own.released(name, r) }),
	}
	if os.Getenv("TWOWAY_TEST_KGO_LOG") != "" {
		base = append(base, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + " " })))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			fetches := cl.PollRecords(ctx, 100)
			cancel()
			if recs := fetches.Records(); len(recs) > 0 {
				own.processing(name, recs)
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
	t.Cleanup(func() { m.leave() })
	return m
}

// leave stops polling and leaves the group (Close sends the leave).
func (m *member848) leave() {
	select {
	case <-m.stop:
		return
	default:
		close(m.stop)
	}
	<-m.done
	m.cl.Close()
}

// producer848 produces to every partition until stopped, and returns the
// values of every acknowledged record.
func producer848(t *testing.T, cl *kgo.Client, topic string, parts int) (stop func() []string) {
	t.Helper()
	quit := make(chan struct{})
	out := make(chan []string)
	go func() {
		var acked []string
		for i := 0; ; i++ {
			select {
			case <-quit:
				out <- acked
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			var recs []*kgo.Record
			for p := range parts {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: fmt.Appendf(nil, "%s-p%d-%d", topic, p, i)})
			}
			res := cl.ProduceSync(ctx, recs...)
			cancel()
			for _, r := range res {
				if r.Err != nil {
					t.Errorf("produce: %v", r.Err)
					continue
				}
				acked = append(acked, string(r.Record.Value))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var once sync.Once
	var acked []string
	stop = func() []string {
		once.Do(func() { close(quit); acked = <-out })
		return acked
	}
	t.Cleanup(func() { stop() })
	return stop
}

func createTopic(t *testing.T, svc *stream.Service, name string, parts int32) {
	t.Helper()
	if err := svc.CreateTopic(context.Background(), stream.TopicConfig{Name: name, Partitions: parts, RetentionMs: -1, RetentionBytes: -1}); err != nil {
		t.Fatal(err)
	}
}

// committedAtEnd waits until the group's committed offsets are the end of
// every partition of the topic.
func committedAtEnd(t *testing.T, adm *kadm.Client, svc *stream.Service, group, topic string) {
	t.Helper()
	if err := svc.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ti, err := svc.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	waitFor(t, "the commits of the last records", 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, p := range ti.PartitionsInfo {
			o, ok := got.Lookup(topic, p.Partition)
			if !ok || o.At != p.End {
				last = fmt.Sprintf("partition %d committed %d, end %d", p.Partition, o.At, p.End)
				return false
			}
		}
		return true
	})
	_ = last
}

// redeliveredBy counts the records delivered more than once whose first
// delivery was by one of the members in from.
func redeliveredBy(l *ledger, from ...string) (n int, others []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for v, ds := range l.by {
		if len(ds) < 2 {
			continue
		}
		if slices.Contains(from, ds[0].consumer) {
			n++
		} else if len(others) < 5 {
			others = append(others, fmt.Sprintf("%s: %v", v, consumers(ds)))
		}
	}
	return n, others
}

func deliveredBy(l *ledger, member string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ds := range l.by {
		for _, d := range ds {
			if d.consumer == member {
				n++
			}
		}
	}
	return n
}

// kip848Membership: members join and leave a group over a topic of many
// partitions under continuous production, and one is killed without
// leaving (SIGKILLed: its session times out). Every produced record is processed; a
// partition never has two holders; only the killed member's records
// processed after its last commit are processed again.
func kip848Membership(t *testing.T, balancer kgo.GroupBalancer, assignor string) {
	n := start848(t, fileBucket(t), 10*time.Second)
	createTopic(t, n.svc, topic848, parts848)
	seeds := []string{n.addr}
	prod := newProducer(t, seeds)
	adm := kadm.NewClient(prod)
	l, own := newLedger(), newOwnership()
	group := "g848-" + assignor
	opt := kgo.Balancers(balancer)

	stopProducing := producer848(t, prod, topic848, parts848)
	c1 := startMember848(t, "c1", group, seeds, l, own, opt)
	waitFor(t, "c1 to consume", 20*time.Second, func() bool { return l.count() > 0 })
	c2 := startMember848(t, "c2", group, seeds, l, own, opt)
	c3 := startChildMember(t, "c3", group, seeds, assignor, l, own) // a process of its own, to be SIGKILLed
	describe := func() kadm.DescribedConsumerGroup {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		return d[group]
	}
	stableWith := func(k int) func() bool {
		return func() bool {
			d := describe()
			if d.Err != nil || d.State != "Stable" || len(d.Members) != k {
				return false
			}
			total := 0
			for _, m := range d.Members {
				total += len(m.Assignment[topic848])
			}
			return total == parts848
		}
	}
	waitFor(t, "three members sharing the partitions", 30*time.Second, stableWith(3))
	d := describe()
	if d.AssignorName != assignor {
		t.Errorf("assignor %q, want %q", d.AssignorName, assignor)
	}
	for _, m := range d.Members {
		if got := len(m.Assignment[topic848]); got != parts848/3 {
			t.Errorf("member %s (%s) holds %d partitions, want %d: %+v", m.MemberID, m.ClientID, got, parts848/3, d.Members)
		}
		if m.MemberEpoch != d.AssignmentEpoch || m.MemberType != 1 {
			t.Errorf("member %s: epoch %d (assignment epoch %d), type %d", m.ClientID, m.MemberEpoch, d.AssignmentEpoch, m.MemberType)
		}
	}

	c2.leave()
	c4 := startMember848(t, "c4", group, seeds, l, own, opt)
	waitFor(t, "c4 to take c2's place", 30*time.Second, stableWith(3))
	killed := time.Now()
	c3.kill()
	waitFor(t, "c3's session to time out and its partitions to move", 30*time.Second, stableWith(2))
	if since := time.Since(killed); since < session848-time.Second {
		t.Errorf("c3's partitions moved %v after it vanished, before its session timeout %v", since, session848)
	}
	time.Sleep(500 * time.Millisecond)
	want := stopProducing()
	waitFor(t, "every record", 30*time.Second, func() bool { return l.count() >= len(want) })
	committedAtEnd(t, adm, n.svc, group, topic848)

	own.check(t)
	redelivered := l.noLossNoRecommit(t, want)
	byKilled, others := redeliveredBy(l, "c3")
	if len(others) > 0 {
		t.Errorf("records processed twice outside the killed member's uncommitted window: %v", others)
	}
	l.mu.Lock()
	for _, err := range l.failedCommits {
		t.Errorf("commit failed: %v", err)
	}
	l.mu.Unlock()
	own.mu.Lock()
	handoffs := own.handoffs
	own.mu.Unlock()
	if deliveredBy(l, "c3") == 0 {
		t.Error("the killed member processed nothing")
	}
	t.Logf("%d records, %d partition assignments, %d processed again (%d first by the killed member, which processed %d)", len(want), handoffs, redelivered, byKilled, deliveredBy(l, "c3"))
	for _, m := range []*member848{c1, c4} {
		m.leave()
	}
	waitFor(t, "the group to empty", 10*time.Second, func() bool { d := describe(); return d.State == "Empty" })
}

func TestKIP848MembershipUniform(t *testing.T) {
	kip848Membership(t, kgo.StickyBalancer(), groups.AssignorUniform)
}

func TestKIP848MembershipRange(t *testing.T) {
	kip848Membership(t, kgo.RangeBalancer(), groups.AssignorRange)
}

// s3Bucket is the MinIO of `make test`, under a prefix of the test's own.
func s3Bucket(t *testing.T) bucket.Bucket {
	t.Helper()
	raw := os.Getenv("TWOWAY_TEST_S3_URL")
	if raw == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TWOWAY_TEST_S3_URL is not set under CI: the S3 tests must run (make test starts MinIO)")
		}
		t.Skip("TWOWAY_TEST_S3_URL not set; `make test` runs this against MinIO")
	}
	q := ""
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw, q = raw[:i], raw[i:]
	}
	b, err := bucketurl.Open(context.Background(), strings.TrimSuffix(raw, "/")+fmt.Sprintf("/groups848-%d", time.Now().UnixNano())+q)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kip848Failover: two agents on one bucket, members connected to one, the
// other or both; the agent coordinating the group stops (or crashes) under
// continuous production. The other agent takes the group over from its
// state in the log: the same members keep their ids and partitions, every
// record is processed, a partition never has two holders, and a record is
// processed again only if the commit after its first processing failed.
func kip848Failover(t *testing.T, b bucket.Bucket, crash bool) {
	const lease = time.Second
	n1 := start848(t, b, lease)
	n2 := start848(t, b, lease)
	createTopic(t, n1.svc, topic848, parts848)
	both := []string{n1.addr, n2.addr}
	prod := newProducer(t, both)
	adm := kadm.NewClient(prod)
	l, own := newLedger(), newOwnership()
	const group = "g848-failover"
	stopProducing := producer848(t, prod, topic848, parts848)
	ms := []*member848{
		startMember848(t, "c1", group, []string{n1.addr}, l, own),
		startMember848(t, "c2", group, []string{n2.addr}, l, own),
		startMember848(t, "c3", group, both, l, own),
	}
	describe := func() kadm.DescribedConsumerGroup {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return kadm.DescribedConsumerGroup{Err: err}
		}
		return d[group]
	}
	var before kadm.DescribedConsumerGroup
	waitFor(t, "three members sharing the partitions", 30*time.Second, func() bool {
		before = describe()
		return before.Err == nil && before.State == "Stable" && len(before.Members) == 3
	})
	time.Sleep(300 * time.Millisecond)
	coord, survivor := n1, n2
	if lease := n1.svc.Log().Lease(groups.LeaseName(group)); lease.Addr == n2.addr {
		coord, survivor = n2, n1
	}
	if crash {
		coord.kill()
	} else {
		coord.stop()
	}
	changed := time.Now()
	var after kadm.DescribedConsumerGroup
	waitFor(t, "the group to be coordinated by the other agent", 30*time.Second, func() bool {
		after = describe()
		return after.Err == nil && after.Coordinator.Host+":"+strconv.Itoa(int(after.Coordinator.Port)) == survivor.addr && after.State == "Stable"
	})
	t.Logf("coordinator %s %s; the group is stable at %s after %v",
		coord.addr, map[bool]string{true: "crashed", false: "stopped"}[crash], survivor.addr, time.Since(changed).Round(time.Millisecond))
	ids := func(d kadm.DescribedConsumerGroup) []string {
		var out []string
		for _, m := range d.Members {
			out = append(out, m.MemberID)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ids(before), ids(after)) || after.Epoch < before.Epoch {
		t.Errorf("the group did not continue: members %v (epoch %d) before, %v (epoch %d) after", ids(before), before.Epoch, ids(after), after.Epoch)
	}
	time.Sleep(500 * time.Millisecond)
	want := stopProducing()
	waitFor(t, "every record", 30*time.Second, func() bool { return l.count() >= len(want) })
	committedAtEnd(t, adm, survivor.svc, group, topic848)
	own.check(t)
	redelivered := l.noLossNoRecommit(t, want)
	l.mu.Lock()
	for _, err := range l.failedCommits {
		t.Logf("commit refused during the coordinator change: %v", err)
	}
	failed := len(l.failedCommits)
	l.mu.Unlock()
	t.Logf("%d records, %d processed again after %d failed commits", len(want), redelivered, failed)
	for _, m := range ms {
		m.leave()
	}
}

func TestKIP848CoordinatorStops(t *testing.T) { kip848Failover(t, fileBucket(t), false) }

func TestKIP848CoordinatorCrashes(t *testing.T) { kip848Failover(t, fileBucket(t), true) }

func TestKIP848CoordinatorCrashesS3(t *testing.T) { kip848Failover(t, s3Bucket(t), true) }

// hb848 sends one ConsumerGroupHeartbeat.
func hb848(t *testing.T, cl *kgo.Client, group, member string, epoch int32, build func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch = group, member, epoch
	if epoch == 0 {
		req.RebalanceTimeoutMillis = 10000
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	} else {
		req.RebalanceTimeoutMillis = -1
	}
	if build != nil {
		build(req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("heartbeat of %s: %v", member, err)
	}
	return resp
}

func hbErr(resp *kmsg.ConsumerGroupHeartbeatResponse) error {
	err := kerr.ErrorForCode(resp.ErrorCode)
	if err != nil && resp.ErrorMessage != nil {
		return fmt.Errorf("%w: %s", err, *resp.ErrorMessage)
	}
	return err
}

// assigned flattens a heartbeat's assignment (nil: none sent).
func assigned(resp *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
	if resp.Assignment == nil {
		return nil
	}
	out := []int32{}
	for _, t := range resp.Assignment.Topics {
		out = append(out, t.Partitions...)
	}
	slices.Sort(out)
	return out
}

func owns(id [16]byte, ps ...int32) func(*kmsg.ConsumerGroupHeartbeatRequest) {
	return func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if len(ps) > 0 {
			r.Topics = append(r.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: id, Partitions: ps})
		}
	}
}

// The protocol step by step: a partition moves to a new member only after
// its owner's heartbeat shows it revoked; epochs fence commits and
// heartbeats; bad requests get Kafka's errors; partitions added to a topic
// are assigned; a group id used by one protocol is refused to the other.
func TestKIP848Protocol(t *testing.T) {
	n := start848(t, fileBucket(t), 10*time.Second)
	createTopic(t, n.svc, "a", 3)
	ti, err := n.svc.Topic("a")
	if err != nil {
		t.Fatal(err)
	}
	a := ti.ID()
	cl := newProducer(t, []string{n.addr})
	const g = "steps"
	names := func(ts ...string) func(*kmsg.ConsumerGroupHeartbeatRequest) {
		return func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = ts }
	}

	r1 := hb848(t, cl, g, "m1", 0, names("a"))
	if err := hbErr(r1); err != nil || r1.MemberID == nil || *r1.MemberID != "m1" || r1.MemberEpoch <= 0 || r1.HeartbeatIntervalMillis != int32(interval848.Milliseconds()) {
		t.Fatalf("first join: %v %+v", err, r1)
	}
	if got := assigned(r1); !slices.Equal(got, []int32{0, 1, 2}) {
		t.Fatalf("m1 alone got %v, want every partition", got)
	}
	e1 := r1.MemberEpoch

	r2 := hb848(t, cl, g, "m2", 0, names("a"))
	if err := hbErr(r2); err != nil || r2.MemberEpoch <= e1 {
		t.Fatalf("second join: %v %+v", err, r2)
	}
	e2 := r2.MemberEpoch
	if got := assigned(r2); len(got) != 0 {
		t.Fatalf("m2 got %v while m1 still owns every partition", got)
	}
	// m1 learns it must give one up; it keeps its epoch meanwhile.
	r1 = hb848(t, cl, g, "m1", e1, owns(a, 0, 1, 2))
	kept := assigned(r1)
	if err := hbErr(r1); err != nil || r1.MemberEpoch != e1 || len(kept) != 2 {
		t.Fatalf("m1 asked to revoke: %v epoch %d (want %d), assignment %v", err, r1.MemberEpoch, e1, kept)
	}
	r2 = hb848(t, cl, g, "m2", e2, owns(a))
	if got := assigned(r2); len(got) != 0 {
		t.Fatalf("m2 got %v before m1 revoked", got)
	}
	// Commits and fetches are fenced by the member epoch.
	commitP := func(member string, epoch, partition int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = 9
		req.Group, req.MemberID, req.Generation = g, member, epoch
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "a", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: 0, LeaderEpoch: -1}}}}
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	commit := func(member string, epoch int32) int16 { return commitP(member, epoch, kept[0]) }
	if code := commit("m1", e1-1); code != kerr.StaleMemberEpoch.Code {
		t.Errorf("commit with an old epoch: %v, want STALE_MEMBER_EPOCH", kerr.ErrorForCode(code))
	}
	if code := commit("nobody", e1); code != kerr.UnknownMemberID.Code {
		t.Errorf("commit of an unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := commit("m1", e1); code != 0 {
		t.Errorf("commit of m1 at its epoch: %v", kerr.ErrorForCode(code))
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 9
	fg := kmsg.NewOffsetFetchRequestGroup()
	fg.Group, fg.MemberID, fg.MemberEpoch = g, kmsg.StringPtr("m2"), e2+5
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{fg}
	if resp, err := fetch.RequestWith(context.Background(), cl); err != nil || resp.Groups[0].ErrorCode != kerr.StaleMemberEpoch.Code {
		t.Errorf("offset fetch with a wrong epoch: %v %+v, want STALE_MEMBER_EPOCH", err, resp)
	}
	if r := hb848(t, cl, g, "m1", e1+7, owns(a, kept...)); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Errorf("heartbeat with a wrong epoch: %v, want FENCED_MEMBER_EPOCH", hbErr(r))
	}

	// m1 acknowledges: it moves to the new epoch, and only now m2 gets the
	// partition.
	r1 = hb848(t, cl, g, "m1", e1, owns(a, kept...))
	if err := hbErr(r1); err != nil || r1.MemberEpoch != e2 || !slices.Equal(assigned(r1), kept) {
		t.Fatalf("m1 after revoking: %v epoch %d (want %d), %v", err, r1.MemberEpoch, e2, assigned(r1))
	}
	r2 = hb848(t, cl, g, "m2", e2, owns(a))
	freed := assigned(r2)
	if len(freed) != 1 || slices.Contains(kept, freed[0]) {
		t.Fatalf("m2 after m1 revoked: %v (m1 kept %v)", freed, kept)
	}
	// A commit sent at m1's previous epoch is still m1's for a partition it
	// held then and holds still (KIP-1251), not for one it gave up.
	if code := commit("m1", e1); code != 0 {
		t.Errorf("commit at the previous epoch of a partition held since: %v", kerr.ErrorForCode(code))
	}
	if code := commitP("m1", e1, freed[0]); code != kerr.StaleMemberEpoch.Code {
		t.Errorf("commit at the previous epoch of a partition given up: %v, want STALE_MEMBER_EPOCH", kerr.ErrorForCode(code))
	}

	// New partitions are assigned at the members' next heartbeats.
	if err := n.svc.AlterTopic(context.Background(), "a", 5, nil, nil); err != nil {
		t.Fatal(err)
	}
	r2 = hb848(t, cl, g, "m2", e2, owns(a, freed...))
	r1 = hb848(t, cl, g, "m1", e2, owns(a, kept...))
	if r1.MemberEpoch <= e2 || r2.MemberEpoch <= e2 {
		t.Errorf("epochs after adding partitions: m1 %d, m2 %d, both want > %d", r1.MemberEpoch, r2.MemberEpoch, e2)
	}
	if got := len(assigned(r1)) + len(assigned(r2)); got != 5 {
		t.Errorf("after growing to 5 partitions the members hold %v and %v", assigned(r1), assigned(r2))
	}

	// Bad requests.
	for _, c := range []struct {
		name   string
		member string
		build  func(*kmsg.ConsumerGroupHeartbeatRequest)
		want   *kerr.Error
	}{
		{"unknown assignor", "m3", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.SubscribedTopicNames, r.ServerAssignor = []string{"a"}, kmsg.StringPtr("sticky")
		}, kerr.UnsupportedAssignor},
		{"bad regex", "m3", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("a(") }, kerr.InvalidRegularExpression},
		{"no member id", "", names("a"), kerr.InvalidRequest},
		{"no subscription", "m3", nil, kerr.InvalidRequest},
	} {
		if r := hb848(t, cl, g, c.member, 0, c.build); r.ErrorCode != c.want.Code || r.ErrorMessage == nil {
			t.Errorf("%s: %v, want %v with a message", c.name, hbErr(r), c.want)
		}
	}
	if r := hb848(t, cl, g, "m9", 3, names("a")); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat of an unknown member: %v, want UNKNOWN_MEMBER_ID", hbErr(r))
	}

	// The classic protocol is refused on this group...
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = g, "consumer", 6000, 6000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
	if resp, err := join.RequestWith(context.Background(), cl); err != nil || resp.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Errorf("JoinGroup on a consumer group: %v %v, want INCONSISTENT_GROUP_PROTOCOL", err, resp)
	}
	// ... and a classic group is refused to the consumer protocol.
	classic, err := kgo.NewClient(kgo.SeedBrokers(n.addr), kgo.ConsumerGroup("classic"), kgo.ConsumeTopics("a"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer classic.Close()
	adm := kadm.NewClient(cl)
	waitFor(t, "the classic group to form", 20*time.Second, func() bool {
		ls, err := adm.ListGroups(context.Background())
		return err == nil && ls["classic"].State == "Stable"
	})
	if r := hb848(t, cl, "classic", "m1", 0, names("a")); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("consumer heartbeat on a classic group: %v, want GROUP_ID_NOT_FOUND", hbErr(r))
	}
	ls, err := adm.ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ls[g].GroupType != "consumer" || ls[g].ProtocolType != "consumer" || ls["classic"].GroupType != "classic" {
		t.Errorf("ListGroups: %+v", ls)
	}
	if only, err := adm.ListGroupsByType(context.Background(), []string{"consumer"}); err != nil || len(only) != 1 || only[g].Group != g {
		t.Errorf("ListGroups of type consumer: %v %+v", err, only)
	}
	dc, err := adm.DescribeConsumerGroups(context.Background(), g, "classic", "none")
	if err != nil {
		t.Fatal(err)
	}
	if d := dc[g]; d.Err != nil || len(d.Members) != 2 || d.AssignorName != groups.AssignorUniform {
		t.Errorf("ConsumerGroupDescribe of %s: %+v", g, d)
	}
	for _, name := range []string{"classic", "none"} {
		if d := dc[name]; !errors.Is(d.Err, kerr.GroupIDNotFound) {
			t.Errorf("ConsumerGroupDescribe of %s: %v, want GROUP_ID_NOT_FOUND", name, d.Err)
		}
	}
	dg, err := adm.DescribeGroups(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if d := dg[g]; d.Err != nil || d.ProtocolType != "consumer" || len(d.Members) != 2 {
		t.Errorf("DescribeGroups of a consumer group: %+v", d)
	}

	// Leaving: the epoch is echoed, the member is gone, its partitions go
	// to the other.
	if r := hb848(t, cl, g, "m1", -1, nil); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Errorf("leave: %v epoch %d", hbErr(r), r.MemberEpoch)
	}
	r2 = hb848(t, cl, g, "m2", r2.MemberEpoch, owns(a, assigned(r2)...))
	if got := assigned(r2); len(got) != 5 {
		t.Errorf("m2 after m1 left holds %v, want all 5", got)
	}
}

// Until every agent knows the consumer group entries, the protocol is not
// switched on: ApiVersions does not offer ConsumerGroupHeartbeat and
// ConsumerGroupDescribe (a client sending them anyway gets
// UNSUPPORTED_VERSION), and a client asking for the protocol uses the
// classic one, and consumes. Once switched on, they are offered.
func TestKIP848NotSwitchedOn(t *testing.T) {
	n := startNode(t, fileBucket(t), 10*time.Second) // features not enabled
	setupTopic(t, n.svc)
	cl := newProducer(t, []string{n.addr})
	offered := func() bool {
		c, err := kgo.NewClient(kgo.SeedBrokers(n.addr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, a := range resp.ApiKeys {
			if a.ApiKey == 68 || a.ApiKey == 69 {
				k++
			}
		}
		return k == 2
	}
	if offered() {
		t.Fatal("the KIP-848 APIs are offered before the feature is on")
	}
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version, req.Group, req.MemberID, req.RebalanceTimeoutMillis, req.SubscribedTopicNames = 1, "g", "m1", 1000, []string{topic}
	resp, err := n.coord.Handle(context.Background(), req)
	if err != nil || resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("heartbeat before the switch: %v %+v, want UNSUPPORTED_VERSION", err, resp)
	}
	want := produce(t, cl, "x", 5)
	l, own := newLedger(), newOwnership()
	m := startMember848(t, "c1", "fallback", []string{n.addr}, l, own, kgo.ConsumeTopics(topic))
	waitFor(t, "the member to consume with the classic protocol", 30*time.Second, func() bool { return l.count() >= len(want) })
	m.leave()
	l.exactlyOnce(t, want)
	ls, err := kadm.NewClient(cl).ListGroups(context.Background())
	if err != nil || ls["fallback"].GroupType != "classic" {
		t.Errorf("the group: %v %+v", err, ls["fallback"])
	}
	if err := n.svc.Log().EnableFeatures(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !offered() {
		t.Fatal("the KIP-848 APIs are not offered once the feature is on")
	}
}

// A regex subscription (SubscribedTopicRegex, resolved by the coordinator)
// takes exactly the matching topics, and a matching topic created later is
// assigned without the members doing anything; beside it, a classic group
// consumes the same topics. Each group processes every record of what it
// subscribes to once.
func TestKIP848RegexBesideClassic(t *testing.T) {
	n := start848(t, fileBucket(t), 10*time.Second)
	for _, tn := range []string{"metrics.cpu", "metrics.mem", "logs"} {
		createTopic(t, n.svc, tn, 4)
	}
	seeds := []string{n.addr}
	prod := newProducer(t, seeds)
	adm := kadm.NewClient(prod)
	produceTo := func(topic string, k int) []string {
		var recs []*kgo.Record
		var vs []string
		for i := range k {
			v := fmt.Sprintf("%s-%d", topic, i)
			vs = append(vs, v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: []byte(v)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return vs
	}
	var metrics, all []string
	for _, tn := range []string{"metrics.cpu", "metrics.mem"} {
		metrics = append(metrics, produceTo(tn, 40)...)
	}
	all = append(slices.Clone(metrics), produceTo("logs", 40)...)

	l, own := newLedger(), newOwnership()
	regex := []kgo.Opt{kgo.ConsumeRegex(), kgo.ConsumeTopics(`metrics\..*`)}
	r1 := startMember848(t, "r1", "by-regex", seeds, l, own, regex...)
	r2 := startMember848(t, "r2", "by-regex", seeds, l, own, regex...)
	lc := newLedger()
	c1 := startConsumer(t, "k1", seeds, lc, kgo.ConsumerGroup("classic-side"), kgo.ConsumeTopics("metrics.cpu", "metrics.mem", "logs"))

	waitFor(t, "the regex group to consume the metrics", 30*time.Second, func() bool { return l.count() >= len(metrics) })
	createTopic(t, n.svc, "metrics.disk", 4)
	metrics = append(metrics, produceTo("metrics.disk", 40)...)
	all = append(all, metrics[len(metrics)-40:]...)
	waitFor(t, "the regex group to consume the new topic", 30*time.Second, func() bool { return l.count() >= len(metrics) })
	waitFor(t, "the classic group to consume its topics", 30*time.Second, func() bool {
		return lc.count() >= len(all)-40 // it does not subscribe to metrics.disk
	})
	time.Sleep(300 * time.Millisecond)
	l.exactlyOnce(t, metrics)
	lc.exactlyOnce(t, all[:len(all)-40])
	own.check(t)

	d, err := adm.DescribeConsumerGroups(context.Background(), "by-regex")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range d["by-regex"].Members {
		if m.SubscribedTopicRegex == nil || !strings.Contains(*m.SubscribedTopicRegex, `metrics\..*`) {
			t.Errorf("member %s regex %v", m.ClientID, m.SubscribedTopicRegex)
		}
		for tn, ps := range m.Assignment {
			got[tn] += len(ps)
		}
	}
	if want := map[string]int{"metrics.cpu": 4, "metrics.mem": 4, "metrics.disk": 4}; !maps.Equal(got, want) {
		t.Errorf("the regex group is assigned %v, want %v", got, want)
	}
	ls, err := adm.ListGroups(context.Background())
	if err != nil || ls["by-regex"].GroupType != "consumer" || ls["classic-side"].GroupType != "classic" {
		t.Errorf("ListGroups: %v %+v", err, ls)
	}
	r1.leave()
	r2.leave()
	c1.leave()
}

// A member that does not revoke within its rebalance timeout is fenced: its
// partitions go to the member waiting for them, and its next heartbeat is
// UNKNOWN_MEMBER_ID.
func TestKIP848RebalanceTimeout(t *testing.T) {
	n := start848(t, fileBucket(t), 10*time.Second)
	createTopic(t, n.svc, "a", 2)
	ti, err := n.svc.Topic("a")
	if err != nil {
		t.Fatal(err)
	}
	a := ti.ID()
	cl := newProducer(t, []string{n.addr})
	sub := func(r *kmsg.ConsumerGroupHeartbeatRequest) {
		r.SubscribedTopicNames, r.RebalanceTimeoutMillis = []string{"a"}, 300
	}
	r1 := hb848(t, cl, "slow", "m1", 0, sub)
	if len(assigned(r1)) != 2 {
		t.Fatalf("m1: %v %v", hbErr(r1), assigned(r1))
	}
	r2 := hb848(t, cl, "slow", "m2", 0, sub)
	r1 = hb848(t, cl, "slow", "m1", r1.MemberEpoch, owns(a, 0, 1)) // told to revoke one
	if len(assigned(r1)) != 1 {
		t.Fatalf("m1 was not asked to revoke: %v", assigned(r1))
	}
	asked := time.Now()
	// m1 keeps heartbeating without revoking (keepalives), m2 waits.
	var got []int32
	waitFor(t, "m2 to get a partition", 10*time.Second, func() bool {
		hb848(t, cl, "slow", "m1", r1.MemberEpoch, nil)
		r2 = hb848(t, cl, "slow", "m2", r2.MemberEpoch, owns(a, got...))
		if r2.ErrorCode != 0 {
			t.Fatalf("m2: %v", hbErr(r2))
		}
		if r2.Assignment != nil {
			got = assigned(r2)
		}
		return len(got) == 2
	})
	if since := time.Since(asked); since < 300*time.Millisecond {
		t.Errorf("m1's partition moved %v after it was asked to revoke, before its rebalance timeout", since)
	}
	if r := hb848(t, cl, "slow", "m1", r1.MemberEpoch, owns(a, 0, 1)); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("m1 after its rebalance timeout: %v, want UNKNOWN_MEMBER_ID", hbErr(r))
	}
}
