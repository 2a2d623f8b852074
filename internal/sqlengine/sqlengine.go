// Package sqlengine runs read-only SQL over twoway's tables with an embedded
// DuckDB.
//
// Every call to [Engine.Query] takes a fresh in-memory DuckDB database (one
// opened ahead in the background, see Config.Prewarm), makes each [Relation]
// of the [Catalog] a view over its Parquet files plus the rows its Tail
// yields, confines the database (no file but those Parquet files can be read,
// nothing can be written, no extension can be installed or loaded, no setting
// can be changed), runs the single SELECT statement it was given under a time
// limit and a row limit, and throws the database away. Nothing persists from
// one query to the next.
//
// The values of rows, both those a Tail yields and those a [Result] holds, use
// these Go types, by twoway column type:
//
//	int            int32
//	long           int64
//	double         float64
//	boolean        bool
//	string         string
//	binary         []byte
//	timestamp      time.Time (UTC, microsecond precision)
//	date           time.Time (midnight UTC)
//	decimal(P,S)   *big.Int, the unscaled value: value = unscaled × 10^-S
//	list<T>        []any
//	struct<...>    map[string]any keyed by field name
//
// and nil is NULL. Results may hold further DuckDB types; see [Result].
//
// The result writers ([Result.WriteJSON] and the others) do not depend on
// DuckDB, so they exist in the nosql build too, where [Engine.Query] always
// fails with [ErrNoSQL].
package sqlengine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Column is one column as SQL sees it.
//
// Type is a twoway type string:
//
//	"int"            INTEGER
//	"long"           BIGINT
//	"double"         DOUBLE
//	"boolean"        BOOLEAN
//	"string"         VARCHAR
//	"binary"         BLOB
//	"timestamp"      TIMESTAMP WITH TIME ZONE (microseconds, UTC)
//	"date"           DATE
//	"decimal(P,S)"   DECIMAL(P,S), 1 <= P <= 38, 0 <= S <= P
//	"list<T>"        T[]
//	"struct<a:T,b:U>" STRUCT(a T, b U)
//
// Types nest, e.g. "list<struct<key:string,value:binary>>".
type Column struct {
	Name string
	Type string
}

// Relation is one table for the length of one query.
type Relation struct {
	// Name is the name SQL uses for the table. It may hold any character but
	// NUL; SQL quotes it as needed ("my table"). DuckDB compares names without
	// regard to case, so two relations must not differ only in case.
	Name string
	// Columns are the table's columns, in order.
	Columns []Column
	// Files are local paths of Parquet files holding rows of the relation.
	// Parquet column names equal Column.Name and their types match the
	// mapping of Column. A file may lack columns that were added later (schema
	// evolution adds optional columns only): those read as NULL. Columns of a
	// file that Columns lacks are not seen. These files, and no others, are
	// what the query may read.
	Files []string
	// Tail yields the rows that are not in Files yet, values in column order
	// and of the Go types in the package documentation. It may be nil (no
	// rows).
	//
	// Tail is called once per scan of the relation during the query (a query
	// that reads a table twice calls it twice), on a goroutine of its own. It
	// must stop and return soon after yield returns false or ctx is done;
	// Query waits for it before it returns. yield does not keep row, so Tail
	// may reuse it. An error Tail returns fails the query with that error
	// (wrapped with the relation's name; errors.Is and errors.As reach it).
	Tail func(ctx context.Context, yield func(row []any) bool) error
}

// Catalog is what one query may see. It is asked during the query: Relations
// before the statement is prepared, Topic while it is (bind time). A Catalog
// used by concurrent queries must be safe for concurrent use.
type Catalog interface {
	// Relations lists the tables; each becomes a view of its Name.
	Relations(ctx context.Context) ([]Relation, error)
	// Topic returns the raw records of a topic as a relation, for the table
	// function topic('name'). An unknown topic returns an error that names
	// it. The relation's Files must be empty: topic() reads the rows Tail
	// yields only. Topic is asked at most once per name and query.
	Topic(ctx context.Context, name string) (Relation, error)
}

// Config sets the limits of each query. The zero value of a field means its
// default.
type Config struct {
	// MemoryLimit is DuckDB's memory_limit for one query, e.g. "512MB".
	// Default "1GB". Queries never spill to disk.
	MemoryLimit string
	// Threads is the number of DuckDB threads of one query. Default 2.
	Threads int
	// Timeout is how long one query may take, from Query's start to its
	// return. Default 30s.
	Timeout time.Duration
	// MaxRows is the most rows a query may return; a query that would
	// return more fails with ErrTooManyRows. Default 100000.
	MaxRows int
	// Prewarm is how many fresh databases the Engine keeps opened ahead, so
	// that a query does not wait for DuckDB to start one (some 15 ms). Each
	// is opened with the settings that do not depend on the query (threads,
	// memory limit, no temporary directory, no extension loading), serves
	// exactly one query and is then closed; taking one starts opening its
	// replacement in the background. An idle one holds some 5 MB and a few
	// idle DuckDB threads. Default 1; negative for none (each query opens
	// its database itself).
	Prewarm int
}

// Defaults of Config.
const (
	DefaultMemoryLimit = "1GB"
	DefaultThreads     = 2
	DefaultTimeout     = 30 * time.Second
	DefaultMaxRows     = 100000
	DefaultPrewarm     = 1
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MemoryLimit == "" {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.Threads <= 0 {
		c.Threads = DefaultThreads
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.Prewarm == 0 {
		c.Prewarm = DefaultPrewarm
	}
	return c
}

// Engine runs queries. It is safe for concurrent use, and no query sees
// anything of another: each has a fresh DuckDB database of its own, used by
// no other query, so n concurrent queries may use up to n times
// Config.MemoryLimit. Besides the databases of running queries, an Engine
// keeps Config.Prewarm unused ones ready until [Engine.Close].
type Engine struct {
	cfg Config
	dbs *pool // nil in the nosql build
}

// New returns an Engine whose queries are limited by cfg (zero fields take
// their defaults). It starts opening the databases of Config.Prewarm in the
// background; call [Engine.Close] when done with the Engine.
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg.withDefaults()}
	e.dbs = newPool(e.cfg)
	return e
}

// Config returns the configuration in force, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Close closes the databases kept ready, stops opening new ones and waits
// until the databases of finished queries are closed; it leaves no goroutine
// behind. Queries running meanwhile are not affected. Query still works
// after Close, each query opening its database itself. Calling Close again
// does nothing.
func (e *Engine) Close() error { return e.dbs.close() }

var (
	// ErrNotReadOnly means the SQL is not a single read-only query. The
	// error returned says what was found instead, e.g. COPY, INSTALL,
	// ATTACH, SET or more than one statement.
	ErrNotReadOnly = errors.New("sql: only a single read-only query (SELECT) may run")
	// ErrTimeout means the query ran past Config.Timeout. The error returned
	// says the limit.
	ErrTimeout = errors.New("sql: query ran past its time limit")
	// ErrTooManyRows means the query would return more than Config.MaxRows
	// rows. The error returned says the limit.
	ErrTooManyRows = errors.New("sql: query returned too many rows")
	// ErrNoSQL is what Query returns in a twoway built with the nosql build
	// tag.
	ErrNoSQL = errors.New("this twoway was built without SQL (build tag nosql)")
)

// QueryError is an error DuckDB reported for the query: a syntax, binder,
// catalog, conversion or permission error, for instance. Msg is DuckDB's own
// message, which usually says where in the SQL the problem is.
type QueryError struct {
	Msg string
}

func (e *QueryError) Error() string { return "sql: " + e.Msg }

// sentinelError is an error that reads as msg and matches the sentinel kind
// with errors.Is.
type sentinelError struct {
	kind error
	msg  string
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.kind }

func notReadOnly(found string) error {
	return &sentinelError{kind: ErrNotReadOnly, msg: fmt.Sprintf("%s, found %s", ErrNotReadOnly.Error(), found)}
}

func timeoutError(limit time.Duration) error {
	return &sentinelError{kind: ErrTimeout, msg: fmt.Sprintf("sql: query ran past the %s limit", limit)}
}

func tooManyRowsError(limit int) error {
	return &sentinelError{kind: ErrTooManyRows, msg: fmt.Sprintf(
		"sql: query returned more than %d rows, the most allowed; add a LIMIT or aggregate", limit)}
}
