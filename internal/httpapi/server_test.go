package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/internal/httpapi"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHealthz(t *testing.T) {
	s := httpapi.New(httpapi.Config{Logger: quietLogger()})
	rec := get(t, s, "GET", "/healthz")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok","applied":0}` {
		t.Fatalf("GET /healthz = %d %q", rec.Code, rec.Body)
	}
	if rec := get(t, s, "GET", "/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %q", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if rec := get(t, s, "POST", "/healthz"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", rec.Code)
	}
	if rec := get(t, s, "GET", "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	s := httpapi.New(httpapi.Config{Logger: quietLogger()})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "twoway_test_total", Help: "test"})
	s.Registry().MustRegister(c)
	c.Add(3)
	rec := get(t, s, "GET", "/metrics")
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	for _, want := range []string{"twoway_test_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Each server has its own registry unless given one.
func TestRegistryPerServer(t *testing.T) {
	a := httpapi.New(httpapi.Config{Logger: quietLogger()})
	b := httpapi.New(httpapi.Config{Logger: quietLogger()})
	if a.Registry() == b.Registry() {
		t.Fatal("two servers share a registry")
	}
	reg := prometheus.NewRegistry()
	if got := httpapi.New(httpapi.Config{Registry: reg}).Registry(); got != reg {
		t.Fatal("the configured registry is not served")
	}
}

func TestHandleExtends(t *testing.T) {
	s := httpapi.New(httpapi.Config{Logger: quietLogger()})
	s.HandleFunc("POST /v1/echo/{name}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("name"))
	})
	if rec := get(t, s, "POST", "/v1/echo/abc"); rec.Body.String() != "abc" {
		t.Fatalf("added route answered %d %q", rec.Code, rec.Body)
	}
}

// Serve answers until its context ends, then waits for the request in flight
// and returns nil.
func TestServeShutsDownGracefully(t *testing.T) {
	s := httpapi.New(httpapi.Config{Logger: quietLogger(), ShutdownTimeout: 5 * time.Second})
	started, release := make(chan struct{}), make(chan struct{})
	s.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-slow; got != "done" {
		t.Errorf("the request in flight got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}
