package tables

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/module"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// agent is one in-process agent: streams and tables on a bucket.
type agent struct {
	reg     *prometheus.Registry
	set     *module.Set
	streams *stream.Service
	tables  *Module
	users   *auth.Module
	http    *httptest.Server
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLogOptions() commitlog.Options {
	return commitlog.Options{
		PollMin:          time.Millisecond,
		PollMax:          20 * time.Millisecond,
		LeaseDuration:    time.Second,
		RegisterInterval: 200 * time.Millisecond,
		InlineMax:        1 << 20,
	}
}

func startAgent(t testing.TB, b bucket.Bucket, cfg Config) *agent {
	t.Helper()
	return startAgentLog(t, b, cfg, testLogOptions())
}

func startAgentLog(t testing.TB, b bucket.Bucket, cfg Config, opts commitlog.Options) *agent {
	t.Helper()
	a := &agent{streams: stream.New(stream.Options{}), reg: prometheus.NewRegistry(), users: auth.New()}
	cfg.Streams = a.streams
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = time.Second
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 300 * time.Millisecond
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	a.tables = New(cfg)
	mux := http.NewServeMux()
	set, err := module.Open(context.Background(), module.Config{Bucket: b, Log: opts, HTTP: mux, Logger: quiet(), Metrics: a.reg}, a.streams, a.tables, a.users)
	if err != nil {
		t.Fatal(err)
	}
	a.set = set
	a.http = httptest.NewServer(mux)
	t.Cleanup(a.close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := set.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	if err := set.Log().WaitEnabled(ctx, "type:400"); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *agent) close() {
	a.http.Close()
	a.set.Close()
}

func fileBucket(t testing.TB) bucket.Bucket {
	b, err := filebucket.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *agent) createTopic(t testing.TB, name string, parts int32) {
	t.Helper()
	if err := a.streams.CreateTopic(context.Background(), stream.TopicConfig{Name: name, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
}

// produce appends values to partition p as one batch.
func (a *agent) produce(t testing.TB, topic string, p int32, values ...string) {
	t.Helper()
	var recs []records.Record
	for i, v := range values {
		recs = append(recs, records.Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(v), Timestamp: time.Now().UnixMilli(),
			Headers: []records.Header{{Key: "h", Value: []byte("v")}}})
	}
	if _, errs, err := a.streams.Produce(context.Background(), topic, []stream.Batch{{Partition: p, Records: recs}}); err != nil || errs[0] != nil {
		t.Fatalf("produce: %v %v", err, errs)
	}
}

// waitMaterialized waits until the table covers the topic's end in every
// partition.
func (a *agent) waitMaterialized(t testing.TB, name string, timeout time.Duration) *Table {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a.set.Log().Sync(context.Background())
		tb, ok := a.tables.Get(name)
		if !ok {
			t.Fatalf("no table %s", name)
		}
		done := true
		for _, p := range a.tables.partitionsOf(tb.Def.Topic) {
			if off, ok := tb.Offsets[p.Partition]; !ok || off < p.End {
				done = false
			}
		}
		if done && tb.Applied == tb.SchemaRev {
			return tb
		}
		if time.Now().After(deadline) {
			t.Fatalf("table %s not materialized within %v: offsets %v", name, timeout, tb.Offsets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// icebergScan reads a table with iceberg-go from its committed metadata
// file: the rows as maps of column name to value. On a directory bucket
// the files are read through iceberg-go's own local file IO; on S3
// through the bucket (iceberg-go's S3 IO would bring in three clouds'
// SDKs), iceberg-go still decoding every manifest and data file.
func icebergScan(t testing.TB, b bucket.Bucket, metaKey string) []map[string]any {
	t.Helper()
	fio := newBucketIO(context.Background(), b)
	ctx := context.Background()
	fsF := localFS
	if !strings.HasPrefix(b.String(), "file://") {
		fsF = func(context.Context) (icebergio.IO, error) { return fio, nil }
	}
	tbl, err := table.NewFromLocation(ctx, table.Identifier{"default", "t"}, fio.URL(metaKey), fsF, nil)
	if err != nil {
		t.Fatalf("iceberg-go load %s: %v", metaKey, err)
	}
	_, itr, err := tbl.Scan().ToArrowRecords(ctx)
	if err != nil {
		t.Fatalf("iceberg-go scan: %v", err)
	}
	var out []map[string]any
	for rec, err := range itr {
		if err != nil {
			t.Fatalf("iceberg-go scan: %v", err)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				col := rec.Column(c)
				if col.IsNull(i) {
					row[f.Name] = nil
					continue
				}
				row[f.Name] = valueAt(col, i)
			}
			out = append(out, row)
		}
		rec.Release()
	}
	return out
}

func valueAt(col any, i int) any {
	switch c := col.(type) {
	case *array.Int32:
		return c.Value(i)
	case *array.Int64:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.String:
		return c.Value(i)
	case *array.Binary:
		return string(c.Value(i))
	case *array.Boolean:
		return c.Value(i)
	}
	return fmt.Sprint(col.(interface{ ValueStr(int) string }).ValueStr(i))
}

// localFS is iceberg-go's own local file system.
func localFS(context.Context) (icebergio.IO, error) { return icebergio.LocalFS{}, nil }
