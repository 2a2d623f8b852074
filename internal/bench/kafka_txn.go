package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/kafka"
	"github.com/twoway/twoway/internal/stream"
)

// TxnRecords is the size of a transaction in the transactional phase.
const TxnRecords = 100

// DefaultTxnProducers is how many transactional producers run at once:
// one producer's transactions are sequential, so a service scales out by
// running several, as Kafka Streams runs one per task.
const DefaultTxnProducers = 32

// measureKafkaTxn is the transactional phase: o.producers franz-go
// producers, each with its own transactional id, produce transactions of
// TxnRecords records (begin, produce, commit) for the phase's duration;
// then a read_committed consumer must read every committed record.
func measureKafkaTxn(ctx context.Context, b bucket.Bucket, o ProduceOptions, producers int, res *KafkaResult) error {
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
	if err := svc.Log().EnableFeatures(ctx); err != nil {
		return err
	}
	srv := kafka.NewServer(kafka.Config{Service: svc, Addr: "127.0.0.1:0", Logger: quiet})
	if err := srv.Listen(); err != nil {
		return err
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(context.WithoutCancel(ctx)) }()
	defer func() { srv.Close(); <-serveDone }()
	const topic = "bench-txn"
	if err := svc.CreateTopic(ctx, stream.TopicConfig{Name: topic, Partitions: int32(o.Partitions)}); err != nil {
		return err
	}
	addr := srv.Addr().String()

	var produced, txns atomic.Int64
	lat := &Latencies{}
	value := make([]byte, o.RecordSize)
	deadline := time.Now().Add(o.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, producers)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(fmt.Sprintf("bench-%d", i)), kgo.ProducerBatchMaxBytes(1<<20))
			if err != nil {
				errs[i] = err
				return
			}
			defer cl.Close()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := cl.BeginTransaction(); err != nil {
					errs[i] = err
					return
				}
				var failed atomic.Value
				for range TxnRecords {
					cl.Produce(ctx, &kgo.Record{Topic: topic, Value: append([]byte(nil), value...)}, func(_ *kgo.Record, err error) {
						if err != nil {
							failed.Store(err)
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					errs[i] = err
					return
				}
				if err, _ := failed.Load().(error); err != nil {
					errs[i] = err
					return
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					errs[i] = err
					return
				}
				lat.Add(time.Since(t0))
				produced.Add(TxnRecords)
				txns.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transactional produce: %w", err)
	}

	// Every committed record reads back read_committed.
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cons.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n int64
	for n < produced.Load() {
		fs := cons.PollFetches(rctx)
		if rctx.Err() != nil {
			return fmt.Errorf("read_committed read %d of the %d committed records within 2 minutes", n, produced.Load())
		}
		n += int64(fs.NumRecords())
	}
	res.TxnRecords, res.TxnCount, res.TxnProducers = produced.Load(), txns.Load(), producers
	res.TxnProduceMBs = float64(produced.Load()) * float64(o.RecordSize) / 1e6 / elapsed.Seconds()
	res.TxnP50Ms, res.TxnP99Ms = Millis(lat.Percentile(50)), Millis(lat.Percentile(99))
	return nil
}
