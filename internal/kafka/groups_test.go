package kafka

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// fakeGroups answers FindCoordinator with the agent it was given and
// Heartbeat with an error; it records what it saw.
type fakeGroups struct {
	mu   sync.Mutex
	seen []int16
	srv  *Server
}

func (g *fakeGroups) Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	g.mu.Lock()
	g.seen = append(g.seen, req.Key())
	g.mu.Unlock()
	switch r := req.(type) {
	case *kmsg.FindCoordinatorRequest:
		resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
		host, port := g.srv.Advertised()
		for _, k := range r.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, kmsg.FindCoordinatorResponseCoordinator{Key: k, NodeID: g.srv.NodeID(), Host: host, Port: port})
		}
		return resp, nil
	case *kmsg.HeartbeatRequest:
		return nil, errors.New("no such group here")
	case *kmsg.ListGroupsRequest:
		return kmsg.NewPtrHeartbeatResponse(), nil // the wrong type
	}
	return req.ResponseKind(), nil
}

func TestGroupDispatch(t *testing.T) {
	svc := testService(t, testBucket(t))
	g := &fakeGroups{}
	srv := testServer(t, svc, func(c *Config) { c.Groups = g })
	g.srv = srv
	c := dial(t, srv.Addr().String())

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"g1"}
	resp := roundTrip(t, c, 1, fc).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 1 || resp.Coordinators[0].NodeID != srv.NodeID() || resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("find coordinator: %+v", resp)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = "g1"
	if r := roundTrip(t, c, 2, hb).(*kmsg.HeartbeatResponse); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("heartbeat with a failing handler: error %d", r.ErrorCode)
	}
	if r := roundTrip(t, c, 3, kmsg.NewPtrListGroupsRequest()).(*kmsg.ListGroupsResponse); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("list groups answered with the wrong type: error %d", r.ErrorCode)
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version = 8
	roundTrip(t, c, 4, oc)
	g.mu.Lock()
	defer g.mu.Unlock()
	if want := []int16{10, 12, 16, 8}; len(g.seen) != len(want) {
		t.Fatalf("handler saw keys %v, want %v", g.seen, want)
	}

	// The group APIs are advertised with the group handler's versions.
	av := roundTrip(t, c, 5, kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse)
	found := 0
	for _, k := range av.ApiKeys {
		if max, ok := groupMaxVersions[k.ApiKey]; ok {
			found++
			if k.MaxVersion != max {
				t.Errorf("%s advertised up to v%d, want v%d", kmsg.NameForKey(k.ApiKey), k.MaxVersion, max)
			}
		}
	}
	if found != len(groupMaxVersions) {
		t.Fatalf("%d of %d group APIs advertised", found, len(groupMaxVersions))
	}
}

// Without a group handler every group API answers COORDINATOR_NOT_AVAILABLE
// in every error field.
func TestGroupsDisabled(t *testing.T) {
	srv := testServer(t, testService(t, testBucket(t)))
	c := dial(t, srv.Addr().String())
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorKeys = 4, []string{"a", "b"}
	r := roundTrip(t, c, 1, fc).(*kmsg.FindCoordinatorResponse)
	if len(r.Coordinators) != 2 || r.Coordinators[1].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("find coordinator: %+v", r)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 8
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}}
	if r := roundTrip(t, c, 2, of).(*kmsg.OffsetFetchResponse); r.Groups[0].ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("offset fetch: %+v", r)
	}
	for key := range groupMaxVersions {
		req := kmsg.RequestForKey(key)
		if groupError(req, 15, "x") == nil {
			t.Errorf("no error response for %s", kmsg.NameForKey(key))
		}
	}
}

// An agent that has not yet tailed what another agent wrote catches up
// before answering with "unknown topic", an end offset, or "out of range".
func TestLaggingAgentCatchesUp(t *testing.T) {
	ctx := context.Background()
	b := testBucket(t)
	a := testService(t, b)
	slow := slowService(t, b)
	srv := testServer(t, slow)
	if err := a.CreateTopic(ctx, stream.TopicConfig{Name: "late", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := a.Produce(ctx, "late", []stream.Batch{{Records: []records.Record{{Value: []byte{byte(i)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, srv.Addr().String())
	meta := kmsg.NewPtrMetadataRequest()
	name := "late"
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	mr := roundTrip(t, c, 1, meta).(*kmsg.MetadataResponse)
	if mr.Topics[0].ErrorCode != 0 || len(mr.Topics[0].Partitions) != 1 {
		t.Fatalf("metadata: error %d", mr.Topics[0].ErrorCode)
	}
	// More records on the other agent; the consumer knows offset 7.
	for i := range 3 {
		if _, _, err := a.Produce(ctx, "late", []stream.Batch{{Records: []records.Record{{Value: []byte{byte(5 + i)}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxBytes, fetch.SessionEpoch = 11, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "late"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes = 7, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fr := roundTrip(t, c, 2, fetch).(*kmsg.FetchResponse)
	if p := fr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 8 || len(p.RecordBatches) == 0 {
		t.Fatalf("fetch at 7: error %d, high watermark %d, %d bytes", p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
	}
	fp.FetchOffset = 20
	fetch.Topics[0].Partitions[0] = fp
	fr = roundTrip(t, c, 3, fetch).(*kmsg.FetchResponse)
	if p := fr.Topics[0].Partitions[0]; p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch at 20: error %d", p.ErrorCode)
	}
	ep := kmsg.NewPtrOffsetForLeaderEpochRequest()
	ep.Version = 3
	ep.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "late", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, LeaderEpoch: 0}}}}
	if r := roundTrip(t, c, 4, ep).(*kmsg.OffsetForLeaderEpochResponse); r.Topics[0].Partitions[0].EndOffset != 8 {
		t.Fatalf("offset for leader epoch: %+v", r.Topics[0].Partitions[0])
	}
}

// slowService tails the log only every 30 s, so it learns of other agents'
// commits only when it syncs.
func slowService(t *testing.T, b bucket.Bucket) *stream.Service {
	s, err := stream.Open(context.Background(), b, stream.Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: 30 * time.Second, PollMax: 30 * time.Second,
		Logger: quietLogger(), NoJanitor: true, HintAddr: "off", // nor from hints
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
