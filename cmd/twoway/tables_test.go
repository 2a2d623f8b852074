package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTablesQuickStart is the README's tables quick start as a user types
// it: create a topic and a table, produce with kcat, and twoway sql counts
// the record just produced, through the agent and straight on the bucket;
// the Iceberg REST catalog lists and loads the table once it commits.
func TestTablesQuickStart(t *testing.T) {
	t.Parallel()
	kcat := kcatPath(t)
	data := filepath.Join(t.TempDir(), "data")
	a := startKafkaAgent(t, data)
	k := kcatClient{kcat, a.kafka}
	server := a.http
	run := func(args ...string) string {
		t.Helper()
		r := twoway(t, args...)
		if r.code != 0 {
			t.Fatalf("twoway %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
	run("topic", "create", "orders", "--partitions", "2", "--server", server)
	schema := filepath.Join(t.TempDir(), "orders.json")
	os.WriteFile(schema, []byte(`{"columns": [{"name": "id", "type": "long", "required": true}, {"name": "amount", "type": "decimal(10,2)"}]}`), 0o644)
	if out := run("table", "create", "orders", "--topic", "orders", "--schema", schema, "--commit-interval", "2s", "--server", server); !strings.Contains(out, "created table orders") {
		t.Fatalf("table create: %s", out)
	}
	k.run(t, `{"id": 1, "amount": 12.50}`+"\n", "-P", "-t", "orders", "-p", "0")
	// Right after the acknowledgement, before any commit.
	if out := run("sql", "select count(*) as n, sum(amount) as total from orders", "--server", server); !strings.Contains(out, "n  total\n1  12.50\n(1 row)") {
		t.Fatalf("twoway sql right after kcat:\n%s", out)
	}
	k.run(t, `{"id": 2, "amount": 0.25}`+"\n"+`{"id": "oops"}`+"\n", "-P", "-t", "orders", "-p", "1")
	out := run("sql", "select count(*) as n from orders", "--format", "json", "--server", server)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0]["n"] != 2.0 {
		t.Fatalf("--format json: %v %s", err, out)
	}
	if out := run("sql", "select _partition, _offset, error from orders_dlq", "--format", "csv", "--server", server); !strings.HasPrefix(out, "_partition,_offset,error\n1,1,") || !strings.Contains(out, "id: expected an integer") {
		t.Fatalf("dead letters as CSV:\n%s", out)
	}
	// Bad SQL and writes are refused with DuckDB's or twoway's reason.
	if r := twoway(t, "sql", "select nope from orders", "--server", server); r.code == 0 || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("bad SQL: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := twoway(t, "sql", "copy orders to '/tmp/x.csv'", "--server", server); r.code == 0 || !strings.Contains(r.stderr, "read-only") {
		t.Fatalf("COPY: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Materialized within the interval; the catalog serves it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info struct {
			Rows     int64  `json:"rows"`
			Metadata string `json:"metadata_location"`
		}
		json.Unmarshal([]byte(run("table", "describe", "orders", "--json", "--server", server)), &info)
		if info.Rows == 2 {
			if !strings.HasSuffix(info.Metadata, "/tables/orders/metadata/v1.metadata.json") {
				t.Fatalf("metadata location %s", info.Metadata)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not materialized: %+v", info)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := httpGet(t, server+"/iceberg/v1/namespaces/default/tables"); !strings.Contains(out, `"name": "orders"`) {
		t.Fatalf("REST catalog list: %s", out)
	}
	if out := httpGet(t, server+"/iceberg/v1/namespaces/default/tables/orders"); !strings.Contains(out, `"metadata-location"`) || !strings.Contains(out, `"format-version": 2`) {
		t.Fatalf("REST catalog load: %.500s", out)
	}
	if out := run("table", "list", "--server", server); !strings.Contains(out, "orders  orders  2     1") {
		t.Fatalf("table list:\n%s", out)
	}
	a.stop(t)
	// Straight on the bucket, with no agent running: the same answer.
	if out := run("sql", "select count(*) as n from orders", "--bucket", data); !strings.Contains(out, "n\n2\n(1 row)") {
		t.Fatalf("twoway sql --bucket:\n%s", out)
	}
	if out := run("table", "drop", "orders", "--bucket", data); !strings.Contains(out, "dropped table orders") {
		t.Fatalf("table drop: %s", out)
	}
	if r := twoway(t, "sql", "select count(*) from orders", "--bucket", data); r.code == 0 || !strings.Contains(r.stderr, "orders") {
		t.Fatalf("a dropped table is still queryable: %s %s", r.stdout, r.stderr)
	}
}
