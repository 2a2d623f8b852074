package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/twoway/twoway/internal/bench"
)

const benchKafkaHelp = `
Measure producing and consuming through twoway's Kafka listener with a real
Kafka client (franz-go, with its defaults: idempotent, acks=all, batching per
partition), then, in the same run, the streams produce benchmark on the same
bucket as the baseline (see twoway bench produce --help):

  kafka produce   MB/s of record values, records/s, latency from the
                  client's send to its acknowledgement (p50, p99)
  kafka e2e       from the send to a consumer on the same agent reading it
  direct produce  MB/s of the streams produce benchmark
  kafka ratio     kafka produce MB/s / direct produce MB/s

With --tls and/or --sasl MECHANISM, a second Kafka phase runs over a
secured listener (a self-signed certificate; a user made for the run):

  secure produce  its MB/s and latencies
  secure ratio    secure produce MB/s / kafka produce MB/s (same run)

With --transactional, a phase of --txn-producers transactional producers
(one transactional id each), each running transactions of 100 records
(begin, produce, commit), read back read_committed:

  txn produce     its MB/s and the latency of one transaction (p50, p99)
  txn ratio       txn produce MB/s / kafka produce MB/s (same run)

Everything is written under bench/ and deleted at the end.
`

func runBenchKafka(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("bench kafka", "twoway bench kafka --bucket URL [flags]", benchKafkaHelp)
	bucketURL := fs.String("bucket", "", "bucket `URL` to measure: a directory path, file:///path or s3://bucket/prefix?... (required)")
	partitions := fs.Int("partitions", 16, "`number` of partitions of the topic")
	recordSize := byteSize(bench.DefaultRecordSize)
	fs.Var(&recordSize, "record-size", "`size` of each record's value")
	duration := fs.Duration("duration", bench.DefaultDuration, "length of each phase")
	lingerOf := fs.lingerFlag("extra group-commit `wait` (default 0 on a directory, 100ms on S3, as twoway serve)")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	useTLS := fs.Bool("tls", false, "also measure over TLS")
	saslMech := fs.String("sasl", "", "also measure with SASL `mechanism` scram-sha-256, scram-sha-512 or plain")
	transactional := fs.Bool("transactional", false, "also measure transactional producers (transactions of 100 records)")
	txnProducers := fs.Int("txn-producers", bench.DefaultTxnProducers, "`number` of transactional producers with --transactional")
	if err := fs.parse(e, args, 0); err != nil {
		return err
	}
	badFlag := func(err error) error {
		return &usageError{err: fmt.Errorf("bench kafka: %w", err), usage: func() { fs.usage(e.stderr) }}
	}
	linger := lingerOf()
	if *txnProducers < 1 || *txnProducers > 1000 {
		return badFlag(fmt.Errorf("--txn-producers %d: use 1 to 1000", *txnProducers))
	}
	if err := checkLogBenchFlags(*bucketURL, *partitions, recordSize, *duration, linger); err != nil {
		return badFlag(err)
	}
	b, logOpts, err := openBenchBucket(ctx, *bucketURL, linger)
	if err != nil {
		return err
	}
	mech := strings.ToUpper(*saslMech)
	if mech != "" && mech != "SCRAM-SHA-256" && mech != "SCRAM-SHA-512" && mech != "PLAIN" {
		return badFlag(fmt.Errorf("--sasl %q: use scram-sha-256, scram-sha-512 or plain", *saslMech))
	}
	res, err := bench.Kafka(ctx, b, bench.KafkaOptions{Partitions: *partitions, RecordSize: int(recordSize), Duration: *duration, Log: logOpts,
		TLS: *useTLS, SASL: mech, Transactional: *transactional, TxnProducers: *txnProducers})
	if res.KafkaRecords == 0 {
		return err
	}
	return errors.Join(err, printResult(e.stdout, *asJSON, res, printKafkaResult))
}

func printKafkaResult(w io.Writer, r bench.KafkaResult) error {
	m := r.Machine
	_, err := fmt.Fprintf(w, `bucket          %s
machine         %s/%s, %d CPUs, %s, %s
workload        %d partitions, %s records, linger %v ms, %.1f s

kafka produce   %s MB/s   %.0f records/s   p50 %.2f ms   p99 %.2f ms
kafka e2e       p50 %.2f ms   p99 %.2f ms
direct produce  %s MB/s
kafka ratio     %.2f
`+secureLines(r)+txnLines(r), r.Bucket, m.GOOS, m.GOARCH, m.NumCPU, m.CPUModel, m.GoVersion,
		r.Partitions, formatByteSize(int64(r.RecordSize)), r.LingerMs, r.DurationS,
		megabytes(r.KafkaProduceMBs), r.KafkaRecordsS, r.KafkaProduceP50Ms, r.KafkaProduceP99Ms,
		r.KafkaE2EP50Ms, r.KafkaE2EP99Ms, megabytes(r.DirectProduceMBs), r.KafkaRatio)
	return err
}

func secureLines(r bench.KafkaResult) string {
	if r.Secure == "" {
		return ""
	}
	return fmt.Sprintf("secure produce  %s MB/s   p50 %.2f ms   p99 %.2f ms   (%s)\nsecure ratio    %.2f\n",
		megabytes(r.SecureProduceMBs), r.SecureProduceP50, r.SecureProduceP99, r.Secure, r.SecureRatio)
}

func txnLines(r bench.KafkaResult) string {
	if r.TxnCount == 0 {
		return ""
	}
	return fmt.Sprintf("txn produce     %s MB/s   p50 %.2f ms   p99 %.2f ms   (%d transactions of %d records, %d producers)\ntxn ratio       %.2f\n",
		megabytes(r.TxnProduceMBs), r.TxnP50Ms, r.TxnP99Ms, r.TxnCount, bench.TxnRecords, r.TxnProducers, r.TxnRatio)
}
