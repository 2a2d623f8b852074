package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/prefixed"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// KafkaOptions configures Kafka. Zero fields take the produce benchmark's
// defaults.
type KafkaOptions struct {
	Partitions int
	RecordSize int
	Duration   time.Duration
	// Log tunes the agent's commit log, as in ProduceOptions.
	Log commitlog.Options
}

// KafkaResult is what Kafka measured. MB is 10^6 bytes of record values.
type KafkaResult struct {
	Bucket string `json:"bucket"`

	KafkaProduceMBs   float64 `json:"kafka_produce_mb_s"`
	KafkaRecordsS     float64 `json:"kafka_records_s"`
	KafkaProduceP50Ms float64 `json:"kafka_produce_p50_ms"`
	KafkaProduceP99Ms float64 `json:"kafka_produce_p99_ms"`
	KafkaE2EP50Ms     float64 `json:"kafka_e2e_p50_ms"`
	KafkaE2EP99Ms     float64 `json:"kafka_e2e_p99_ms"`
	KafkaRecords      int64   `json:"kafka_records"`
	KafkaCommits      int64   `json:"kafka_commits"`

	// The same-run baseline: the streams produce benchmark (no Kafka
	// protocol) at the same record size and partitions.
	DirectProduceMBs float64       `json:"direct_produce_mb_s"`
	KafkaRatio       float64       `json:"kafka_ratio"` // KafkaProduceMBs / DirectProduceMBs
	Direct           ProduceResult `json:"direct"`

	Partitions int     `json:"partitions"`
	RecordSize int     `json:"record_size"`
	LingerMs   float64 `json:"linger_ms"`
	DurationS  float64 `json:"duration_s"`
	Machine    Machine `json:"machine"`
}

// Kafka measures producing and consuming through the Kafka listener with a
// real client (franz-go), then, in the same run, the streams produce
// benchmark as the baseline, and reports their ratio. The producer is
// franz-go with its defaults (idempotent, acks=all, batching per partition);
// the consumer reads the same agent's listener and measures produce-to-
// consume latency from a send time carried in each record's first 8 bytes.
func Kafka(ctx context.Context, b bucket.Bucket, opts KafkaOptions) (KafkaResult, error) {
	po, err := ProduceOptions{Partitions: opts.Partitions, RecordSize: opts.RecordSize, Duration: opts.Duration, Log: opts.Log}.withDefaults()
	if err != nil {
		return KafkaResult{}, fmt.Errorf("bench: %w", err)
	}
	res := KafkaResult{
		Bucket:     b.String(),
		Partitions: po.Partitions,
		RecordSize: po.RecordSize,
		LingerMs:   Millis(po.Log.Linger),
		Machine:    CurrentMachine(),
	}
	prefix := "bench/kafka-" + randomHex(8) + "/"
	pb, err := prefixed.Wrap(b, prefix)
	if err != nil {
		return KafkaResult{}, err
	}
	kerr := measureKafka(ctx, pb, po, &res)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	cleanErr := deleteAll(cctx, pb, 16)
	cancel()
	if kerr != nil {
		return KafkaResult{}, fmt.Errorf("bench: kafka phase: %w", kerr)
	}
	direct, err := Produce(ctx, b, po)
	if err != nil && direct.ProduceMBs == 0 {
		return KafkaResult{}, fmt.Errorf("bench: direct produce phase: %w", err)
	}
	res.Direct = direct
	res.DirectProduceMBs = direct.ProduceMBs
	if direct.ProduceMBs > 0 {
		res.KafkaRatio = res.KafkaProduceMBs / direct.ProduceMBs
	}
	return res, errors.Join(err, cleanErr)
}

func measureKafka(ctx context.Context, b bucket.Bucket, o ProduceOptions, res *KafkaResult) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	logOpts := o.Log
	if logOpts.Logger == nil {
		logOpts.Logger = quiet
	}
	svc, err := stream.Open(ctx, b, stream.Options{Log: logOpts})
	if err != nil {
		return err
	}
	defer svc.Close()
	srv := kafka.NewServer(kafka.Config{Service: svc, Addr: "127.0.0.1:0", Logger: quiet})
	if err := srv.Listen(); err != nil {
		return err
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(context.WithoutCancel(ctx)) }()
	defer func() { srv.Close(); <-serveDone }()
	const topic = "bench"
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: topic, Partitions: int32(o.Partitions)}); err != nil {
		return err
	}
	addr := srv.Addr().String()

	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(1<<20),
		// 32 MiB buffered, a Java producer's default buffer.memory and what
		// the direct produce benchmark keeps in flight.
		kgo.MaxBufferedBytes(32<<20), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cons.Close()

	epoch := time.Now()
	var produced atomic.Int64
	prodLat, e2eLat := &Latencies{}, &Latencies{}
	var firstErr error
	var errOnce sync.Once
	consumed := make(chan struct{})
	var target atomic.Int64
	target.Store(-1)
	cctx, cancelCons := context.WithCancel(ctx)
	defer cancelCons()
	go func() {
		defer close(consumed)
		var n int64
		for cctx.Err() == nil {
			// A short poll, so that a target set after the last record
			// arrived is still noticed.
			pctx, cancel := context.WithTimeout(cctx, 100*time.Millisecond)
			fs := cons.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				sent := time.Duration(binary.BigEndian.Uint64(r.Value))
				e2eLat.Add(time.Since(epoch) - sent)
				n++
			})
			if t := target.Load(); t >= 0 && n >= t {
				return
			}
		}
	}()

	value := make([]byte, o.RecordSize)
	deadline := time.Now().Add(o.Duration)
	start := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		v := append([]byte(nil), value...)
		sentAt := time.Since(epoch)
		binary.BigEndian.PutUint64(v, uint64(sentAt))
		prod.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, func(r *kgo.Record, err error) {
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			prodLat.Add(time.Since(epoch) - sentAt)
			produced.Add(1)
		})
	}
	if err := prod.Flush(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if firstErr != nil {
		return fmt.Errorf("produce: %w", firstErr)
	}
	target.Store(produced.Load())
	select {
	case <-consumed:
	case <-time.After(2 * time.Minute):
		return errors.New("the consumer did not read every produced record within 2 minutes")
	}
	n := produced.Load()
	res.KafkaRecords = n
	res.KafkaCommits = svc.Log().Stats.Commits.Load()
	res.DurationS = elapsed.Seconds()
	res.KafkaRecordsS = float64(n) / elapsed.Seconds()
	res.KafkaProduceMBs = float64(n) * float64(o.RecordSize) / 1e6 / elapsed.Seconds()
	res.KafkaProduceP50Ms, res.KafkaProduceP99Ms = Millis(prodLat.Percentile(50)), Millis(prodLat.Percentile(99))
	res.KafkaE2EP50Ms, res.KafkaE2EP99Ms = Millis(e2eLat.Percentile(50)), Millis(e2eLat.Percentile(99))
	return nil
}
