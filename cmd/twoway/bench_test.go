package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchProduceHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"bench", "--help"}, []string{"bucket", "produce"}},
		{[]string{"bench", "produce", "--help"}, []string{"--bucket URL", "--partitions", "--record-size size", "(default 1KiB)",
			"--batch-size size", "(default 64KiB)", "--producers", "--duration", "--linger", "--json", "throughput ratio"}},
	} {
		r := twoway(t, c.args...)
		if r.code != 0 {
			t.Errorf("twoway %v exited %d: %s", c.args, r.code, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("twoway %v does not mention %q:\n%s", c.args, w, r.stdout)
			}
		}
	}
}

func TestBenchProduceUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "produce"}, "twoway: bench produce: --bucket is required"},
		{[]string{"bench", "produce", "--bucket", "x", "--partitions", "0"}, "--partitions 0 out of range"},
		{[]string{"bench", "produce", "--bucket", "x", "--record-size", "4"}, "--record-size 4B out of range"},
		{[]string{"bench", "produce", "--bucket", "x", "--batch-size", "1GiB"}, "--batch-size 1GiB out of range"},
		{[]string{"bench", "produce", "--bucket", "x", "--producers", "0"}, "--producers 0 out of range"},
		{[]string{"bench", "produce", "--bucket", "x", "--producers", "4096", "--batch-size", "1MiB"}, "hold too much in flight"},
		{[]string{"bench", "produce", "--bucket", "x", "--duration", "0s"}, "--duration 0s must be positive"},
		{[]string{"bench", "produce", "--bucket", "x", "--linger", "-1ms"}, "--linger -1ms must not be negative"},
	} {
		r := twoway(t, c.args...)
		if r.code != 2 {
			t.Errorf("twoway %v exited %d, want 2", c.args, r.code)
		}
		first, rest, _ := strings.Cut(r.stderr, "\n")
		if !strings.HasPrefix(first, "twoway: ") || !strings.Contains(first, c.want) {
			t.Errorf("twoway %v: first line %q, want it to contain %q", c.args, first, c.want)
		}
		if !strings.Contains(rest, "Usage:") {
			t.Errorf("twoway %v printed no usage after the error:\n%s", c.args, r.stderr)
		}
	}
}

// A short run prints a table, or with --json every field the issue names.
func TestBenchProduceRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"bench", "produce", "--bucket", dir, "--duration", "100ms", "--producers", "4", "--partitions", "2"}
	r := twoway(t, args...)
	if r.code != 0 {
		t.Fatalf("twoway %v exited %d: %s", args, r.code, r.stderr)
	}
	for _, w := range []string{"file://" + dir, "workload    2 partitions, 1KiB records, 64KiB per call, 4 producers, linger 0s",
		"produce ", "MB/s", "ratio", "end to end", "PUTs/s"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("output does not mention %q:\n%s", w, r.stdout)
		}
	}

	r = twoway(t, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("twoway %v --json exited %d: %s", args, r.code, r.stderr)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	for _, f := range []string{"baseline_put_mb_s", "baseline_put_if_absent_p50_ms", "produce_mb_s", "produce_p50_ms",
		"produce_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "puts_per_s", "throughput_ratio", "records_s", "partitions",
		"record_size", "producers", "linger_ms", "commits", "chunks", "avg_chunk_bytes", "conflicts", "duration_s", "machine"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("JSON output lacks %q", f)
		}
	}
	if fields["partitions"] != 2.0 || fields["producers"] != 4.0 || fields["linger_ms"] != 0.0 {
		t.Errorf("JSON does not echo the flags: %s", r.stdout)
	}
}
