package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// The client works the same over the network and in process.
func TestClient(t *testing.T) {
	srv, _ := newAPI(t, fileBucket(t), httpapi.Config{})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	remote, err := httpapi.NewClient(ts.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*httpapi.Client{"remote": remote, "in-process": httpapi.NewInProcessClient(srv)} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			topic := "t-" + name
			created, err := c.CreateTopic(ctx, stream.TopicConfig{Name: topic, Partitions: 2, RetentionMs: 3600000})
			if err != nil || created.Partitions != 2 || created.RetentionMs != 3600000 || created.RetentionBytes != -1 {
				t.Fatalf("CreateTopic = %+v, %v", created, err)
			}
			if _, err := c.CreateTopic(ctx, stream.TopicConfig{Name: topic}); !errors.Is(err, stream.ErrTopicExists) {
				t.Errorf("second CreateTopic: %v", err)
			}
			one := int32(1)
			offs, err := c.Produce(ctx, topic, []httpapi.ProduceRecord{
				{Key: []byte("k"), Value: []byte("v"), Headers: []records.Header{{Key: "h", Value: []byte{0, 0xff}}}},
				{Partition: &one, Value: []byte{0xc3, 0x28}, Timestamp: 1234},
				{Partition: &one},
			})
			kp := stream.KafkaPartition([]byte("k"), 2)
			if err != nil || len(offs) != 3 || offs[0].Partition != kp || offs[1] != (httpapi.ProduceOffset{Partition: 1, Offset: map[bool]int64{true: 1, false: 0}[kp == 1]}) {
				t.Fatalf("Produce = %+v, %v", offs, err)
			}
			res, err := c.Read(ctx, topic, 1, httpapi.OffsetEarliest, 0, 0)
			if err != nil || res.NextOffset != res.HighWatermark || res.LogStartOffset != 0 {
				t.Fatalf("Read = %+v, %v", res, err)
			}
			last := res.Records[len(res.Records)-1]
			prev := res.Records[len(res.Records)-2]
			if string(prev.Value) != "\xc3\x28" || prev.Timestamp != 1234 || prev.Key != nil || last.Value != nil || last.Key != nil {
				t.Errorf("records %+v", res.Records)
			}
			res, err = c.Read(ctx, topic, kp, 0, 1, time.Second)
			if err != nil || len(res.Records) != 1 || string(res.Records[0].Key) != "k" || string(res.Records[0].Headers[0].Value) != "\x00\xff" {
				t.Fatalf("Read = %+v, %v", res, err)
			}
			res, err = c.Read(ctx, topic, 1, httpapi.OffsetLatest, 10, 10*time.Millisecond)
			if err != nil || len(res.Records) != 0 || res.NextOffset != res.HighWatermark {
				t.Fatalf("Read latest = %+v, %v", res, err)
			}

			_, err = c.Read(ctx, topic, 1, 99, 10, 0)
			var apiErr *httpapi.Error
			if !errors.As(err, &apiErr) || apiErr.Status != 416 || apiErr.Code != httpapi.CodeOffsetOutOfRange || *apiErr.HighWatermark != res.HighWatermark {
				t.Errorf("read past the end: %#v", err)
			}
			if _, err := c.Read(ctx, topic, 7, 0, 10, 0); !errors.Is(err, stream.ErrUnknownPartition) {
				t.Errorf("read of partition 7: %v", err)
			}
			if _, err := c.Produce(ctx, "nope", []httpapi.ProduceRecord{{}}); !errors.Is(err, stream.ErrUnknownTopic) {
				t.Errorf("produce to an unknown topic: %v", err)
			}

			if tp, err := c.AddPartitions(ctx, topic, 4); err != nil || tp.Partitions != 4 {
				t.Errorf("AddPartitions = %+v, %v", tp, err)
			}
			forever := int64(-1)
			if tp, err := c.SetRetention(ctx, topic, &forever, nil); err != nil || tp.RetentionMs != -1 {
				t.Errorf("SetRetention = %+v, %v", tp, err)
			}
			if tp, err := c.Topic(ctx, topic); err != nil || len(tp.PartitionInfo) != 4 || tp.PartitionInfo[1].EndOffset != res.HighWatermark {
				t.Errorf("Topic = %+v, %v", tp, err)
			}
			if list, err := c.Topics(ctx); err != nil || len(list) == 0 {
				t.Errorf("Topics = %+v, %v", list, err)
			}
			if err := c.DeleteTopic(ctx, topic); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Topic(ctx, topic); !errors.Is(err, stream.ErrUnknownTopic) {
				t.Errorf("Topic after delete: %v", err)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://host?x=1"} {
		if _, err := httpapi.NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
	// An answer that is not the API's own error body still makes an *Error.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer ts.Close()
	c, _ := httpapi.NewClient(ts.URL, nil)
	_, err := c.Topics(t.Context())
	var apiErr *httpapi.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.RetryAfter != 3*time.Second || apiErr.Error() != "502 Bad Gateway: bad gateway" {
		t.Errorf("error %#v", err)
	}
}
