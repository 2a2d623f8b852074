//go:build !nosql

package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver

	"github.com/twoway/twoway/internal/sqlengine"
)

// haveSQL: this build has DuckDB, and the scan phases run.
const haveSQL = true

// duckdbScan is the scan baseline: DuckDB alone, as a program embedding
// it would use it (one database, opened once), writes the declared
// columns of records 0 to rows-1 (the values tableValue gives them) to
// one Parquet file at path, then times TableScanSQL over read_parquet of
// it: once untimed, then runs times. It runs with as many threads as
// twoway's queries have by default.
func duckdbScan(ctx context.Context, path string, rows int64, runs int) (duckdbResult, error) {
	res := duckdbResult{threads: sqlengine.DefaultThreads}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return res, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, fmt.Sprintf("SET threads = %d", res.threads)); err != nil {
		return res, err
	}
	file := "'" + strings.ReplaceAll(path, "'", "''") + "'"
	start := time.Now()
	if _, err := db.ExecContext(ctx, fmt.Sprintf("COPY (SELECT i AS id, %s AS amount, concat('item-', i) AS item FROM range(0, %d) AS r(i)) TO %s (FORMAT parquet, COMPRESSION zstd)",
		tableAmountSQL, rows, file)); err != nil {
		return res, fmt.Errorf("writing the Parquet file: %w", err)
	}
	res.writeS = time.Since(start).Seconds()
	q := strings.Replace(TableScanSQL, "from t", "from read_parquet("+file+")", 1)
	res.bestMs, res.medianMs, err = timeRuns(runs, func() error {
		return db.QueryRowContext(ctx, q).Scan(&res.count, &res.sum, &res.maxID)
	})
	return res, err
}
