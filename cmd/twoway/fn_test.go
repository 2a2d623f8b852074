package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildTwin builds the Go device-twin with the real toolchain.
func buildTwin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "device-twin.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../../examples/device-twin/go")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building device-twin: %v\n%s", err, msg)
	}
	return out
}

// The functions quick start through the CLI: deploy device-twin on a
// served agent, produce telemetry, read a device over HTTP, list the
// inventory, invoke, redeploy, roll back and delete; and the same
// inventory straight from the bucket once the agent has stopped.
func TestFunctionsQuickStart(t *testing.T) {
	wasm := buildTwin(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	a := startAgent(t, data)
	srv := []string{"--server", a.url}
	grants := []string{"--grant", "state", "--grant", "publish:alerts", "--grant", "timers", "--grant", "config", "--grant", "log"}
	ok(t, dir, "", append([]string{"topic", "create", "telemetry", "--partitions", "3"}, srv...)...)
	ok(t, dir, "", append([]string{"topic", "create", "alerts"}, srv...)...)
	deploy := append(append([]string{"fn", "deploy", "device-twin", "--module", wasm, "--subscribe", "telemetry", "--http", "--config", "threshold=80"}, grants...), srv...)
	if out := ok(t, dir, "", deploy...); !strings.Contains(out, "deployed device-twin version 1") {
		t.Fatalf("deploy: %s", out)
	}
	ok(t, dir, "d1:{\"temp\": 85}\nd1:{\"temp\": 20}\n", append([]string{"produce", "telemetry", "--key-separator", ":"}, srv...)...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(a.url + "/fn/device-twin/devices/d1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var st map[string]float64
		if resp.StatusCode == 200 && json.Unmarshal(body, &st) == nil && st["count"] == 2 {
			if st["min"] != 20 || st["max"] != 85 || st["last"] != 20 {
				t.Fatalf("state %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device d1: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := ok(t, dir, "", append([]string{"consume", "alerts", "--from", "earliest", "--max", "1"}, srv...)...); !strings.Contains(out, `{"device":"d1","temp":85,"offset":0}`) {
		t.Fatalf("alerts: %s", out)
	}
	var list []struct {
		Name    string   `json:"name"`
		Version int      `json:"version"`
		Module  string   `json:"module"`
		Size    int64    `json:"size"`
		Imports []string `json:"imports"`
		Grants  []string `json:"grants"`
	}
	if err := json.Unmarshal([]byte(ok(t, dir, "", append([]string{"fn", "list", "--json"}, srv...)...)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "device-twin" || list[0].Version != 1 || len(list[0].Module) != 64 || list[0].Size == 0 ||
		!strings.Contains(strings.Join(list[0].Imports, " "), "twoway_v1.publish") || len(list[0].Grants) != 5 {
		t.Fatalf("inventory %+v", list)
	}
	// A keyed invocation the example does not handle: 501, exit 1.
	fails(t, dir, 1, "answered status 501", "x", append([]string{"fn", "invoke", "device-twin", "--key", "d1"}, srv...)...)
	if out := ok(t, dir, "", append([]string{"fn", "state", "device-twin", "d1"}, srv...)...); !strings.Contains(out, `"count":2`) {
		t.Fatalf("fn state: %s", out)
	}
	ok(t, dir, "", deploy...)
	if out := ok(t, dir, "", append([]string{"fn", "rollback", "device-twin"}, srv...)...); !strings.Contains(out, "back to version 1, now live as version 3") {
		t.Fatalf("rollback: %s", out)
	}
	hist := ok(t, dir, "", append([]string{"fn", "history", "device-twin"}, srv...)...)
	if !strings.Contains(hist, "live rollback to 1") || strings.Count(hist, "\n") != 4 {
		t.Fatalf("history:\n%s", hist)
	}
	// Refusals say why.
	fails(t, dir, 1, "imports twoway_v1.publish, which needs the grant publish:TOPIC", "", append([]string{"fn", "deploy", "bad", "--module", wasm,
		"--grant", "state", "--grant", "log", "--grant", "timers", "--grant", "config"}, srv...)...)
	fails(t, dir, 2, "--module FILE.wasm is required", "", append([]string{"fn", "deploy", "bad"}, srv...)...)
	junk := filepath.Join(dir, "junk.wasm")
	os.WriteFile(junk, []byte("not wasm"), 0o644)
	fails(t, dir, 1, "not a valid WebAssembly module", "", append([]string{"fn", "deploy", "bad", "--module", junk}, srv...)...)
	a.stop(t)
	// The bucket is all the state there is.
	if out := ok(t, dir, "", "fn", "list", "--bucket", data); !strings.Contains(out, "device-twin  3") {
		t.Fatalf("fn list --bucket:\n%s", out)
	}
	ok(t, dir, "", "fn", "delete", "device-twin", "--bucket", data)
	if out := ok(t, dir, "", "fn", "list", "--json", "--bucket", data); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after delete: %s", out)
	}
}
