//go:build !nosql

package sqlengine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitReady waits until the filler of e holds a database opened before the
// next query starts, and returns how many the queries took from it so far.
func waitReady(t testing.TB, e *Engine) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.dbs.opened.Load() <= e.dbs.taken.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no database was opened ahead")
		}
		time.Sleep(time.Millisecond)
	}
	return e.dbs.taken.Load()
}

// warmQuery runs q on a database opened ahead of it.
func warmQuery(t *testing.T, e *Engine, cat Catalog, q string) (*Result, error) {
	t.Helper()
	taken := waitReady(t, e)
	res, err := e.Query(context.Background(), q, cat)
	if got := e.dbs.taken.Load(); got != taken+1 {
		t.Fatalf("%s: the query took %d databases opened ahead, want 1", q, got-taken)
	}
	return res, err
}

// TestPrewarmIsolation runs queries on databases opened ahead of them: each
// sees nothing of the queries before it, and is confined as a database
// opened for it would be.
func TestPrewarmIsolation(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret.parquet")
	writeParquet(t, secretFile, `SELECT 42::BIGINT AS s`)
	secret := &testCatalog{rels: []Relation{{Name: "secret", Columns: []Column{{"s", "long"}}, Files: []string{secretFile}}}}
	other := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"a", "int"}}, Tail: rowsTail([][]any{{int32(1)}})}}}

	// What random() returns right after setseed(0.25) on the same connection.
	seeded := func() float64 {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var r float64
		if _, err := conn.ExecContext(context.Background(), "SELECT setseed(0.25)"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(context.Background(), "SELECT random()").Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}()

	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("prewarm=%d", n), func(t *testing.T) {
			e := newEngine(t, Config{Prewarm: n, Threads: 1, MemoryLimit: "256MB"})
			if got := e.Config().Prewarm; got != n {
				t.Fatalf("Config().Prewarm = %d, want %d", got, n)
			}

			// A query that leaves what a SELECT can leave: a view of its
			// catalog, its files in allowed_paths, a random seed, the
			// database confined and locked.
			res, err := warmQuery(t, e, secret, `SELECT s, setseed(0.25) AS seed FROM secret`)
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, res, [][]any{{int64(42), nil}})

			// None of it is in the databases of the queries after it.
			_, err = warmQuery(t, e, other, `SELECT * FROM secret`)
			var qe *QueryError
			if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Catalog Error") || !strings.Contains(qe.Msg, "secret") {
				t.Errorf("an earlier query's view: got %v, want a catalog error", err)
			}
			_, err = warmQuery(t, e, other, `SELECT * FROM read_parquet(`+quoteString(secretFile)+`)`)
			if !errors.As(err, &qe) || !strings.Contains(qe.Msg, "Permission Error") {
				t.Errorf("an earlier query's file: got %v, want a permission error", err)
			}
			res, err = warmQuery(t, e, other, `SELECT random() AS r, a FROM t`)
			if err != nil {
				t.Fatal(err)
			}
			if r := res.Rows[0][0]; r == seeded {
				t.Errorf("random() is %v, what an earlier query's setseed(0.25) makes it", r)
			}

			// The configuration set at open and the confinement hold.
			res, err = warmQuery(t, e, other, `SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),
				current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions'),
				current_setting('allow_community_extensions'), current_setting('allow_unsigned_extensions'),
				current_setting('temp_directory'), current_setting('max_temp_directory_size'),
				current_setting('threads'), current_setting('memory_limit'), current_setting('TimeZone'),
				current_setting('allowed_paths')::VARCHAR, current_setting('parquet_metadata_cache'),
				(SELECT count(*) FROM duckdb_views() WHERE NOT internal)`)
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, res, [][]any{{false, true, false, false, false, false, "", "0 bytes", int64(1), "244.1 MiB", "UTC", "[]", true, int64(1)}})
			for q, want := range map[string]string{
				`SELECT * FROM read_csv('/etc/passwd')`:                             "Permission Error",
				`SELECT * FROM read_parquet(` + quoteString(dir+"/*.parquet") + `)`: "Permission Error",
				`SELECT * FROM query('SET threads = 8')`:                            "SELECT",
			} {
				_, err := warmQuery(t, e, other, q)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: got %v, want an error saying %q", q, err, want)
				}
			}
			// Statements refused by their first word take no database.
			for _, q := range []string{`SET threads = 8`, `LOAD httpfs`, `ATTACH ':memory:' AS m`} {
				taken := waitReady(t, e)
				if _, err := e.Query(context.Background(), q, other); !errors.Is(err, ErrNotReadOnly) {
					t.Errorf("%s: got %v, want ErrNotReadOnly", q, err)
				}
				if got := e.dbs.taken.Load(); got != taken {
					t.Errorf("%s took a database", q)
				}
			}
		})
	}
}

// settle waits until the number of goroutines stops falling, and returns it.
func settle() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// TestCloseLeavesNoGoroutine closes engines idle, busy opening, after
// concurrent queries and failed ones: afterwards none of their goroutines
// is left.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := settle()
	live := liveDatabases.Load()
	ctx := context.Background()
	closed := func(e *Engine) {
		t.Helper()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if n := liveDatabases.Load(); n != live {
			t.Fatalf("%d databases open after Close, want %d", n, live)
		}
	}

	// Closed while it opens its first database.
	closed(New(Config{}))

	e := New(Config{Prewarm: 2})
	cat := &testCatalog{rels: []Relation{{Name: "t", Columns: []Column{{"a", "long"}}, Tail: rowsTail([][]any{{int64(7)}})}}}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			res, err := e.Query(ctx, `SELECT sum(a)::BIGINT AS s FROM t`, cat)
			if err != nil {
				t.Error(err)
				return
			}
			checkRows(t, res, [][]any{{int64(7)}})
		})
	}
	wg.Wait()
	if _, err := e.Query(ctx, `SELECT nosuch FROM t`, cat); err == nil {
		t.Error("a bad query did not fail")
	}
	closed(e)
	closed(e) // again: nothing to do
	// Queries still run after Close, each opening its own database.
	res := mustQuery(t, e, cat, `SELECT a FROM t`)
	checkRows(t, res, [][]any{{int64(7)}})
	if n := liveDatabases.Load(); n != live {
		t.Errorf("%d databases open after a query after Close, want %d", n, live)
	}

	// Close waits for the databases of finished queries to be closed.
	none := New(Config{Prewarm: -1})
	mustQuery(t, none, cat, `SELECT a FROM t`)
	closed(none)

	// A configuration DuckDB refuses fails every query, opened ahead or not.
	for _, n := range []int{1, -1} {
		bad := New(Config{MemoryLimit: "lots", Prewarm: n})
		for range 2 {
			if _, err := bad.Query(ctx, `SELECT 1`, nil); err == nil || !strings.Contains(err.Error(), `memory limit "lots"`) {
				t.Errorf("prewarm %d, bad memory limit: got %v", n, err)
			}
		}
		closed(bad)
	}

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the engines:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNoPrewarm runs queries with no database opened ahead.
func TestNoPrewarm(t *testing.T) {
	e := newEngine(t, Config{Prewarm: -1})
	if e.dbs.ready != nil {
		t.Fatal("Prewarm -1 keeps databases ready")
	}
	res := mustQuery(t, e, nil, `SELECT current_setting('lock_configuration') AS l`)
	checkRows(t, res, [][]any{{true}})
	if n := e.dbs.opened.Load(); n != 0 {
		t.Errorf("%d databases opened ahead", n)
	}
	if got := newEngine(t, Config{}).Config().Prewarm; got != DefaultPrewarm {
		t.Errorf("default Prewarm %d, want %d", got, DefaultPrewarm)
	}
}
