package bench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/filebucket"
)

// A short Kafka benchmark on a file bucket produces sane, non-zero figures
// and every field the issue names (no timing thresholds: numbers are
// measured, not asserted).
func TestKafkaBenchShortRun(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Kafka(context.Background(), b, KafkaOptions{Partitions: 4, RecordSize: 1024, Duration: benchDuration()})
	if err != nil {
		t.Fatal(err)
	}
	if res.KafkaRecords == 0 || res.KafkaProduceMBs <= 0 || res.DirectProduceMBs <= 0 || res.KafkaRatio <= 0 {
		t.Fatalf("empty measurement: %+v", res)
	}
	if res.KafkaProduceP50Ms <= 0 || res.KafkaProduceP99Ms < res.KafkaProduceP50Ms || res.KafkaE2EP50Ms <= 0 {
		t.Fatalf("latencies: %+v", res)
	}
	out, _ := json.Marshal(res)
	for _, f := range []string{"kafka_produce_mb_s", "kafka_produce_p50_ms", "kafka_produce_p99_ms", "kafka_e2e_p50_ms", "direct_produce_mb_s", "kafka_ratio"} {
		if !strings.Contains(string(out), `"`+f+`"`) {
			t.Errorf("JSON lacks %s", f)
		}
	}
	t.Logf("kafka %.1f MB/s (p50 %.1f ms, e2e p50 %.1f ms), direct %.1f MB/s, ratio %.2f",
		res.KafkaProduceMBs, res.KafkaProduceP50Ms, res.KafkaE2EP50Ms, res.DirectProduceMBs, res.KafkaRatio)
}

// benchDuration is short for the test run; TWOWAY_BENCH_DURATION stretches
// it for a look at the numbers.
func benchDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("TWOWAY_BENCH_DURATION")); err == nil {
		return d
	}
	return 500 * time.Millisecond
}

// The transactional phase runs, reads back read_committed and reports its
// ratio to the idempotent phase.
func TestKafkaBenchTransactional(t *testing.T) {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Kafka(context.Background(), b, KafkaOptions{Partitions: 4, RecordSize: 1024, Duration: benchDuration(), Transactional: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.TxnCount == 0 || res.TxnRecords != res.TxnCount*TxnRecords || res.TxnProduceMBs <= 0 || res.TxnRatio <= 0 || res.TxnP99Ms < res.TxnP50Ms {
		t.Fatalf("transactional phase: %+v", res)
	}
	t.Logf("idempotent %.1f MB/s, transactional %.1f MB/s (%d transactions, p50 %.1f ms), ratio %.2f",
		res.KafkaProduceMBs, res.TxnProduceMBs, res.TxnCount, res.TxnP50Ms, res.TxnRatio)
}
