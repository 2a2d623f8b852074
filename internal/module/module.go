// Package module assembles an agent from modules. A module is one
// capability (streams, consumer groups, functions, tables): it brings the
// state machines that apply its entry types (commitlog Owners), and once
// the log is open it adds its maintenance tasks, its HTTP routes, its
// metrics, the bucket prefixes garbage collection may clean, and any
// background work of its own. The commit log knows nothing of modules and
// modules know nothing of each other unless one is handed to another's
// constructor, so adding a capability is a new package and one line in the
// agent's module list.
//
// The life of a module, driven by Open and Set.Close:
//
//  1. Owners is called once, before the log opens: every agent applies
//     every entry type in the log, so every module is assembled on every
//     agent, whichever front doors it serves.
//  2. Start is called in list order after the log has loaded its
//     checkpoint and caught up with the bucket. It registers tasks
//     (Env.Log.AddTask), collected prefixes (Env.Log.CollectUnder), routes
//     (Env.HTTP) and metrics (Env.Metrics), and starts background work
//     with Env.Go. A Start that fails closes the modules started before it
//     and the log.
//  3. Close is called in reverse list order, before the log closes, so a
//     module may still propose entries (release leases) while closing.
package module

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
)

// Module is one capability of an agent.
type Module interface {
	// Name identifies the module in logs and errors.
	Name() string
	// Owners are the module's state machines. Their names and entry types
	// must not collide with another module's (Open says which do).
	Owners() []commitlog.Owner
	// Start wires the module to the open log. The context is Open's; work
	// that outlives Start uses Env.Go.
	Start(ctx context.Context, env *Env) error
	// Close stops the module's own work. Env.Go's goroutines have already
	// been told to stop (their context is done) and have returned.
	Close() error
}

// Routes is where a module registers HTTP handlers, with the patterns of
// net/http.ServeMux ("GET /v1/things/{id}").
type Routes interface {
	Handle(pattern string, h http.Handler)
}

// Env is what a started module gets from the agent.
type Env struct {
	// Log is the open commit log: propose, view owners' state, add tasks
	// (run by the janitor-lease holder), add collected prefixes, leases.
	Log *commitlog.Log
	// Bucket is the agent's bucket (with metrics), for objects a module
	// writes besides commits and chunks.
	Bucket bucket.Bucket
	// HTTP takes the module's routes. Without an HTTP listener they are
	// registered and never served.
	HTTP Routes
	// Metrics takes the module's Prometheus collectors.
	Metrics prometheus.Registerer
	// Logger is the agent's logger with the module's name attached.
	Logger *slog.Logger

	set *Set
}

// Go runs f in the background until the set closes: f's context ends at
// Close, which waits for f to return before closing the modules. Use it
// for work every agent does (watching the log, serving); work only one
// agent should do at a time is a Task.
func (e *Env) Go(f func(ctx context.Context)) {
	e.set.wg.Add(1)
	go func() {
		defer e.set.wg.Done()
		f(e.set.ctx)
	}()
}

// Config is what Open needs besides the modules.
type Config struct {
	Bucket  bucket.Bucket
	Log     commitlog.Options
	HTTP    Routes                // nil: routes are dropped
	Metrics prometheus.Registerer // nil: a registry of its own
	Logger  *slog.Logger
}

// Set is an open log and the modules started on it.
type Set struct {
	log     *commitlog.Log
	mods    []Module
	started int
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	err     error
}

// Open opens the commit log in cfg.Bucket with every module's owners, then
// starts the modules in order.
func Open(ctx context.Context, cfg Config, mods ...Module) (*Set, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.NewServeMux()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	var owners []commitlog.Owner
	names := map[string]bool{}
	for _, m := range mods {
		if names[m.Name()] {
			return nil, fmt.Errorf("two modules named %q", m.Name())
		}
		names[m.Name()] = true
		owners = append(owners, m.Owners()...)
	}
	l, err := commitlog.Open(ctx, cfg.Bucket, owners, cfg.Log)
	if err != nil {
		return nil, err
	}
	s := &Set{log: l, mods: mods}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, m := range mods {
		env := &Env{
			Log:     l,
			Bucket:  cfg.Bucket,
			HTTP:    cfg.HTTP,
			Metrics: cfg.Metrics,
			Logger:  cfg.Logger.With("module", m.Name()),
			set:     s,
		}
		if err := m.Start(ctx, env); err != nil {
			s.Close()
			return nil, fmt.Errorf("start module %s: %w", m.Name(), err)
		}
		s.started++
	}
	return s, nil
}

// Log is the set's commit log.
func (s *Set) Log() *commitlog.Log { return s.log }

// Modules lists the set's modules in start order.
func (s *Set) Modules() []Module { return s.mods }

// Close stops the background work, closes the started modules in reverse
// order and then the log. It returns the first module's error, if any.
func (s *Set) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		var errs []error
		for i := s.started - 1; i >= 0; i-- {
			if err := s.mods[i].Close(); err != nil {
				errs = append(errs, fmt.Errorf("close module %s: %w", s.mods[i].Name(), err))
			}
		}
		errs = append(errs, s.log.Close())
		s.err = errors.Join(errs...)
	})
	return s.err
}
