package groups_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A group member in a process of its own, so that a test can SIGKILL it.
// It tells the test, on file descriptor 3, each partition it is assigned,
// has revoked or lost, and every record it processes (before committing),
// and waits on descriptor 4 for the test to have recorded each: the
// ownership checker sees the events in the order they happened.

const envMember = "TWOWAY_GROUPS_MEMBER"

type childMember struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // the event reader has seen the process end
}

func startChildMember(t *testing.T, name, group string, seeds []string, assignor string, l *ledger, own *ownership) *childMember {
	t.Helper()
	events, childEvents, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	childAcks, acks, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKIP848ChildMember$")
	cmd.Env = append(os.Environ(), envMember+"=1", "MEMBER_NAME="+name, "MEMBER_GROUP="+group,
		"MEMBER_SEEDS="+strings.Join(seeds, ","), "MEMBER_ASSIGNOR="+assignor)
	cmd.ExtraFiles = []*os.File{childEvents, childAcks}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childEvents.Close()
	childAcks.Close()
	c := &childMember{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer acks.Close()
		sc := bufio.NewScanner(events)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var batch []*kgo.Record
		var pending []*delivery
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 5)
			switch f[0] {
			case "A", "R", "L":
				m := map[string][]int32{}
				if len(f) == 3 {
					for _, p := range strings.Split(f[2], ",") {
						n, _ := strconv.Atoi(p)
						m[f[1]] = append(m[f[1]], int32(n))
					}
				}
				if f[0] == "A" {
					own.assigned(name, m)
				} else {
					own.released(name, m)
				}
				fmt.Fprintln(acks, "ok")
			case "P":
				p, _ := strconv.Atoi(f[2])
				o, _ := strconv.ParseInt(f[3], 10, 64)
				batch = append(batch, &kgo.Record{Topic: f[1], Partition: int32(p), Offset: o, Value: []byte(f[4])})
			case "E":
				own.processing(name, batch)
				pending = l.deliver(name, batch)
				batch = nil
				fmt.Fprintln(acks, "ok")
			case "C":
				l.commitResult(pending, nil)
			case "F":
				l.commitResult(pending, fmt.Errorf("%s: %s", name, strings.Join(f[1:], " ")))
			}
		}
		// The process is gone: whatever it held, it holds no more.
		own.died(name)
	}()
	t.Cleanup(func() { c.kill() })
	return c
}

// kill SIGKILLs the member and waits until the checker knows it is gone.
func (c *childMember) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.cmd.Wait()
}

// TestKIP848ChildMember is the member process of the tests above.
func TestKIP848ChildMember(t *testing.T) {
	if os.Getenv(envMember) == "" {
		t.Skip("the member process of the KIP-848 tests")
	}
	events, acks := os.NewFile(3, "events"), bufio.NewReader(os.NewFile(4, "acks"))
	tell := func(lines ...string) {
		for _, l := range lines {
			fmt.Fprintln(events, l)
		}
	}
	ask := func(lines ...string) {
		tell(lines...)
		if _, err := acks.ReadString('\n'); err != nil {
			os.Exit(1) // the test is gone
		}
	}
	partitions := func(kind string, m map[string][]int32) {
		for t, ps := range m {
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = strconv.Itoa(int(p))
			}
			ask(fmt.Sprintf("%s %s %s", kind, t, strings.Join(s, ",")))
		}
	}
	balancer := kgo.StickyBalancer()
	if os.Getenv("MEMBER_ASSIGNOR") == "range" {
		balancer = kgo.RangeBalancer()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(os.Getenv("MEMBER_SEEDS"), ",")...),
		kgo.ConsumerGroup(os.Getenv("MEMBER_GROUP")),
		kgo.ServerSideBalancer(),
		kgo.Balancers(balancer),
		kgo.ConsumeTopics(topic848),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(20*time.Second),
		kgo.HeartbeatInterval(interval848),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.ClientID(os.Getenv("MEMBER_NAME")),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { partitions("A", m) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			cl.CommitUncommittedOffsets(ctx)
			partitions("R", m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { partitions("L", m) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := cl.PollRecords(ctx, 100)
		cancel()
		if recs := fetches.Records(); len(recs) > 0 {
			var lines []string
			for _, r := range recs {
				lines = append(lines, fmt.Sprintf("P %s %d %d %s", r.Topic, r.Partition, r.Offset, r.Value))
			}
			ask(append(lines, "E")...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := cl.CommitUncommittedOffsets(ctx)
			cancel()
			if err != nil {
				tell("F " + err.Error())
			} else {
				tell("C")
			}
		}
		cl.AllowRebalance()
	}
}
