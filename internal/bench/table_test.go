package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A tiny run of every phase of the tables benchmark.
func TestTable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := Table(ctx, TableOptions{
		Rows:                    2000,
		Partitions:              2,
		CommitInterval:          200 * time.Millisecond,
		FreshnessDuration:       2 * time.Second,
		FreshnessCommitInterval: 300 * time.Millisecond,
		ScanRows:                3000,
		ScanCommitInterval:      200 * time.Millisecond,
		TailRows:                500,
		ScanRuns:                2,
		LeaseDuration:           400 * time.Millisecond,
		Dir:                     t.TempDir(),
		Progress:                &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(res)
	t.Logf("%s", js)
	if res.Rows != 2000 || res.MaterializeRowsS <= 0 || res.ParquetRowsS <= 0 || res.MaterializeRatio <= 0 ||
		res.MaterializeFiles < 1 || res.ParquetFiles != res.MaterializeFiles || res.MaterializeCommits < 1 ||
		res.MaterializeFromCreateS < res.MaterializeS {
		t.Errorf("materialization: %s", js)
	}
	f := res.Freshness
	if f == nil || f.Samples < 10 || f.P50Ms <= 0 || f.P99Ms < f.P50Ms || f.MaxMs < f.P99Ms || f.Commits < 1 {
		t.Errorf("freshness: %+v", f)
	} else if f.P99Ms > 5000 {
		t.Errorf("freshness p99 %.0f ms with a commit interval of 300ms", f.P99Ms)
	}
	s := res.Scan
	if !haveSQL {
		if s == nil || s.Reason == "" {
			t.Errorf("scan: %+v, want it skipped", s)
		}
		return
	}
	if s == nil || s.Files < 1 || s.TwowayBestMs <= 0 || s.DuckDBBestMs <= 0 || s.TailBestMs <= 0 || s.Ratio <= 0 || s.TailRatio <= 0 {
		t.Fatalf("scan: %s", js)
	}
	// The last answer is the table's rows and the tail's.
	count, sum, maxID := tableExpect(0, 3500)
	if s.Count != count || s.Sum != sum || s.MaxID != maxID {
		t.Errorf("scan answered %d, %v, %d; want %d, %v, %d", s.Count, s.Sum, s.MaxID, count, sum, maxID)
	}
	for _, w := range []string{"materialize:", "freshness:", "scan:", "tail:"} {
		if !strings.Contains(progress.String(), w) {
			t.Errorf("no progress line for %q:\n%s", w, progress.String())
		}
	}
}

// The values produced are the values DuckDB writes for the baseline.
func TestTableValue(t *testing.T) {
	for _, c := range []struct {
		i    int64
		want string
	}{
		{0, `{"id": 0, "amount": 0, "item": "item-0"}`},
		{123, `{"id": 123, "amount": 30.75, "item": "item-123"}`},
		{10001, `{"id": 10001, "amount": 0.25, "item": "item-10001"}`},
	} {
		if got := string(tableValue(nil, c.i)); got != c.want {
			t.Errorf("tableValue(%d) = %s, want %s", c.i, got, c.want)
		}
	}
}
