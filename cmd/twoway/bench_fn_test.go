package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/twoway/twoway/internal/bench"
)

// A tiny run of every phase of bench fn (it builds its guest with the Go
// toolchain, as the command does), as a table and as JSON.
func TestBenchFnRuns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("bench fn builds its guest with the go command")
	}
	args := []string{"bench", "fn", "--dir", t.TempDir(), "--records", "400", "--keys", "40", "--partitions", "2",
		"--produce-duration", "100ms", "--latency-samples", "5", "--http-concurrency", "2", "--http-duration", "200ms",
		"--instantiations", "2", "--actors", "500", "--actor-state-size", "100", "--settle", "10ms",
		"--module-go", "", "--module-as", ""}
	r := twoway(t, append(args, "--json")...)
	if r.code != 0 {
		t.Fatalf("twoway %v exited %d: %s", args, r.code, r.stderr)
	}
	var res bench.FnResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if res.UpdatesS <= 0 || res.ProduceRecordsS <= 0 || res.LatencyP50Ms <= 0 || res.PutIfAbsentP50Ms <= 0 || res.HTTPRatio <= 0 {
		t.Errorf("a figure is missing: %s", r.stdout)
	}
	if len(res.Modules) != 1 || res.Modules[0].InstantiateP50Ms <= 0 || res.Modules[0].CompileMs <= 0 {
		t.Errorf("modules: %+v", res.Modules)
	}
	if m := res.Memory; m == nil || m.ActorsSeen != 500 || m.RSSOpenMB <= 0 || !m.Child {
		t.Errorf("memory: %+v", m)
	}
	// The table, from the same result.
	var table strings.Builder
	if err := printFnResult(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"updates ", "produce ", "latency ", "http guest", "http native", "bench guest (Go, raw ABI)", "agent open", "in a child process"} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("the table does not mention %q:\n%s", w, table.String())
		}
	}
}
