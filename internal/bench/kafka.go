package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/prefixed"
	"github.com/twoway/twoway/internal/auth"
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
	// TLS and SASL ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"; "" for
	// none) add a second Kafka phase over a secured listener, reported
	// against the plaintext one of the same run.
	TLS  bool
	SASL string
	// Transactional adds a phase of transactional producers (see
	// measureKafkaTxn), reported against the idempotent one of the same
	// run.
	Transactional bool
	// TxnProducers is the number of transactional producers. Default
	// DefaultTxnProducers.
	TxnProducers int
}

// kafkaSecurity is how a Kafka phase connects.
type kafkaSecurity struct {
	tls  bool
	sasl string
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
	// The secured phase, with KafkaOptions.TLS or SASL: its produce
	// MB/s, latencies and its ratio to the plaintext phase above.
	Secure           string  `json:"secure,omitempty"`
	SecureProduceMBs float64 `json:"secure_produce_mb_s,omitempty"`
	SecureProduceP50 float64 `json:"secure_produce_p50_ms,omitempty"`
	SecureProduceP99 float64 `json:"secure_produce_p99_ms,omitempty"`
	SecureRatio      float64 `json:"secure_ratio,omitempty"`
	// The transactional phase, with KafkaOptions.Transactional: its
	// produce MB/s, the latency of one transaction (begin to committed),
	// and its ratio to the idempotent phase above.
	TxnProduceMBs    float64       `json:"txn_produce_mb_s,omitempty"`
	TxnP50Ms         float64       `json:"txn_p50_ms,omitempty"`
	TxnP99Ms         float64       `json:"txn_p99_ms,omitempty"`
	TxnRecords       int64         `json:"txn_records,omitempty"`
	TxnCount         int64         `json:"txn_transactions,omitempty"`
	TxnProducers     int           `json:"txn_producers,omitempty"`
	TxnRatio         float64       `json:"txn_ratio,omitempty"`
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
	kerr := measureKafka(ctx, pb, po, &res, kafkaSecurity{})
	if kerr == nil && (opts.TLS || opts.SASL != "") {
		var sec KafkaResult
		spb, err := prefixed.Wrap(b, prefix+"secure/")
		if err != nil {
			return KafkaResult{}, err
		}
		if kerr = measureKafka(ctx, spb, po, &sec, kafkaSecurity{tls: opts.TLS, sasl: opts.SASL}); kerr == nil {
			res.Secure = securityName(opts.TLS, opts.SASL)
			res.SecureProduceMBs, res.SecureProduceP50, res.SecureProduceP99 = sec.KafkaProduceMBs, sec.KafkaProduceP50Ms, sec.KafkaProduceP99Ms
			if res.KafkaProduceMBs > 0 {
				res.SecureRatio = sec.KafkaProduceMBs / res.KafkaProduceMBs
			}
		}
	}
	if kerr == nil && opts.Transactional {
		tpb, err := prefixed.Wrap(b, prefix+"txn/")
		if err != nil {
			return KafkaResult{}, err
		}
		producers := opts.TxnProducers
		if producers <= 0 {
			producers = DefaultTxnProducers
		}
		if kerr = measureKafkaTxn(ctx, tpb, po, producers, &res); kerr == nil && res.KafkaProduceMBs > 0 {
			res.TxnRatio = res.TxnProduceMBs / res.KafkaProduceMBs
		}
	}
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

func measureKafka(ctx context.Context, b bucket.Bucket, o ProduceOptions, res *KafkaResult, sec kafkaSecurity) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	logOpts := o.Log
	if logOpts.Logger == nil {
		logOpts.Logger = quiet
	}
	users := auth.New()
	svc, err := stream.Open(ctx, b, stream.Options{Log: logOpts}, users)
	if err != nil {
		return err
	}
	defer svc.Close()
	kcfg := kafka.Config{Service: svc, Addr: "127.0.0.1:0", Logger: quiet}
	var clientOpts []kgo.Opt
	if sec.tls {
		serverTLS, clientTLS, err := selfSigned()
		if err != nil {
			return err
		}
		kcfg.TLS = serverTLS
		clientOpts = append(clientOpts, kgo.DialTLSConfig(clientTLS))
	}
	if sec.sasl != "" {
		const user, pass = "bench", "bench-password"
		if err := users.SetUser(ctx, user, pass, nil, time.Now().UnixMilli()); err != nil {
			return err
		}
		kcfg.Auth, kcfg.RequireAuth = users, true
		switch sec.sasl {
		case auth.ScramSHA256:
			clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case auth.ScramSHA512:
			clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		case auth.Plain:
			clientOpts = append(clientOpts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		default:
			return fmt.Errorf("SASL mechanism %q: use SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN", sec.sasl)
		}
	}
	srv := kafka.NewServer(kcfg)
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

	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(1 << 20),
		// 32 MiB buffered, a Java producer's default buffer.memory and what
		// the direct produce benchmark keeps in flight.
		kgo.MaxBufferedBytes(32 << 20), kgo.MaxBufferedRecords(1 << 20)}, clientOpts...)...)
	if err != nil {
		return err
	}
	defer prod.Close()
	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100 * time.Millisecond)}, clientOpts...)...)
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

func securityName(tls bool, sasl string) string {
	switch {
	case tls && sasl != "":
		return "SASL_SSL " + sasl
	case tls:
		return "SSL"
	default:
		return "SASL_PLAINTEXT " + sasl
	}
}

// selfSigned makes a certificate for 127.0.0.1 and the configs of a
// server serving it and a client trusting it.
func selfSigned() (*tls.Config, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "twoway bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}
