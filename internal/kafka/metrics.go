package kafka

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RequestDuration is the time the Kafka front door takes to answer a
// request, by API (produce, fetch, ...): for a produce, until its commit is
// durable; for a fetch, including the wait the client asked for. It is the
// process's, shared by every server in it; the agent registers it.
var RequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name: "twoway_kafka_request_duration_seconds",
	Help: "Time to answer a Kafka request, by API; a fetch includes the wait its client asked for.",
	// 0.1 ms to about 26 s.
	Buckets: prometheus.ExponentialBuckets(0.0001, 2, 19),
}, []string{"api"})

// RequestBytes counts the record bytes Kafka produce requests brought and
// fetch responses carried.
var RequestBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "twoway_kafka_record_bytes_total",
	Help: "Record batch bytes received in produce requests and sent in fetch responses.",
}, []string{"api"})

func observeRequest(key int16, start time.Time, req kmsg.Request, resp kmsg.Response) {
	switch key {
	case 0: // Produce
		RequestDuration.WithLabelValues("produce").Observe(time.Since(start).Seconds())
		if r, ok := req.(*kmsg.ProduceRequest); ok {
			n := 0
			for _, t := range r.Topics {
				for _, p := range t.Partitions {
					n += len(p.Records)
				}
			}
			RequestBytes.WithLabelValues("produce").Add(float64(n))
		}
	case 1: // Fetch
		RequestDuration.WithLabelValues("fetch").Observe(time.Since(start).Seconds())
		if r, ok := resp.(*kmsg.FetchResponse); ok {
			n := 0
			for _, t := range r.Topics {
				for _, p := range t.Partitions {
					n += len(p.RecordBatches)
				}
			}
			RequestBytes.WithLabelValues("fetch").Add(float64(n))
		}
	}
}
