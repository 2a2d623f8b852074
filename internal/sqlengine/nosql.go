//go:build nosql

package sqlengine

import "context"

// Query always fails with ErrNoSQL: this twoway was built with the nosql
// build tag, which leaves DuckDB out.
func (e *Engine) Query(ctx context.Context, sqlText string, cat Catalog) (*Result, error) {
	return nil, ErrNoSQL
}

// pool is empty in the nosql build: there are no databases.
type pool struct{}

func newPool(Config) *pool { return nil }

func (*pool) close() error { return nil }
