//go:build !nosql

package sqlengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// database is one fresh in-memory DuckDB database, opened with dsn's
// configuration, and its one connection. It serves a single query and is
// then closed.
type database struct {
	db   *sql.DB
	conn *sql.Conn
}

// dsn returns the DuckDB configuration applied when the database opens,
// before anything runs in it. It depends on cfg only, never on a query.
func dsn(cfg Config) string {
	v := url.Values{}
	// Extensions: only those built in (parquet, json, icu, core_functions)
	// exist; none is ever downloaded or loaded from disk.
	v.Set("autoinstall_known_extensions", "false")
	v.Set("autoload_known_extensions", "false")
	v.Set("allow_community_extensions", "false")
	v.Set("allow_unsigned_extensions", "false")
	// Resources.
	v.Set("threads", strconv.Itoa(cfg.Threads))
	v.Set("memory_limit", cfg.MemoryLimit)
	// Never spill to disk: no temporary directory, and none of its space.
	v.Set("temp_directory", "")
	v.Set("max_temp_directory_size", "0B")
	return "?" + v.Encode()
}

// liveDatabases counts the databases open now, of every Engine.
var liveDatabases atomic.Int64

// openSQL is configuration the DSN cannot hold (a setting of the built-in
// parquet extension, which DuckDB accepts only once the database is open);
// it runs right after the database opens. Caching Parquet metadata in the
// query's own database saves reading every file's footer again for each
// bind of a view (creating it, preparing the statement, preparing it under
// the row limit) and for the scan.
const openSQL = "SET parquet_metadata_cache = true"

// openDatabase opens a fresh database and connects to it. Only its
// configuration runs in it (dsn, openSQL): the query-dependent setup and the
// confinement are the query's (query.setUp).
func openDatabase(cfg Config) (*database, error) {
	connector, err := duckdb.NewConnector(dsn(cfg), nil)
	if err != nil {
		return nil, fmt.Errorf("sql: starting DuckDB (memory limit %q, %d threads): %w",
			cfg.MemoryLimit, cfg.Threads, err)
	}
	db := sql.OpenDB(connector)
	liveDatabases.Add(1)
	d := &database{db: db}
	if d.conn, err = db.Conn(context.Background()); err != nil {
		db.Close()
		liveDatabases.Add(-1)
		return nil, fmt.Errorf("sql: connecting to DuckDB: %w", err)
	}
	if _, err := d.conn.ExecContext(context.Background(), openSQL); err != nil {
		d.close()
		return nil, fmt.Errorf("sql: setting up DuckDB: %s: %s", openSQL, duckMessage(err))
	}
	return d, nil
}

func (d *database) close() error {
	defer liveDatabases.Add(-1)
	return errors.Join(d.conn.Close(), d.db.Close())
}

// pool hands each query a database of its own. It keeps up to
// Config.Prewarm of them opened ahead, by one goroutine (the filler) that
// opens a replacement as soon as one is taken, so that a query does not
// wait for DuckDB to start. A database is taken once and never comes back:
// release closes it, off the query's path.
type pool struct {
	cfg Config

	// ready holds the opened databases (or the error of opening one). Its
	// capacity is Prewarm-1: the filler holds one more, waiting to send it.
	// nil if Prewarm < 1.
	ready   chan openResult
	done    chan struct{} // closed by close: the filler stops
	filler  sync.WaitGroup
	waiting atomic.Bool // a query is waiting for the filler

	// opened counts the databases the filler opened, taken those queries
	// took from it: opened > taken means one is ready.
	opened, taken atomic.Int64

	mu      sync.Mutex
	closed  bool
	closing sync.WaitGroup // databases of finished queries being closed

	closeOnce sync.Once
	closeErr  error
}

type openResult struct {
	d   *database
	err error
}

func newPool(cfg Config) *pool {
	p := &pool{cfg: cfg, done: make(chan struct{})}
	if cfg.Prewarm > 0 {
		p.ready = make(chan openResult, cfg.Prewarm-1)
		p.filler.Add(1)
		go p.fill()
	}
	return p
}

// fill opens databases ahead until close. A failed open is handed to the
// next query as its error, so a configuration DuckDB refuses fails each
// query (as it would opening its own) without opening in a loop.
func (p *pool) fill() {
	defer p.filler.Done()
	for {
		select {
		case <-p.done:
			return
		default:
		}
		d, err := openDatabase(p.cfg)
		p.opened.Add(1)
		select {
		case p.ready <- openResult{d, err}:
		case <-p.done:
			if d != nil {
				d.close()
			}
			return
		}
	}
}

// take returns a database no query has used.
func (p *pool) take(ctx context.Context) (*database, error) {
	if p.ready == nil {
		return openDatabase(p.cfg)
	}
	select {
	case o := <-p.ready:
		p.taken.Add(1)
		return o.d, o.err
	default:
	}
	// None is ready, so the filler is opening one: waiting for it takes
	// less than opening another. One query waits; the others open their own
	// rather than queue behind it.
	if !p.waiting.CompareAndSwap(false, true) {
		return openDatabase(p.cfg)
	}
	defer p.waiting.Store(false)
	select {
	case o := <-p.ready:
		p.taken.Add(1)
		return o.d, o.err
	case <-p.done:
		return openDatabase(p.cfg)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release closes d, which its query is done with, in the background (which
// takes a few milliseconds); after close, right away.
func (p *pool) release(d *database) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		d.close()
		return
	}
	p.closing.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.closing.Done()
		d.close()
	}()
}

// close stops the filler, closes the databases it opened and waits for the
// databases of finished queries to be closed.
func (p *pool) close() error {
	if p == nil { // an Engine not made by New
		return nil
	}
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.done)
		p.filler.Wait()
		// The filler was the only sender: what is left in ready stays there
		// (or goes to a query taking it now).
		var errs []error
		for len(p.ready) > 0 {
			select {
			case o := <-p.ready:
				if o.d != nil {
					errs = append(errs, o.d.close())
				}
			default:
			}
		}
		p.closing.Wait()
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
