package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

func testService(t *testing.T, b bucket.Bucket) *Service {
	t.Helper()
	s, err := Open(context.Background(), b, Options{Log: commitlog.Options{
		Linger: time.Millisecond, PollMin: time.Millisecond, PollMax: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fileBucket(t *testing.T) bucket.Bucket {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProduceAndReadAcrossAgents(t *testing.T) {
	ctx := context.Background()
	b := fileBucket(t)
	a1, a2 := testService(t, b), testService(t, b)
	if err := a1.CreateTopic(ctx, TopicConfig{Name: "orders", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if err := a1.CreateTopic(ctx, TopicConfig{Name: "orders", Partitions: 3}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	// Agent 2 learns of the topic by tailing.
	if err := a2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		bases, errs, err := a2.Produce(ctx, "orders", []Batch{{Partition: 1, Records: []records.Record{{Key: []byte("k"), Value: []byte(v), Headers: []records.Header{{Key: "i", Value: []byte(v)}}}}}})
		if err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
		if bases[0] != int64(i) {
			t.Fatalf("record %d got offset %d", i, bases[0])
		}
	}
	// Agent 1 reads them, long-polling for the last ones if it must.
	var got []string
	for off := int64(0); len(got) < 20; {
		recs, _, err := a1.Read(ctx, "orders", 1, off, 7, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("no records at offset %d", off)
		}
		for _, r := range recs {
			if r.Offset != off {
				t.Fatalf("offset %d, want %d", r.Offset, off)
			}
			if string(r.Headers[0].Value) != string(r.Value) {
				t.Fatalf("header %q for value %q", r.Headers[0].Value, r.Value)
			}
			got = append(got, string(r.Value))
			off++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v", got)
	}
	// Past the end: an out-of-range error naming the valid range.
	_, _, err := a1.Read(ctx, "orders", 1, 21, 1, 0)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.End != 20 {
		t.Fatalf("read past end: %v", err)
	}
	// At the end with wait: returns empty after the wait.
	start := time.Now()
	recs, _, err := a1.Read(ctx, "orders", 1, 20, 1, 50*time.Millisecond)
	if err != nil || len(recs) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("long poll at end: %v %d", err, len(recs))
	}
	// Bad input changes nothing.
	if _, _, err := a1.Produce(ctx, "orders", []Batch{{Partition: 9, Records: []records.Record{{Value: []byte("x")}}}}); !errors.Is(err, ErrUnknownPartition) {
		t.Fatalf("bad partition: %v", err)
	}
	if _, _, err := a1.Produce(ctx, "nope", []Batch{{Partition: 0, Records: []records.Record{{Value: []byte("x")}}}}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, _, err := a1.Produce(ctx, "orders", []Batch{{Partition: 0, Raw: []byte("garbage that is not a batch at all, 61+ bytes long..................")}}); !errors.Is(err, ErrInvalidRecords) {
		t.Fatalf("garbage batch: %v", err)
	}
	ti, err := a1.Topic("orders")
	if err != nil || ti.PartitionsInfo[1].End != 20 || ti.PartitionsInfo[0].End != 0 {
		t.Fatalf("describe: %+v %v", ti, err)
	}
	if err := a1.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Topic("orders"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("after delete: %v", err)
	}
}
