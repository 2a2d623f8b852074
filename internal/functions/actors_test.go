package functions

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func deployCounter(t testing.TB, a *agent, label string) Deployment {
	t.Helper()
	d, err := a.fns.Deploy(context.Background(), DeployRequest{Name: "counter",
		Module: buildGo(t, "internal/functions/testdata/counter", "-X main.label="+label), Grants: []string{"state"}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// invokeHTTP invokes through an agent's HTTP API and returns the status
// and body.
func invokeHTTP(a *agent, fn, key, method string) (int, string, error) {
	resp, err := http.Post(a.http.URL+"/v1/functions/"+fn+"/invoke?key="+key+"&method="+method, "application/octet-stream", bytes.NewReader(nil))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Two agents on one bucket: 1,000 increments of one actor, sent through
// both at once, end at 1,000, and every increment saw a different count.
func TestIncrementsThroughTwoAgents(t *testing.T) {
	b := fileBucket(t)
	a1 := startAgent(t, b, Config{})
	a2 := startAgent(t, b, Config{})
	deployCounter(t, a1, "v1")
	if err := a2.set.Log().Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	const each, workers = 500, 8
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for _, a := range []*agent{a1, a2} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < each; i += workers {
					code, body, err := invokeHTTP(a, "counter", "hot", "inc")
					if err != nil || code != 200 {
						t.Errorf("invoke: %d %q %v", code, body, err)
						return
					}
					n, err := strconv.Atoi(strings.TrimPrefix(body, "v1 "))
					if err != nil {
						t.Errorf("answer %q", body)
						return
					}
					mu.Lock()
					if seen[n] {
						t.Errorf("two increments both answered %d", n)
					}
					seen[n] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, a := range []*agent{a1, a2} {
		a.set.Log().Sync(context.Background())
		v, ok, _, err := a.fns.ActorState(context.Background(), "counter", "hot")
		if err != nil || !ok || string(v) != "1000" {
			t.Fatalf("state %q %v %v, want 1000", v, ok, err)
		}
	}
	if len(seen) != 2*each {
		t.Fatalf("%d distinct answers, want %d", len(seen), 2*each)
	}
}

// Redeploys and rollbacks while invocations run: none is lost, each ran
// on some deployed version, and the state carries over.
func TestRedeployAndRollbackUnderLoad(t *testing.T) {
	a := startAgent(t, fileBucket(t), Config{})
	deployCounter(t, a, "v1")
	ctx := context.Background()
	stop := make(chan struct{})
	var mu sync.Mutex
	ok := 0
	labels := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := a.fns.Invoke(ctx, "counter", fmt.Sprintf("k%d", w), true, "inc", nil)
				if err != nil || resp.Status != 200 {
					t.Errorf("invoke during a redeploy: %v %v", resp.Status, err)
					return
				}
				mu.Lock()
				ok++
				labels[strings.Fields(string(resp.Body))[0]]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	deployCounter(t, a, "v2")
	time.Sleep(200 * time.Millisecond)
	d, err := a.fns.Rollback(ctx, "counter", 0)
	if err != nil || d.Version != 3 || d.RollbackOf != 1 {
		t.Fatalf("rollback: %+v %v", d, err)
	}
	time.Sleep(200 * time.Millisecond)
	if d, err := a.fns.Rollback(ctx, "counter", 2); err != nil || d.Version != 4 || d.RollbackOf != 2 {
		t.Fatalf("rollback --to 2: %+v %v", d, err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	total := 0
	for w := range 4 {
		v, _, _, err := a.fns.ActorState(ctx, "counter", fmt.Sprintf("k%d", w))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(string(v))
		total += n
	}
	if total != ok {
		t.Fatalf("%d increments answered, state counts %d", ok, total)
	}
	if labels["v1"] == 0 || labels["v2"] == 0 {
		t.Fatalf("invocations by version %v: both versions should have served", labels)
	}
	resp, err := a.fns.Invoke(ctx, "counter", "k0", true, "get", nil)
	if err != nil || !strings.HasPrefix(string(resp.Body), "v2 ") {
		t.Fatalf("after rolling back to version 2: %q %v", resp.Body, err)
	}
	hist := a.fns.History("counter")
	if len(hist) != 4 || hist[0].Module != hist[2].Module || hist[1].Module != hist[3].Module || hist[0].Module == hist[1].Module {
		t.Fatalf("history %+v", hist)
	}
	t.Logf("%d invocations across 4 versions: %v", ok, labels)
}

// A rollback needs an earlier version, and says so.
func TestRollbackNeedsAnEarlierVersion(t *testing.T) {
	a := startAgent(t, fileBucket(t), Config{})
	deployCounter(t, a, "v1")
	ctx := context.Background()
	if _, err := a.fns.Rollback(ctx, "counter", 0); err == nil || !strings.Contains(err.Error(), "only version 1") {
		t.Fatalf("rollback of a single version: %v", err)
	}
	if _, err := a.fns.Rollback(ctx, "nosuch", 0); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("rollback of no function: %v", err)
	}
	deployCounter(t, a, "v2")
	if _, err := a.fns.Rollback(ctx, "counter", 7); err == nil || !strings.Contains(err.Error(), "versions 1 to 2") {
		t.Fatalf("rollback to a version that does not exist: %v", err)
	}
}
