// Package httpapi is twoway's HTTP front door: health, metrics and the
// streams API (RegisterStreams, documented in docs/HTTP.md), and a Client
// for that API. It is an embeddable server; cmd/twoway only parses flags and
// hands it a listener.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twoway/twoway/internal/authz"
	"github.com/twoway/twoway/internal/commitlog"
)

// DefaultShutdownTimeout bounds how long Serve waits for requests in flight
// once its context ends.
const DefaultShutdownTimeout = 10 * time.Second

// DefaultMaxBodyBytes bounds request bodies unless Config says otherwise.
const DefaultMaxBodyBytes = 16 << 20

// Config configures a Server. The zero value is usable.
type Config struct {
	// Registry is served on /metrics. Nil means a new registry holding the
	// Go runtime and process collectors; either way Server.Registry returns
	// it, for the rest of the process to register its metrics on.
	Registry *prometheus.Registry
	// Logger receives the server's own log lines. Nil means slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds the graceful shutdown in Serve. Zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxBodyBytes bounds the body of every API request; a larger one is
	// answered 413 without being read further. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Health reports the agent's commit log for /healthz and /readyz. Nil
	// means a process with no log: always alive and ready.
	Health func() commitlog.Health
	// Authenticate, if set, is asked about every request but the health
	// checks and /metrics: it returns the request's principal, or false
	// to answer 401 (HTTP Basic with the agent's users).
	Authenticate func(r *http.Request) (principal string, ok bool)
	// Authorizer, with Authenticate, decides what an authenticated
	// request may do: handlers ask authz.Check with the request's
	// context, which carries its principal and this checker.
	Authorizer authz.Checker
	// MetricsAuth makes /metrics authenticate too.
	MetricsAuth bool
}

// Server serves twoway's HTTP API. Routes are net/http ServeMux patterns with
// methods, e.g. "GET /healthz"; Handle adds more.
type Server struct {
	mux     *http.ServeMux
	reg     *prometheus.Registry
	log     *slog.Logger
	timeout time.Duration
	maxBody int64
	// stopping ends when Serve starts shutting down, so that long polls
	// answer at once instead of holding the shutdown up.
	stopping context.Context
	stop     context.CancelFunc
	health   func() commitlog.Health
	// authenticate: see Config.Authenticate.
	authenticate func(r *http.Request) (string, bool)
	authorizer   authz.Checker
	metricsAuth  bool
	// durations times every request by its route pattern (bounded: the
	// routes registered), for /metrics and the console's charts.
	durations *prometheus.HistogramVec
}

// NewRegistry returns a Prometheus registry holding the Go runtime and
// process collectors, the base every twoway process reports.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// New returns a Server with the built-in routes:
//
//	GET /healthz   alive: 200 {"status":"ok"}; 503 with the reason and the
//	               commit once the commit log has stopped
//	GET /readyz    ready: 200 while caught up with the log and able to reach
//	               the bucket; 503 with the reason otherwise
//	GET /metrics   Prometheus exposition of the registry
func New(cfg Config) *Server {
	s := &Server{
		mux:     http.NewServeMux(),
		reg:     cfg.Registry,
		log:     cfg.Logger,
		timeout: cfg.ShutdownTimeout,
		maxBody: cfg.MaxBodyBytes,
		health:  cfg.Health,

		authenticate: cfg.Authenticate,
		authorizer:   cfg.Authorizer,
		metricsAuth:  cfg.MetricsAuth,
	}
	s.stopping, s.stop = context.WithCancel(context.Background())
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.reg == nil {
		s.reg = NewRegistry()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = DefaultShutdownTimeout
	}
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "twoway_http_request_duration_seconds",
		Help: "Time to answer an HTTP request, by route pattern; a long-polling read includes its wait.",
		// 0.1 ms to about 26 s.
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 19),
	}, []string{"route"})
	if err := s.reg.Register(s.durations); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			s.durations = are.ExistingCollector.(*prometheus.HistogramVec)
		}
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		Registry:          s.reg, // reports the handler's own errors
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	return s
}

// Registry returns the registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle registers a handler for a ServeMux pattern such as
// "POST /v1/streams/{name}". It panics on a pattern that conflicts with one
// already registered, as http.ServeMux does.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, h)
}

// ServeHTTP makes a Server an http.Handler, for tests and for embedding it in
// another server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.authenticate != nil && !s.openPath(r.URL.Path) {
		principal, ok := s.authenticate(r)
		if !ok {
			// A Basic challenge makes browsers prompt for a password, which
			// would block the web console's calls (it asks for a token
			// itself): scripts that say so, and bearer clients, get a
			// Bearer challenge (RFC 6750), which no browser prompts for.
			if r.Header.Get("X-Requested-With") != "" || strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				w.Header().Set("WWW-Authenticate", `Bearer realm="twoway"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Basic realm="twoway", charset="UTF-8"`)
			}
			writeError(w, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
				Message: "authentication required: a bearer token (twoway token create) or HTTP Basic with a twoway user (twoway user create)"})
			return
		}
		if s.authorizer != nil {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			r = r.WithContext(authz.With(r.Context(), principal, host, s.authorizer))
		}
	}
	start := time.Now()
	s.mux.ServeHTTP(w, r)
	// The mux set the pattern it matched on r; unmatched requests (404,
	// 405) have none and are not timed.
	if r.Pattern != "" {
		s.durations.WithLabelValues(r.Pattern).Observe(time.Since(start).Seconds())
	}
}

// openPath is what probes (and scrapers, unless MetricsAuth) reach
// without authenticating, and the web console's static files under /ui/,
// which hold no data: the console asks for a token and sends it with each
// API call.
func (s *Server) openPath(p string) bool {
	return p == "/healthz" || p == "/readyz" || p == "/metrics" && !s.metricsAuth ||
		p == "/ui" || strings.HasPrefix(p, "/ui/")
}

// WriteError answers err as every API error is answered: the JSON body of
// docs/HTTP.md with the status and code the error maps to (a 403 for an
// authz refusal, 400 for a bad_request from BadRequest...).
func WriteError(w http.ResponseWriter, err error) { writeError(w, errorFor(err, false)) }

// BadRequest is a bad_request error naming the parameter or field.
func BadRequest(field, msg string) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Field: field, Message: msg}
}

// WriteJSON answers v as JSON, uncached, as the API does.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: it stops
// accepting connections, ends long polls early (they answer with what they
// have) and waits up to the shutdown timeout for requests in flight. It
// returns nil after a clean shutdown, and closes ln either way. A Server
// serves once: long polls on it end at once after a shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down HTTP server", "timeout", s.timeout)
	s.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	}
	return nil
}

// healthBody is the JSON of /healthz and /readyz.
type healthBody struct {
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Commit  uint64 `json:"commit,omitempty"`
	Applied uint64 `json:"applied"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	s.answerHealth(w, false)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.answerHealth(w, true)
}

func (s *Server) answerHealth(w http.ResponseWriter, ready bool) {
	body, status := healthBody{Status: "ok"}, http.StatusOK
	if s.health != nil {
		h := s.health()
		body.Applied = h.Applied
		switch {
		case h.Stopped != nil:
			body.Status, body.Reason, body.Commit = "stopped", h.Stopped.Error(), h.Stopped.Seq
			status = http.StatusServiceUnavailable
		case ready && !h.Ready:
			body.Status, body.Reason = "not ready", h.Reason
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, body)
}
