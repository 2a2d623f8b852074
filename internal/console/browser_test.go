package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/functions"
	"github.com/twoway/twoway/internal/tables"
)

// The console is tested as people use it: in headless Chromium (Debian's
// chromium package, which make tools installs), against an in-process
// agent holding topics with records, a consumer group that committed
// through kcat, the device-twin function with actor state, and a table.
// Without chromium or kcat the tests skip, except under CI=true.

func need(t testing.TB, what, hint string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if full, err := exec.LookPath(p); err == nil {
			return full
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; CI=true requires it (%s)", what, hint)
	}
	t.Skipf("%s is not installed (%s)", what, hint)
	return ""
}

func chromiumPath(t testing.TB) string {
	return need(t, "chromium", "make tools installs it with apt-get", "chromium", "chromium-browser")
}

// testAgent is an agent serving HTTP and Kafka on loopback ports.
type testAgent struct {
	a     *agent.Agent
	base  string // http://127.0.0.1:port
	kafka string
}

func startAgent(t testing.TB, tune ...func(*agent.Config)) *testAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := agent.Config{
		Bucket:    t.TempDir(),
		HTTPAddr:  "127.0.0.1:0",
		KafkaAddr: "127.0.0.1:0",
		HintAddr:  "off",
		Functions: functions.Config{CacheDir: t.TempDir()},
		Tables:    tables.Config{CommitInterval: time.Second},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range tune {
		f(&cfg)
	}
	a, err := agent.Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop within 30 s")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(a.Addrs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not start listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &testAgent{a: a, base: "http://" + a.Addrs()[0].String(), kafka: a.Kafka.Addr().String()}
}

// call sends a request to the API and answers the status and body.
func (ta *testAgent) call(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ta.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (ta *testAgent) must(t testing.TB, method, path string, body any, into any) {
	t.Helper()
	status, out := ta.call(t, method, path, body)
	if status/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, status, out)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

func eventually(t testing.TB, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 90 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func repoRoot(t testing.TB) string {
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildTwin builds the Go device-twin guest (GOOS=wasip1).
func buildTwin(t testing.TB) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "device-twin.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./examples/device-twin/go")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building device-twin: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kcatRun(t testing.TB, kcat string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// seed gives the agent data of every kind the console shows.
func seed(t testing.TB, ta *testAgent, kcat string) {
	t.Helper()
	for _, tp := range []struct {
		name string
		n    int
	}{{"orders", 3}, {"telemetry", 2}, {"alerts", 1}, {"events", 1}} {
		ta.must(t, "POST", "/v1/topics", map[string]any{"name": tp.name, "partitions": tp.n}, nil)
	}
	var recs []map[string]any
	for i := range 30 {
		recs = append(recs, map[string]any{"key": fmt.Sprintf("k%d", i), "value": fmt.Sprintf(`{"order":%d,"item":"pizza"}`, i)})
	}
	ta.must(t, "POST", "/v1/topics/orders/records", recs, nil)
	// A consumer group that read everything and committed, through kcat.
	got := kcatRun(t, kcat, "-b", ta.kafka, "-G", "g1", "-X", "auto.offset.reset=earliest", "-c", "30", "-q", "orders")
	if n := strings.Count(got, "\n"); n != 30 {
		t.Fatalf("kcat consumed %d records, want 30:\n%s", n, got)
	}
	eventually(t, "g1's commits", func() bool {
		var g struct {
			Offsets []struct{ Committed int64 } `json:"offsets"`
		}
		status, out := ta.call(t, "GET", "/v1/groups/g1", nil)
		if status != 200 || json.Unmarshal(out, &g) != nil {
			return false
		}
		var sum int64
		for _, o := range g.Offsets {
			sum += o.Committed
		}
		return sum == 30
	})
	// The device-twin function, with an actor's state.
	ta.must(t, "PUT", "/v1/functions/device-twin", map[string]any{
		"module":    base64.StdEncoding.EncodeToString(buildTwin(t)),
		"grants":    []string{"state", "publish:alerts", "timers", "config", "log"},
		"subscribe": []string{"telemetry"}, "http": true,
		// Not a number: the guest logs a warning on each record, which
		// the console's log tail shows.
		"config": map[string]string{"threshold": "hot"},
	}, nil)
	ta.must(t, "POST", "/v1/topics/telemetry/records", []map[string]any{{"key": "d1", "value": `{"temp": 85}`}, {"key": "d1", "value": `{"temp": 20}`}}, nil)
	eventually(t, "the actor d1's state", func() bool {
		status, out := ta.call(t, "GET", "/v1/functions/device-twin/actors/d1", nil)
		return status == 200 && strings.Contains(string(out), `"count":2`)
	})
	// A table with rows.
	ta.must(t, "POST", "/v1/tables", map[string]any{"name": "events", "topic": "events",
		"schema": map[string]any{"columns": []map[string]any{{"name": "id", "type": "long", "required": true}}}}, nil)
	recs = recs[:0]
	for i := range 12 {
		recs = append(recs, map[string]any{"value": fmt.Sprintf(`{"id": %d}`, i)})
	}
	ta.must(t, "POST", "/v1/topics/events/records", recs, nil)
	eventually(t, "the table's rows", func() bool {
		var tb struct{ Rows int64 }
		status, out := ta.call(t, "GET", "/v1/tables/events", nil)
		return status == 200 && json.Unmarshal(out, &tb) == nil && tb.Rows == 12
	})
}

// browser is a headless Chromium tab that records every console error and
// uncaught exception of the pages it shows.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	path := chromiumPath(t)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
		return err
	})); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	// The tab exists now: Console subscribes to it (subscribing first
	// would race the allocation of the browser).
	cctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go func() {
		for m, err := range chromedp.Console(cctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) takeErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.errors
	b.errors = nil
	return e
}

func (b *browser) do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// wait waits for a JavaScript expression to be truthy.
func (b *browser) wait(t testing.TB, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('view').innerText"))
		t.Fatalf("%s: %v (%s)\nthe page shows:\n%s", what, err, expr, text)
	}
}

func eval[T any](t testing.TB, b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// pages are the console's views with an expression true once each shows
// its data.
var pages = []struct{ name, hash, ready string }{
	{"overview", "#/overview", `document.querySelector('#agents td code') && document.querySelectorAll('.stat b')[0].textContent !== '–'`},
	{"topics", "#/topics", `document.querySelector('[data-topic-records="orders"]')`},
	{"topic", "#/topics/orders", `document.querySelectorAll('#records tbody tr td').length > 5`},
	{"groups", "#/groups", `document.querySelector('[data-group-lag="g1"]')`},
	{"group", "#/groups/g1", `document.querySelectorAll('#offsets tbody tr').length === 3`},
	{"functions", "#/functions", `document.querySelector('#functions a[href="#/functions/device-twin"]')`},
	{"function", "#/functions/device-twin?actor=d1", `document.querySelector('#actor-state pre')`},
	{"tables", "#/tables", `document.querySelector('[data-table-rows="events"]')`},
	{"table", "#/tables/events", `document.querySelectorAll('#snapshots tbody tr td code').length > 0`},
	{"sql", "#/sql?q=select%20count(*)%20as%20n%20from%20events", `document.querySelector('#sql-grid td')`},
	{"bucket", "#/bucket", `document.querySelector('[data-kind-objects="commits"]') && document.getElementById('cost-total')`},
}

func TestConsole(t *testing.T) {
	kcat := need(t, "kcat", "make tools installs it", "kcat")
	b := newBrowser(t)
	ta := startAgent(t)
	seed(t, ta, kcat)

	t.Run("EveryPageLoadsWithoutErrors", func(t *testing.T) {
		b.do(t, chromedp.Navigate(ta.base+"/ui/"))
		for _, p := range pages {
			b.do(t, chromedp.Navigate(ta.base+"/ui/"+p.hash))
			b.wait(t, p.name, p.ready)
			// A few refreshes, so that errors of the live updates show too.
			time.Sleep(2500 * time.Millisecond)
			if errs := b.takeErrors(); len(errs) > 0 {
				t.Errorf("page %s: console errors:\n%s", p.name, strings.Join(errs, "\n"))
			}
			b.checkReadable(t, p.name, false)
			b.checkCharts(t, p.name)
			b.screenshot(t, p.name)
		}
	})

	t.Run("NumbersMatchTheAPI", func(t *testing.T) {
		var topic struct {
			Partitions []struct {
				Start int64 `json:"start_offset"`
				End   int64 `json:"end_offset"`
			} `json:"partition_info"`
		}
		ta.must(t, "GET", "/v1/topics/orders", nil, &topic)
		var want int64
		for _, p := range topic.Partitions {
			want += p.End - p.Start
		}
		var list struct{ Topics []any }
		ta.must(t, "GET", "/v1/topics", nil, &list)
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/overview"))
		b.wait(t, "the overview's topic count", fmt.Sprintf(`document.querySelectorAll('.stat b')[0].textContent === '%d'`, len(list.Topics)))

		b.do(t, chromedp.Navigate(ta.base+"/ui/#/topics"))
		sel := `document.querySelector('[data-topic-records="orders"]')`
		b.wait(t, "orders' records", sel+` && `+sel+`.textContent === '`+strconv.FormatInt(want, 10)+`'`)

		b.do(t, chromedp.Navigate(ta.base+"/ui/#/topics/orders"))
		for i, p := range topic.Partitions {
			b.wait(t, "partition offsets", fmt.Sprintf(`((r) => r && r.cells[0].textContent === '%d' && r.cells[1].textContent === '%d' && r.cells[2].textContent === '%d')(document.querySelectorAll('#partitions tbody tr')[%d])`, i, p.Start, p.End, i))
		}

		var groups struct {
			Groups []struct {
				Name string
				Lag  int64
			}
		}
		ta.must(t, "GET", "/v1/groups", nil, &groups)
		if len(groups.Groups) != 1 || groups.Groups[0].Name != "g1" {
			t.Fatalf("groups: %+v", groups)
		}
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/groups"))
		b.wait(t, "g1's lag", fmt.Sprintf(`(document.querySelector('[data-group-lag="g1"]')||{}).textContent === '%d'`, groups.Groups[0].Lag))

		var tb struct{ Rows int64 }
		ta.must(t, "GET", "/v1/tables/events", nil, &tb)
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/tables"))
		b.wait(t, "the table's rows", fmt.Sprintf(`(document.querySelector('[data-table-rows="events"]')||{}).textContent === '%d'`, tb.Rows))

		var bk struct {
			Kinds []struct {
				Kind    string
				Objects int64
			}
		}
		eventually(t, "a count of the bucket", func() bool {
			ta.must(t, "GET", "/v1/bucket", nil, &bk)
			return len(bk.Kinds) > 0
		})
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/bucket"))
		for _, k := range bk.Kinds {
			b.wait(t, "objects of kind "+k.Kind, fmt.Sprintf(`(document.querySelector('[data-kind-objects="%s"]')||{}).textContent === '%d'`, k.Kind, k.Objects))
		}
	})

	t.Run("ProduceFromTheForm", func(t *testing.T) {
		value := fmt.Sprintf(`{"from":"the console","at":%d}`, time.Now().UnixNano())
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/topics/orders"),
			chromedp.WaitVisible(chromedp.CSS("#produce-value")),
			chromedp.SendKeys(chromedp.CSS("#produce-key"), "console-key"),
			chromedp.SetValue(chromedp.CSS("#produce-value"), value),
			chromedp.Click(chromedp.CSS("#produce button[type=submit]")))
		b.wait(t, "the produced record in the browser", `[...document.querySelectorAll('#records td pre')].some((e) => e.textContent === `+strconv.Quote(value)+`)`)
		msg := eval[string](t, b, `document.getElementById('produce-msg').textContent`)
		var p, o int
		if _, err := fmt.Sscanf(msg, "appended at partition %d, offset %d", &p, &o); err != nil {
			t.Fatalf("the form said %q: %v", msg, err)
		}
		got := kcatRun(t, kcat, "-b", ta.kafka, "-C", "-t", "orders", "-p", strconv.Itoa(p), "-o", strconv.Itoa(o), "-c", "1", "-e", "-q", "-f", "%k %s")
		if strings.TrimSpace(got) != "console-key "+value {
			t.Fatalf("kcat read %q at %d/%d, want the record produced from the form", got, p, o)
		}
		// Found by key too.
		b.do(t, chromedp.SetValue(chromedp.CSS("#browse-mode"), "key"),
			chromedp.SetValue(chromedp.CSS("#browse-at"), "console-key"),
			chromedp.Click(chromedp.CSS("#browse button[type=submit]")))
		b.wait(t, "the record found by key", `document.querySelectorAll('#records tbody tr').length === 1 && [...document.querySelectorAll('#records td pre')].some((e) => e.textContent === `+strconv.Quote(value)+`)`)
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("SQLFromTheEditor", func(t *testing.T) {
		var want struct{ Rows [][]any }
		ta.must(t, "POST", "/v1/sql", map[string]string{"sql": "select count(*) as n from events"}, &want)
		if len(want.Rows) != 1 || fmt.Sprint(want.Rows[0][0]) != "12" {
			t.Fatalf("the API counts %v, want 12", want.Rows)
		}
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/sql"),
			chromedp.WaitVisible(chromedp.CSS("#sql-text")),
			chromedp.SetValue(chromedp.CSS("#sql-text"), "select count(*) as n from events where id >= 0"),
			chromedp.Click(chromedp.CSS("#sql-run")))
		b.wait(t, "the count", `(document.querySelector('#sql-grid tbody td')||{}).textContent === '12'`)
		if got := eval[string](t, b, `document.getElementById('sql-time').textContent`); !strings.HasPrefix(got, "1 rows in ") {
			t.Errorf("the query time reads %q", got)
		}
		// The CSV download is the API's CSV.
		b.do(t, chromedp.WaitVisible(chromedp.CSS("#sql-csv")))
		csv := eval[string](t, b, `(async () => (await api('/v1/sql', {method: 'POST', json: {sql: 'select count(*) as n from events'}, headers: {Accept: 'text/csv'}, raw: true})).text())()`, chromedp.EvalAwaitPromise)
		if strings.Fields(csv)[len(strings.Fields(csv))-1] != "12" {
			t.Errorf("the CSV reads %q", csv)
		}
	})

	t.Run("ActorState", func(t *testing.T) {
		b.do(t, chromedp.Navigate(ta.base+"/ui/#/functions/device-twin"),
			chromedp.WaitVisible(chromedp.CSS("#actor-key")),
			chromedp.SendKeys(chromedp.CSS("#actor-key"), "d1"),
			chromedp.Click(chromedp.CSS("#actor button[type=submit]")))
		b.wait(t, "d1's state", `(document.querySelector('#actor-state pre')||{}).textContent`)
		var state, shown map[string]any
		ta.must(t, "GET", "/v1/functions/device-twin/actors/d1", nil, &state)
		if err := json.Unmarshal([]byte(eval[string](t, b, `document.querySelector('#actor-state pre').textContent`)), &shown); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(shown) != fmt.Sprint(state) || shown["count"] != float64(2) {
			t.Fatalf("the console shows %v, the API %v", shown, state)
		}
		// The live tail shows what the function logged.
		b.wait(t, "the function's log", `document.querySelectorAll('#logs div').length > 0`)
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})

	t.Run("FirstLoadSize", func(t *testing.T) {
		// Transferred bytes are deterministic, so they are checked here;
		// the load time is measured by TestConsoleCost.
		b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
			return err
		}), chromedp.Navigate(ta.base+"/ui/?first-load#/overview"))
		b.wait(t, "the overview", pages[0].ready)
		total := eval[float64](t, b, `performance.getEntriesByType('navigation')[0].transferSize + performance.getEntriesByType('resource').filter((e) => e.name.includes('/ui/')).reduce((a, e) => a + e.transferSize, 0)`)
		t.Logf("first load of /ui/: %.0f bytes transferred", total)
		if total <= 0 || total > 300<<10 {
			t.Fatalf("the first load transferred %.0f bytes, want at most 300 KiB", total)
		}
	})
	t.Run("DarkMode", func(t *testing.T) {
		b.scheme(t, "dark")
		defer b.scheme(t, "light")
		for _, p := range pages {
			b.do(t, chromedp.Navigate(ta.base+"/ui/"+p.hash))
			b.wait(t, p.name, p.ready)
			b.waitTick(t)
			b.checkReadable(t, p.name, true)
			b.checkCharts(t, p.name)
			if errs := b.takeErrors(); len(errs) > 0 {
				t.Errorf("page %s in dark mode: console errors:\n%s", p.name, strings.Join(errs, "\n"))
			}
			if p.name == "overview" {
				b.screenshot(t, "overview-dark")
			}
		}
	})

	t.Run("Phone", func(t *testing.T) {
		b.do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait, chromedp.EmulateTouch))
		defer b.do(t, chromedp.EmulateViewport(1280, 900))
		wide := 0
		for _, p := range pages {
			b.do(t, chromedp.Navigate(ta.base+"/ui/"+p.hash))
			b.wait(t, p.name, p.ready)
			b.waitTick(t)
			var r struct {
				Width int      `json:"width"`
				Wide  int      `json:"wide"`
				Bad   []string `json:"bad"`
			}
			if err := json.Unmarshal([]byte(eval[string](t, b, phoneJS)), &r); err != nil {
				t.Fatal(err)
			}
			if r.Width != 390 {
				t.Fatalf("page %s: the viewport is %d px wide, want 390", p.name, r.Width)
			}
			for _, e := range r.Bad {
				t.Errorf("page %s at 390 px: %s", p.name, e)
			}
			wide += r.Wide
			b.checkCharts(t, p.name)
			if errs := b.takeErrors(); len(errs) > 0 {
				t.Errorf("page %s on a phone: console errors:\n%s", p.name, strings.Join(errs, "\n"))
			}
			if p.name == "overview" {
				b.screenshot(t, "overview-phone")
			}
		}
		// Some table is wider than a phone, so the checks above saw one
		// scroll inside its box.
		if wide == 0 {
			t.Error("no table was wider than its box at 390 px: the scrolling is untested")
		}
	})

	t.Run("Keyboard", func(t *testing.T) {
		b.do(t, chromedp.Navigate(ta.base+"/ui/?keys#/overview"))
		b.wait(t, "the overview", pages[0].ready)
		// Tab from the top: the brand, then the navigation, each with a
		// visible focus ring.
		b.do(t, chromedp.KeyEvent(kb.Tab))
		f := b.focused(t)
		if f.Tag != "A" || !strings.Contains(f.Text, "twoway") || !f.Ring {
			t.Fatalf("the first Tab focused %+v, want the brand link with a ring", f)
		}
		b.do(t, chromedp.KeyEvent(kb.Tab+kb.Tab))
		if f = b.focused(t); f.Page != "topics" || !f.Ring {
			t.Fatalf("the third Tab focused %+v, want the Topics link with a ring", f)
		}
		b.do(t, chromedp.KeyEvent(kb.Enter))
		b.wait(t, "the topics page by Enter", `location.hash === '#/topics' && document.querySelector('[data-topic-records="orders"]')`)
		// The focus stays where it was across refreshes of the table.
		b.do(t, chromedp.Focus(chromedp.CSS(`#topics a[href="#/topics/orders"]`)))
		b.waitTick(t)
		b.waitTick(t)
		if f = b.focused(t); f.Href != "#/topics/orders" {
			t.Fatalf("after two refreshes the focus is on %+v, want the orders link", f)
		}
		b.do(t, chromedp.KeyEvent(kb.Enter))
		b.wait(t, "a topic by Enter", `location.hash === '#/topics/orders' && document.querySelectorAll('#records tbody tr td').length > 5`)
		// "/" focuses the first field; every Tab stop on the page shows
		// its focus.
		b.do(t, chromedp.KeyEvent("/"))
		if f = b.focused(t); f.ID != "produce-key" {
			t.Fatalf("/ focused %+v, want #produce-key", f)
		}
		for i := 0; i < 30; i++ {
			b.do(t, chromedp.KeyEvent(kb.Tab))
			if f = b.focused(t); f.Tag != "BODY" && !f.Ring {
				t.Errorf("Tab stop %d, %+v, shows no focus ring", i, f)
			}
		}
		// A form submits by Enter: the record browser from offset 1.
		b.do(t, chromedp.Focus(chromedp.CSS("#browse-at")), chromedp.KeyEvent("1"+kb.Enter))
		b.wait(t, "the records from offset 1", `[...document.querySelectorAll('#browse .msg')].some((e) => / showing \d+ from 1$/.test(e.textContent))`)
		// A page by its number key, and SQL by Ctrl+Enter.
		b.do(t, chromedp.Focus(chromedp.CSS("main")), chromedp.KeyEvent("6"))
		b.wait(t, "the SQL page by 6", `location.hash === '#/sql' && document.getElementById('sql-text')`)
		b.do(t, chromedp.SetValue(chromedp.CSS("#sql-text"), "select 40 + 2 as n"), chromedp.Focus(chromedp.CSS("#sql-text")),
			chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)))
		b.wait(t, "the query run by Ctrl+Enter", `(document.querySelector('#sql-grid tbody td')||{}).textContent === '42'`)
		if errs := b.takeErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	})
	runtime.KeepAlive(ta)
}

// readableJS answers the shown texts of the page (and the values of its
// fields, and its chart labels) whose contrast with the background behind
// them is below 4.5 (WCAG AA for text), and the chart lines below 3 (AA
// for graphics), and whether the page is dark.
const readableJS = `(() => {
  const parse = (c) => { const m = /rgba?\(([^)]+)\)/.exec(c || ''); if (!m) return null; const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '');
  const bad = [];
  let texts = 0, lines = 0;
  for (const el of document.querySelectorAll('body *')) {
    if (el.getClientRects().length === 0 || getComputedStyle(el).visibility === 'hidden' || el.closest('option')) continue;
    const cs = getComputedStyle(el);
    if (el.matches('polyline')) {
      if (el.points.length === 0) continue;
      lines++;
      const r = ratio(parse(cs.stroke), bg(el.ownerSVGElement));
      if (r < 3) bad.push('chart line ' + name(el) + ': contrast ' + r.toFixed(2));
      continue;
    }
    const svg = el instanceof SVGElement;
    if (svg && !el.matches('text')) continue;
    const field = el.matches('input, select, textarea, button');
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '');
    if (!own && !field) continue;
    texts++;
    const fg = parse(svg ? cs.fill : cs.color), back = bg(el);
    const r = ratio(fg, back);
    if (r < 4.5) bad.push(name(el) + ' ' + JSON.stringify((el.textContent || el.value || '').trim().slice(0, 30)) + ': ' + cs.color + ' on ' + JSON.stringify(back) + ', contrast ' + r.toFixed(2));
    if (field) {
      const fb = parse(cs.backgroundColor);
      if (!fb || fb.a === 0) bad.push(name(el) + ' has no background of its own');
    }
  }
  return JSON.stringify({ dark: lum(bg(document.body)) < 0.1, texts, lines, bad: bad.slice(0, 20) });
})()`

// checkReadable fails the test for every text of the page that is hard to
// read, and when the page is not in the scheme asked for.
func (b *browser) checkReadable(t testing.TB, page string, dark bool) {
	t.Helper()
	var r struct {
		Dark  bool     `json:"dark"`
		Texts int      `json:"texts"`
		Lines int      `json:"lines"`
		Bad   []string `json:"bad"`
	}
	if err := json.Unmarshal([]byte(eval[string](t, b, readableJS)), &r); err != nil {
		t.Fatal(err)
	}
	if r.Dark != dark {
		t.Errorf("page %s: dark is %v, want %v", page, r.Dark, dark)
	}
	if r.Texts < 10 {
		t.Errorf("page %s: only %d texts were checked", page, r.Texts)
	}
	for _, e := range r.Bad {
		t.Errorf("page %s (dark %v): %s", page, dark, e)
	}
}

// chartsJS answers what is wrong with the page's charts: labels not at
// their natural aspect (a non-uniform scale), an axis or lines not
// spanning the chart's width as laid out now, labels outside the chart.
const chartsJS = `(() => {
  const bad = [];
  let labels = 0;
  for (const svg of document.querySelectorAll('.chart svg')) {
    const box = svg.getBoundingClientRect(), k = svg.getScreenCTM().a;
    for (const t of svg.querySelectorAll('text')) {
      const m = t.getScreenCTM();
      labels++;
      if (Math.abs(m.a - m.d) > 1e-3 || Math.abs(m.b) > 1e-3 || Math.abs(m.c) > 1e-3) bad.push('label ' + JSON.stringify(t.textContent) + ' is scaled ' + m.a.toFixed(3) + ' × ' + m.d.toFixed(3));
      const r = t.getBoundingClientRect();
      if (t.textContent && (r.left < box.left - 1 || r.right > box.right + 1)) bad.push('label ' + JSON.stringify(t.textContent) + ' lies outside the chart');
    }
    const x2 = svg.querySelector('line.axis').x2.baseVal.value * k;
    if (Math.abs(x2 - box.width) > 2) bad.push('the axis ends at ' + x2.toFixed(0) + ' px of ' + box.width.toFixed(0));
    for (const pl of svg.querySelectorAll('polyline')) for (const p of pl.points) if (p.x * k > box.width + 1) { bad.push('a point at ' + (p.x * k).toFixed(0) + ' px beyond the width ' + box.width.toFixed(0)); break; }
  }
  return JSON.stringify({ charts: document.querySelectorAll('.chart svg').length, labels, bad: bad.slice(0, 20) });
})()`

// checkCharts fails the test for what chartsJS finds.
func (b *browser) checkCharts(t testing.TB, page string) {
	t.Helper()
	var r struct {
		Charts int      `json:"charts"`
		Labels int      `json:"labels"`
		Bad    []string `json:"bad"`
	}
	if err := json.Unmarshal([]byte(eval[string](t, b, chartsJS)), &r); err != nil {
		t.Fatal(err)
	}
	if r.Labels < 4*r.Charts {
		t.Errorf("page %s: %d labels in %d charts", page, r.Labels, r.Charts)
	}
	for _, e := range r.Bad {
		t.Errorf("page %s: chart: %s", page, e)
	}
}

// phoneJS answers what keeps a page from being used on a narrow screen:
// the document wider than the viewport (and the elements that make it
// so), a navigation link not on screen or covered, a table that does not
// scroll inside its own box; and how many tables are wider than theirs.
const phoneJS = `(() => {
  const iw = innerWidth, bad = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '');
  const sw = document.scrollingElement.scrollWidth;
  if (sw > iw + 1) {
    bad.push('the document is ' + sw + ' px wide');
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('.scroll') && !el.matches('.scroll')) continue;
      const r = el.getBoundingClientRect();
      if (r.right > iw + 1) bad.push(name(el) + ' ends at ' + Math.round(r.right) + ' px');
      if (bad.length > 12) break;
    }
  }
  window.scrollTo(0, 0);
  for (const a of document.querySelectorAll('nav a')) {
    const r = a.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (r.width === 0 || r.left < 0 || r.right > iw + 1 || r.bottom > innerHeight || !a.contains(hit)) bad.push('the link ' + a.textContent + ' is not on screen');
  }
  let wide = 0;
  for (const t of document.querySelectorAll('main table')) {
    const box = t.parentElement, ox = getComputedStyle(box).overflowX;
    if (!box.classList.contains('scroll') || (ox !== 'auto' && ox !== 'scroll')) bad.push(name(t) + ' is not in a scrolling box');
    if (box.getBoundingClientRect().right > iw + 1) bad.push('the box of ' + name(t) + ' ends at ' + Math.round(box.getBoundingClientRect().right) + ' px');
    if (t.scrollWidth > box.clientWidth + 1) wide++;
  }
  return JSON.stringify({ width: iw, wide, bad });
})()`

type focus struct {
	Tag, ID, Text, Page, Href string
	Ring                      bool
}

// focused answers the element with the keyboard focus, and whether it
// shows a focus ring (an outline of at least 2 px).
func (b *browser) focused(t testing.TB) focus {
	t.Helper()
	var f focus
	js := `(() => { const a = document.activeElement, cs = getComputedStyle(a);
	  return JSON.stringify({ Tag: a.tagName, ID: a.id, Text: (a.textContent || '').trim().slice(0, 40), Page: (a.dataset && a.dataset.page) || '', Href: a.getAttribute('href') || '',
	    Ring: a.matches(':focus-visible') && cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2 }); })()`
	if err := json.Unmarshal([]byte(eval[string](t, b, js)), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// scheme sets the prefers-color-scheme the page sees.
func (b *browser) scheme(t testing.TB, scheme string) {
	t.Helper()
	b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

// waitTick waits for the page's next refresh (the live indicator's time
// changes), so that what the checks see has been updated at least once.
func (b *browser) waitTick(t testing.TB) {
	t.Helper()
	prev := eval[string](t, b, `document.getElementById('live').textContent`)
	b.wait(t, "a refresh", `((s) => s.startsWith('live') && s !== `+strconv.Quote(prev)+`)(document.getElementById('live').textContent)`)
}

// screenshot saves the page as docs/console/NAME.png when
// TWOWAY_CONSOLE_SCREENSHOTS names the directory.
func (b *browser) screenshot(t testing.TB, name string) {
	t.Helper()
	dir := os.Getenv("TWOWAY_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleLogin: with --auth the console asks for a token, sends it
// with every call, and asks again when it is refused.
func TestConsoleLogin(t *testing.T) {
	b := newBrowser(t)
	ta := startAgent(t, func(c *agent.Config) { c.Auth, c.SuperUsers = true, []string{"User:admin"} })
	tok, _, err := ta.a.Users.CreateToken(context.Background(), "User:admin", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := ta.call(t, "GET", "/v1/topics", nil); status != http.StatusUnauthorized {
		t.Fatalf("without a token the API answered %d", status)
	}
	b.do(t, chromedp.Navigate(ta.base+"/ui/#/topics"))
	b.wait(t, "the login form", `document.getElementById('login')`)
	b.do(t, chromedp.SendKeys(chromedp.CSS("#token"), "tw_wrong"), chromedp.Click(chromedp.CSS("#login button[type=submit]")))
	b.wait(t, "the login form again", `document.getElementById('login') && document.querySelector('.login p').textContent.includes('refused')`)
	b.do(t, chromedp.SetValue(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS("#login button[type=submit]")))
	b.wait(t, "the topics page", `document.querySelector('#topics tbody td') && !document.getElementById('login')`)
	b.do(t, chromedp.Navigate(ta.base+"/ui/?again#/overview"))
	b.wait(t, "the overview with the kept token", pages[0].ready)
	// The 401s of the refused token are the browser's network errors;
	// nothing else may have failed.
	for _, e := range b.takeErrors() {
		if !strings.Contains(e, "401") {
			t.Errorf("console error: %s", e)
		}
	}
}
