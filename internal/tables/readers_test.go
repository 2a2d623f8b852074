package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
)

// duckdbNode runs test/duckdb/read.js: DuckDB from npm over the files.
func duckdbNode(t *testing.T, query string, files []string) []any {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "test", "duckdb")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("@duckdb/node-api is not installed (make tools installs it): %v", err)
		}
		t.Skip("@duckdb/node-api is not installed: run make tools")
	}
	cmd := exec.Command("node", append([]string{"read.js", query}, files...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("node read.js: %v\n%s", err, msg)
	}
	var res struct {
		Version string  `json:"version"`
		Rows    [][]any `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node read.js: %v: %s", err, out)
	}
	t.Logf("DuckDB %s from npm", res.Version)
	return res.Rows[0]
}

// TestReadersWeDidNotWrite: the table's numbers are the same from
// iceberg-go scanning it, from DuckDB (npm) reading the data files its
// manifests list, and as produced; on a directory and on MinIO.
func TestReadersWeDidNotWrite(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			url := "file://" + t.TempDir()
			if backend == "s3" {
				url = s3URL(t)
			}
			ctx := context.Background()
			b, err := bucketurl.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			checkReaders(t, b)
		})
	}
}

func checkReaders(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 2)
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema, PartitionBy: "day(_timestamp), bucket(4, id)"}); err != nil {
		t.Fatal(err)
	}
	n, sum := 0, 0.0
	maxOff := map[int32]int64{}
	for round := 0; round < 3; round++ {
		for p := int32(0); p < 2; p++ {
			var vals []string
			for i := 0; i < 40; i++ {
				vals = append(vals, fmt.Sprintf(`{"id": %d, "amount": %d.25}`, n, i))
				n++
				sum += float64(i) + 0.25
			}
			a.produce(t, "orders", p, vals...)
			maxOff[p] += 40
		}
		a.waitMaterialized(t, "orders", 20*time.Second)
	}
	tb, _ := a.tables.Get("orders")
	rows := icebergScan(t, b, tb.Main.Metadata)
	gotSum := 0.0
	for _, r := range rows {
		gotSum += r["amount"].(float64)
	}
	if len(rows) != n || gotSum != sum {
		t.Fatalf("iceberg-go: %d rows, sum %v; want %d, %v", len(rows), gotSum, n, sum)
	}
	keys, err := a.tables.dataFiles(ctx, "orders", tb.Main.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, k := range keys {
		p, release, err := a.tables.cache.Path(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		paths = append(paths, p)
	}
	got := duckdbNode(t, `select count(*)::int, sum(amount), max(_offset) filter (where _partition = 0), max(_offset) filter (where _partition = 1) from t`, paths)
	want := []any{float64(n), sum, float64(maxOff[0] - 1), float64(maxOff[1] - 1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("DuckDB (npm): %v, want %v", got, want)
	}
	t.Logf("%d rows in %d data files (partitioned by day and bucket)", n, len(keys))
}
