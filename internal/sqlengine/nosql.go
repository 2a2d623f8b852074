//go:build nosql

package sqlengine

import "context"

// Query always fails with ErrNoSQL: this twoway was built with the nosql
// build tag, which leaves DuckDB out.
func (e *Engine) Query(ctx context.Context, sqlText string, cat Catalog) (*Result, error) {
	return nil, ErrNoSQL
}
