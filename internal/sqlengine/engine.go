//go:build !nosql

package sqlengine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Query runs one read-only statement (a SELECT, including WITH ... SELECT,
// FROM ..., VALUES, DESCRIBE, SUMMARIZE, SHOW and PIVOT with an IN list)
// against the relations of cat, and returns all its rows. A nil cat has no
// relations and no topics.
//
// The SQL sees each relation of cat.Relations as a view of its name, and two
// table functions: topic('name'), the raw records of a topic (cat.Topic), and
// twoway_tail('name'), the rows of a relation that its Tail yields.
//
// Errors:
//   - ErrNotReadOnly (errors.Is) if sqlText is not exactly one read-only query;
//     the message says what was found.
//   - *QueryError if DuckDB refused or failed the query: a syntax, binder or
//     catalog error, or a permission error for reading a file that is not a
//     Parquet file of the catalog, installing or loading an extension,
//     writing, or changing a setting.
//   - ErrTimeout if the query ran past Config.Timeout.
//   - ErrTooManyRows if it would return more than Config.MaxRows rows.
//   - The error of the catalog or of a Tail, wrapped with what it was
//     reading (errors.Is and errors.As reach it).
//   - ctx's error, wrapped, if ctx ends first.
//
// A failed query leaves nothing behind: every query has a database of its
// own, which no other query has used or will use (a fresh one, opened ahead
// of time if Config.Prewarm says so), and which is closed once Query returns
// (in the background; [Engine.Close] waits for it). No Tail is still running
// when Query returns.
func (e *Engine) Query(ctx context.Context, sqlText string, cat Catalog) (*Result, error) {
	qctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	q := &query{ctx: qctx, cat: cat, cfg: e.cfg, dbs: e.dbs, topics: map[string]topicEntry{}}
	res, err := q.run(sqlText)
	q.stop()
	if err == nil {
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("sql: query canceled: %w", ctx.Err())
	case errors.Is(qctx.Err(), context.DeadlineExceeded):
		return nil, timeoutError(e.cfg.Timeout)
	}
	if goErr := q.goErr(); goErr != nil {
		return nil, goErr
	}
	return nil, err
}

// query is the state of one Query call.
type query struct {
	ctx context.Context // ends at the deadline; each scan has a child that stop ends
	cat Catalog
	cfg Config
	dbs *pool

	relations map[string]*relation // by exact name

	topicMu sync.Mutex
	topics  map[string]topicEntry // cat.Topic answers, by name

	tails sync.WaitGroup // running Tail goroutines

	errMu    sync.Mutex
	firstErr error // first error of Go code (catalog, Tail) during the query
	cancels  []context.CancelFunc
}

type topicEntry struct {
	rel *relation
	err error
}

// fail records err as the query's error if it is the first. DuckDB reports
// errors of table functions as text; Query returns the recorded error
// instead, so that callers can match it.
func (q *query) fail(err error) {
	q.errMu.Lock()
	if q.firstErr == nil {
		q.firstErr = err
	}
	q.errMu.Unlock()
}

func (q *query) goErr() error {
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return q.firstErr
}

// runContext returns a context for one scan that stop ends.
func (q *query) runContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(q.ctx)
	q.errMu.Lock()
	q.cancels = append(q.cancels, cancel)
	q.errMu.Unlock()
	return ctx, cancel
}

// stop ends every scan and waits for their Tail goroutines to return.
func (q *query) stop() {
	q.errMu.Lock()
	cancels := q.cancels
	q.cancels = nil
	q.errMu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	q.tails.Wait()
}

func (q *query) run(sqlText string) (*Result, error) {
	if what, ok := emptySQL(sqlText); ok {
		return nil, notReadOnly(what)
	}
	// Statements that are plainly not queries are refused by their first
	// word, before DuckDB binds them (and fails them with a less telling
	// permission or catalog error). The statement type check after
	// preparing is what guarantees a single SELECT.
	if kw := firstKeyword(sqlText); writeKeywords[kw] {
		return nil, notReadOnly(kw)
	}
	var rels []Relation
	if q.cat != nil {
		var err error
		if rels, err = q.cat.Relations(q.ctx); err != nil {
			return nil, fmt.Errorf("sql: listing the tables: %w", err)
		}
	}
	if err := q.loadRelations(rels); err != nil {
		return nil, err
	}

	// A database no query has used, opened ahead with the configuration
	// that does not depend on the query (dsn); it is closed after this
	// query, never used again.
	d, err := q.dbs.take(q.ctx)
	if err != nil {
		return nil, err
	}
	defer q.dbs.release(d)

	if err := q.setUp(d.conn); err != nil {
		return nil, err
	}

	var res *Result
	err = d.conn.Raw(func(dc any) error {
		dconn, ok := dc.(*duckdb.Conn)
		if !ok {
			return fmt.Errorf("sql: unexpected driver connection %T", dc)
		}
		var err error
		res, err = q.execute(dconn, sqlText)
		return err
	})
	return res, err
}

// setUp registers the table functions, creates a view per relation and then
// confines the database. The order matters: allowed_paths cannot change once
// enable_external_access is false, and nothing can change after
// lock_configuration.
func (q *query) setUp(conn *sql.Conn) error {
	varchar, err := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	if err != nil {
		return fmt.Errorf("sql: %w", err)
	}
	tailFn := duckdb.ChunkTableFunction{
		Config:        duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{varchar}},
		BindArguments: q.bindTail,
	}
	if err := duckdb.RegisterTableUDF(conn, tailFunction, tailFn); err != nil {
		return fmt.Errorf("sql: registering %s(): %w", tailFunction, err)
	}
	topicFn := duckdb.ChunkTableFunction{
		Config:        duckdb.TableFunctionConfig{Arguments: []duckdb.TypeInfo{varchar}},
		BindArguments: q.bindTopic,
	}
	if err := duckdb.RegisterTableUDF(conn, topicFunction, topicFn); err != nil {
		return fmt.Errorf("sql: registering %s(): %w", topicFunction, err)
	}

	exec := func(stmt string) error {
		if _, err := conn.ExecContext(q.ctx, stmt); err != nil {
			return fmt.Errorf("sql: setting up DuckDB: %s: %s", firstLine(stmt), duckMessage(err))
		}
		return nil
	}
	// Timestamps are UTC whatever the machine's zone.
	if err := exec("SET TimeZone = 'UTC'"); err != nil {
		return err
	}
	var files []string
	for _, rel := range q.relations {
		// Creating the view reads the schemas of the Parquet files: a
		// missing or broken file fails here.
		if _, err := conn.ExecContext(q.ctx, rel.viewSQL()); err != nil {
			// DuckDB's pointer into the view's SQL would only confuse.
			msg, _, _ := strings.Cut(duckMessage(err), "\n\nLINE ")
			return &QueryError{Msg: fmt.Sprintf("%s: %s", rel.what, msg)}
		}
		files = append(files, rel.files...)
	}
	// The confinement, in one round trip: DuckDB runs the statements in
	// order and stops at the first that fails, which fails the query.
	confine := "SET enable_external_access = false;\nSET lock_configuration = true"
	if len(files) > 0 {
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = quoteString(f)
		}
		confine = "SET allowed_paths = [" + strings.Join(quoted, ", ") + "];\n" + confine
	}
	return exec(confine)
}

// execute prepares sqlText, checks that it is a single read-only query, runs
// it and reads its rows.
func (q *query) execute(conn *duckdb.Conn, sqlText string) (*Result, error) {
	stmt, err := prepare(conn, sqlText)
	if err != nil {
		return nil, err
	}
	defer func() {
		if stmt != nil {
			stmt.Close()
		}
	}()
	typ, err := stmt.StatementType()
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	if typ != duckdb.STATEMENT_TYPE_SELECT {
		return nil, notReadOnly(describeStatement(sqlText, typ))
	}
	names, err := columnNames(stmt)
	if err != nil {
		return nil, err
	}

	// Run it under a LIMIT of one row past MaxRows, so that DuckDB stops
	// early rather than materializing a huge result. The wrapped statement
	// is used only if it is the same query: one SELECT with the same
	// columns. (A trailing comment after a semicolon, or duplicate column
	// names, make it differ; then the statement runs as it is.)
	wrapped := "SELECT * FROM (\n" + strings.TrimRight(sqlText, " \t\r\n;") + "\n) LIMIT " + strconv.Itoa(q.cfg.MaxRows+1)
	if wstmt, err := prepare(conn, wrapped); err == nil {
		wtyp, _ := wstmt.StatementType()
		wnames, err := columnNames(wstmt)
		if err == nil && wtyp == duckdb.STATEMENT_TYPE_SELECT && slicesEqual(names, wnames) {
			stmt.Close()
			stmt = wstmt
		} else {
			wstmt.Close()
		}
	}

	if stmt.NumInput() > 0 {
		return nil, &QueryError{Msg: "the query has parameters ($1, ? or $name), but no values are given for them"}
	}
	for i := range names {
		if t, err := stmt.ColumnType(i); err == nil && t == duckdb.TYPE_VARIANT {
			return nil, &QueryError{Msg: fmt.Sprintf(
				"column %q has type VARIANT, which cannot be returned; cast it, e.g. to VARCHAR or JSON", names[i])}
		}
	}

	rows, err := stmt.QueryContext(q.ctx, nil)
	if err != nil {
		return nil, duckError(err)
	}
	defer rows.Close()
	return q.readRows(rows)
}

// readRows reads all rows, normalizing duckdb-go's values to the package's.
func (q *query) readRows(rows driver.Rows) (*Result, error) {
	cols := rows.Columns()
	res := &Result{Columns: make([]ResultColumn, len(cols))}
	types := make([]*dbType, len(cols))
	typeNamer, _ := rows.(driver.RowsColumnTypeDatabaseTypeName)
	for i, name := range cols {
		res.Columns[i].Name = name
		if typeNamer != nil {
			res.Columns[i].Type = typeNamer.ColumnTypeDatabaseTypeName(i)
		}
		types[i] = parseDBTypeOrNil(res.Columns[i].Type)
	}
	dst := make([]driver.Value, len(cols))
	for {
		err := rows.Next(dst)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return nil, &QueryError{Msg: "reading the result: " + strings.TrimPrefix(err.Error(), "database/sql/driver: ")}
		}
		if len(res.Rows) == q.cfg.MaxRows {
			return nil, tooManyRowsError(q.cfg.MaxRows)
		}
		row := make([]any, len(cols))
		for i, v := range dst {
			row[i] = normalize(types[i], v)
		}
		res.Rows = append(res.Rows, row)
		if len(res.Rows)%4096 == 0 && q.ctx.Err() != nil {
			return nil, q.ctx.Err()
		}
	}
}

// prepare prepares exactly one statement. Unlike database/sql's
// PrepareContext, which runs every statement but the last of a
// multi-statement text, duckdb-go's Conn.Prepare runs nothing and refuses more
// than one statement.
func prepare(conn *duckdb.Conn, text string) (*duckdb.Stmt, error) {
	st, err := conn.Prepare(text)
	if err != nil {
		if strings.Contains(err.Error(), "multi-statement") {
			return nil, notReadOnly("more than one statement")
		}
		return nil, duckError(err)
	}
	stmt, ok := st.(*duckdb.Stmt)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("sql: unexpected driver statement %T", st)
	}
	return stmt, nil
}

func columnNames(stmt *duckdb.Stmt) ([]string, error) {
	n, err := stmt.ColumnCount()
	if err != nil {
		return nil, duckError(err)
	}
	names := make([]string, n)
	for i := range names {
		if names[i], err = stmt.ColumnName(i); err != nil {
			return nil, duckError(err)
		}
	}
	return names, nil
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// duckError turns an error of DuckDB or duckdb-go into a *QueryError; the
// package's own errors stay as they are.
func duckError(err error) error {
	var qe *QueryError
	var se *sentinelError
	if errors.As(err, &qe) || errors.As(err, &se) {
		return err
	}
	return &QueryError{Msg: duckMessage(err)}
}

// duckMessage returns DuckDB's message for err, without duckdb-go's prefix.
func duckMessage(err error) string {
	var de *duckdb.Error
	if errors.As(err, &de) {
		msg := strings.TrimSpace(de.Msg)
		if de.Type == duckdb.ErrorTypeOutOfMemory {
			// DuckDB goes on to suggest settings a query cannot change.
			msg = firstLine(msg) + " (the query ran out of its memory limit; queries cannot spill to disk)"
		}
		return msg
	}
	return strings.TrimPrefix(err.Error(), "database/sql/driver: ")
}

// statementNames names the statement types Query refuses.
var statementNames = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT:       "INSERT",
	duckdb.STATEMENT_TYPE_UPDATE:       "UPDATE",
	duckdb.STATEMENT_TYPE_DELETE:       "DELETE",
	duckdb.STATEMENT_TYPE_EXPLAIN:      "EXPLAIN",
	duckdb.STATEMENT_TYPE_PREPARE:      "PREPARE",
	duckdb.STATEMENT_TYPE_CREATE:       "CREATE",
	duckdb.STATEMENT_TYPE_EXECUTE:      "EXECUTE",
	duckdb.STATEMENT_TYPE_ALTER:        "ALTER",
	duckdb.STATEMENT_TYPE_TRANSACTION:  "a transaction statement",
	duckdb.STATEMENT_TYPE_COPY:         "COPY",
	duckdb.STATEMENT_TYPE_ANALYZE:      "ANALYZE",
	duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET",
	duckdb.STATEMENT_TYPE_CREATE_FUNC:  "CREATE FUNCTION",
	duckdb.STATEMENT_TYPE_DROP:         "DROP",
	duckdb.STATEMENT_TYPE_EXPORT:       "EXPORT",
	duckdb.STATEMENT_TYPE_PRAGMA:       "PRAGMA",
	duckdb.STATEMENT_TYPE_VACUUM:       "VACUUM",
	duckdb.STATEMENT_TYPE_CALL:         "CALL",
	duckdb.STATEMENT_TYPE_SET:          "SET",
	duckdb.STATEMENT_TYPE_LOAD:         "LOAD",
	duckdb.STATEMENT_TYPE_EXTENSION:    "an extension statement",
	duckdb.STATEMENT_TYPE_ATTACH:       "ATTACH",
	duckdb.STATEMENT_TYPE_DETACH:       "DETACH",
}

// writeKeywords are first words of statements that are never a query.
var writeKeywords = map[string]bool{
	"ALTER": true, "ANALYZE": true, "ATTACH": true, "BEGIN": true, "CALL": true, "CHECKPOINT": true,
	"COMMENT": true, "COMMIT": true, "COPY": true, "CREATE": true, "DEALLOCATE": true, "DELETE": true,
	"DETACH": true, "DROP": true, "END": true, "EXECUTE": true, "EXPLAIN": true, "EXPORT": true,
	"FORCE": true, "IMPORT": true, "INSERT": true, "INSTALL": true, "LOAD": true, "MERGE": true,
	"PRAGMA": true, "PREPARE": true, "RESET": true, "ROLLBACK": true, "SET": true, "START": true,
	"TRUNCATE": true, "UPDATE": true, "UNINSTALL": true, "USE": true, "VACUUM": true,
}

// describeStatement names a refused statement for the error: by its first
// keyword (INSTALL, RESET, CHECKPOINT, USE ... share types with others), or by
// its type when it starts with WITH.
func describeStatement(sqlText string, typ duckdb.StmtType) string {
	kw := firstKeyword(sqlText)
	if typ == duckdb.STATEMENT_TYPE_MULTI {
		if kw == "" {
			kw = "a statement"
		}
		return kw + ", which runs more than one statement (a PIVOT needs an IN list of its values)"
	}
	name, known := statementNames[typ]
	if kw != "" && kw != "WITH" {
		return kw
	}
	if known {
		return name
	}
	return "a statement of type " + strconv.Itoa(int(typ))
}

// firstKeyword returns the first word of sqlText in upper case, skipping
// spaces, comments and opening parentheses; "" if there is none.
func firstKeyword(sqlText string) string {
	s := skipSpaceAndComments(sqlText)
	s = strings.TrimLeft(s, "( \t\r\n")
	end := 0
	for end < len(s) && isLetter(s[end]) {
		end++
	}
	return strings.ToUpper(s[:end])
}

// skipSpaceAndComments drops leading spaces, -- line comments and /* block
// comments */.
func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n\f")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return ""
			}
			s = s[2+i+2:]
		default:
			return s
		}
	}
}

// emptySQL reports whether sqlText holds no statement at all: only spaces,
// comments and semicolons.
func emptySQL(sqlText string) (string, bool) {
	s := sqlText
	for {
		s = skipSpaceAndComments(s)
		if !strings.HasPrefix(s, ";") {
			break
		}
		s = s[1:]
	}
	if s == "" {
		return "no statement", true
	}
	return "", false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// absFiles makes every path absolute (allowed_paths compares whole paths)
// and refuses paths DuckDB would take for glob patterns.
func absFiles(files []string) ([]string, error) {
	out := make([]string, len(files))
	for i, f := range files {
		if f == "" {
			return nil, errors.New("a Parquet file path is empty")
		}
		if strings.ContainsAny(f, "*?[") {
			return nil, fmt.Errorf("the Parquet file path %q holds a glob character (*, ? or [), which DuckDB would expand", f)
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("the Parquet file path %q: %w", f, err)
		}
		out[i] = abs
	}
	return out, nil
}
