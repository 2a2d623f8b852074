package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/functions"
)

// OpenAndMeasure opens a normal agent (internal/agent, as twoway serve
// does, without listeners) on the directory bucket dir, which holds the
// memory phase's actors, and measures the time Open takes (the log's
// checkpoint restore and catching up) and this process's resident memory
// after it. It is meant to run in a process of its own (`twoway bench
// fn-open`), so that the figure is the agent's alone.
func OpenAndMeasure(ctx context.Context, dir string, actors int, settle time.Duration) (FnOpenResult, error) {
	cache, err := os.MkdirTemp("", "twoway-bench-fn-open-")
	if err != nil {
		return FnOpenResult{}, err
	}
	defer os.RemoveAll(cache)
	start := time.Now()
	a, err := agent.Open(ctx, agent.Config{Bucket: dir, HintAddr: "off", Logger: quietLogger(),
		Functions: functions.Config{CacheDir: filepath.Join(cache, "fn")}})
	if err != nil {
		return FnOpenResult{}, fmt.Errorf("opening the agent: %w", err)
	}
	defer a.Close()
	r := FnOpenResult{OpenMs: Millis(time.Since(start)), SettleS: settle.Seconds()}
	r.RSSOpenMB, _ = procStatus("VmRSS")
	n, ok := a.Functions.ActorCount(fnName)
	if !ok {
		return r, fmt.Errorf("the agent has no function %s", fnName)
	}
	r.ActorsSeen = n
	if n != int64(actors) {
		return r, fmt.Errorf("the agent sees %d actors, want %d", n, actors)
	}
	// The last actor's state is readable and is its own.
	if actors > 0 {
		v, ok, _, err := a.Functions.ActorState(ctx, fnName, fnActorKey(actors-1))
		if err != nil || !ok || len(v) < 8 || int(uint64(v[0])|uint64(v[1])<<8|uint64(v[2])<<16|uint64(v[3])<<24) != actors-1 {
			return r, fmt.Errorf("actor %s: state %d bytes, found %v, err %v", fnActorKey(actors-1), len(v), ok, err)
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.RSSSettledMB, _ = procStatus("VmRSS")
	r.HWMMB, _ = procStatus("VmHWM")
	return r, nil
}

// procStatus reads a "kB" field of /proc/self/status, in MB (10^6 bytes).
func procStatus(field string) (float64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024 / 1e6, nil
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}
