package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// twowayBin is the binary under test, built once by TestMain.
var twowayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "twoway-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	twowayBin = filepath.Join(dir, "twoway")
	if runtime.GOOS == "windows" {
		twowayBin += ".exe"
	}
	build := exec.Command("go", "build", "-o", twowayBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building twoway:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// twoway runs the binary with args in a temporary working directory.
func twoway(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), twowayBin, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Commands:", "serve", "bench", "twoway <command> --help"}},
		{[]string{"help"}, []string{"Commands:", "serve", "bench"}},
		{[]string{"serve", "--help"}, []string{"twoway serve", "--bucket URL", "--http address", `"./twoway-data"`, `"127.0.0.1:8080"`, "/healthz", "/metrics"}},
		{[]string{"help", "serve"}, []string{"--bucket URL", "--http address"}},
		{[]string{"bench", "--help"}, []string{"twoway bench <benchmark>", "bucket"}},
		{[]string{"bench", "bucket", "-h"}, []string{"--bucket URL", "--object-size size", "(default 1MiB)", "--concurrency", "--duration", "--json"}},
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

// Command-line mistakes exit 2 with the error, then the usage.
func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "twoway: no command given"},
		{[]string{"frobnicate"}, `twoway: unknown command "frobnicate"`},
		{[]string{"--verbose"}, "twoway: flag --verbose given before any command"},
		{[]string{"serve", "--nope"}, "twoway: serve: flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, `twoway: serve: unexpected argument "extra"`},
		{[]string{"bench"}, "twoway: bench: no benchmark given"},
		{[]string{"bench", "nope"}, `twoway: bench: unknown benchmark "nope"`},
		{[]string{"bench", "bucket"}, "twoway: bench bucket: --bucket is required"},
		{[]string{"bench", "bucket", "--bucket", "x", "--object-size", "lots"}, `invalid size "lots"`},
		{[]string{"bench", "bucket", "--bucket", "x", "--concurrency", "0"}, "--concurrency 0 out of range"},
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

// A bucket that cannot be opened is one line naming the problem, exit 1.
func TestBadBucket(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bucket string
		want   []string
	}{
		{"ftp://host/dir", []string{"ftp://host/dir", "unsupported scheme"}},
		{"s3://", []string{"s3://"}},
		{"file://host/dir", []string{"file://host/dir"}},
		{filepath.Join(file, "data"), []string{file}},
	} {
		for _, args := range [][]string{
			{"serve", "--http", "127.0.0.1:0", "--bucket", c.bucket},
			{"bench", "bucket", "--duration", "10ms", "--bucket", c.bucket},
		} {
			r := twoway(t, args...)
			if r.code != 1 {
				t.Errorf("twoway %v exited %d, want 1; stderr:\n%s", args, r.code, r.stderr)
				continue
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "twoway: ") {
				t.Errorf("twoway %v: stderr is not one line \"twoway: <error>\":\n%s", args, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("twoway %v: error %q does not mention %q", args, r.stderr, w)
				}
			}
		}
	}
}

// servedAgent is a "twoway serve" process started by startServe.
type servedAgent struct {
	cmd    *exec.Cmd
	base   string // http://host:port of its HTTP listener
	bucket string // the bucket its start-up line names
	exited chan error
	mu     sync.Mutex
	logs   bytes.Buffer
}

// Logs is what the process has written to stderr so far.
func (a *servedAgent) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// startServe runs "twoway serve" with args (which must include --http) and
// waits for the line saying where it serves; the port is the one the
// system picked.
func startServe(t *testing.T, args ...string) *servedAgent {
	t.Helper()
	cmd := exec.Command(twowayBin, append([]string{"serve"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	a := &servedAgent{cmd: cmd, exited: make(chan error, 1)}
	listening := regexp.MustCompile(`msg="twoway serving" bucket=(\S+) http=(\S+)`)
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.logs.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- [2]string{m[1], m[2]}
			}
		}
		a.exited <- cmd.Wait()
	}()
	select {
	case m := <-found:
		a.bucket, a.base = m[0], m[1]
	case err := <-a.exited:
		t.Fatalf("serve exited early (%v):\n%s", err, a.Logs())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not log its address")
	}
	return a
}

func TestServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	a := startServe(t, "--bucket", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0")
	if a.bucket != "file://"+data {
		t.Errorf("log names bucket %s, want file://%s", a.bucket, data)
	}
	base := a.base

	body := httpGet(t, base+"/healthz")
	if !strings.HasPrefix(strings.TrimSpace(body), `{"status":"ok"`) {
		t.Errorf("/healthz = %q", body)
	}
	if body := httpGet(t, base+"/readyz"); !strings.HasPrefix(strings.TrimSpace(body), `{"status":"ok"`) {
		t.Errorf("/readyz = %q", body)
	}
	metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`twoway_bucket_requests_total{op="list",result="ok"} `, // the start-up check and the log's
		"twoway_log_applied_seq",
		`twoway_bucket_request_duration_seconds_bucket{op="put"`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("serve did not create the bucket directory: %v", err)
	}

	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGINT:\n%s", err, a.Logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGINT")
	}
	if !strings.Contains(a.Logs(), "twoway stopped") {
		t.Errorf("no clean stop in the log:\n%s", a.Logs())
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestBenchBucket(t *testing.T) {
	dir := t.TempDir()
	r := twoway(t, "bench", "bucket", "--bucket", dir, "--object-size", "4KiB", "--concurrency", "2", "--duration", "100ms", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if res["object_size"] != 4096.0 || res["concurrency"] != 2.0 || res["duration_s"] != 0.1 {
		t.Errorf("result does not echo the flags: %s", r.stdout)
	}
	if v, _ := res["put_mb_s"].(float64); !(v > 0) {
		t.Errorf("put_mb_s = %v", res["put_mb_s"])
	}

	r = twoway(t, "bench", "bucket", "--bucket", "file://"+dir, "--object-size", "1000", "--duration", "50ms")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"file://" + dir, "put-if-absent", "p99 ms", "MB/s", "1000B objects, 8 workers"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
}

// A commit that does not decode stops the agent's log: /healthz and /readyz
// answer 503 naming the commit, and serve exits non-zero with that message.
func TestServeStopsOnCorruptCommit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	a := startServe(t, "--bucket", data, "--http", "127.0.0.1:0")
	base := a.base
	// Put a corrupt object where the next commit goes (the agent's own
	// janitor may take a number first: then try the next).
	var seq int
	for n := 1; ; n++ {
		f, err := os.OpenFile(filepath.Join(data, "log", fmt.Sprintf("%020d", n)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if os.IsExist(err) {
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			_ = os.MkdirAll(filepath.Join(data, "log"), 0o755)
			n--
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("TWLC\x00\x01\x00\x00 this is not a commit")
		f.Close()
		seq = n
		break
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var body struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
				Commit int    `json:"commit"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && body.Status == "stopped" {
				if body.Commit != seq || !strings.Contains(body.Reason, "corrupt") {
					t.Errorf("/readyz after a corrupt commit %d: %+v", seq, body)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never reported the stopped log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("/healthz of a stopped log answered %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	select {
	case err := <-a.exited:
		if err == nil {
			t.Fatal("serve exited 0 after its log stopped")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after its log stopped")
	}
	if want := fmt.Sprintf("commit %d", seq); !strings.Contains(a.Logs(), want) {
		t.Errorf("serve's output does not name %q:\n%s", want, a.Logs())
	}
}

// A --hint address that cannot be used stops serve at once, saying which.
func TestServeBadHintAddress(t *testing.T) {
	r := twoway(t, "serve", "--http", "127.0.0.1:0", "--kafka", "", "--bucket", t.TempDir(), "--hint", "nonsense")
	if r.code == 0 || !strings.Contains(r.stderr, "commit hints on nonsense") || !strings.Contains(r.stderr, `"off"`) {
		t.Fatalf("exit %d, stderr %q: want a failure naming the hint address", r.code, r.stderr)
	}
}
