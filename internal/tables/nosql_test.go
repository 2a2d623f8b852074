//go:build nosql

package tables

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/internal/sqlengine"
)

// TestNoSQLBuild: without DuckDB (-tags nosql, CGO_ENABLED=0) tables are
// still materialized, and SQL answers that this build has none.
func TestNoSQLBuild(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 1)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	a.produce(t, "orders", 0, `{"id": 1}`, `{"id": 2}`)
	tb := a.waitMaterialized(t, "orders", 20*time.Second)
	if rows := icebergScan(t, b, tb.Main.Metadata); len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	if _, err := a.tables.Query(ctx, "select 1"); !errors.Is(err, sqlengine.ErrNoSQL) {
		t.Fatalf("Query: %v", err)
	}
	resp, err := http.Post(a.http.URL+"/v1/sql", "application/json", strings.NewReader(`{"sql": "select 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), "nosql") {
		t.Fatalf("POST /v1/sql: %d %s", resp.StatusCode, body)
	}
}
