//go:build nosql

package bench

import (
	"context"
	"errors"
)

// haveSQL: this build has no DuckDB (build tag nosql), and the scan
// phases are skipped.
const haveSQL = false

func duckdbScan(context.Context, string, int64, int) (duckdbResult, error) {
	return duckdbResult{}, errors.New("built without SQL (build tag nosql)")
}
