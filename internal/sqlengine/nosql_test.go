//go:build nosql

package sqlengine

import (
	"context"
	"errors"
	"testing"
)

func TestNoSQL(t *testing.T) {
	e := New(Config{})
	if got := e.Config(); got.Timeout != DefaultTimeout || got.MaxRows != DefaultMaxRows || got.Prewarm != DefaultPrewarm {
		t.Errorf("config %+v lacks its defaults", got)
	}
	res, err := e.Query(context.Background(), "SELECT 1", nil)
	if res != nil || !errors.Is(err, ErrNoSQL) || err.Error() != "this twoway was built without SQL (build tag nosql)" {
		t.Fatalf("got %v, %v; want ErrNoSQL", res, err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
