package tables

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

var ordersSchema = &Schema{Columns: []Column{
	{Name: "id", Type: "long", Required: true},
	{Name: "amount", Type: "double"},
	{Name: "item", Type: "string"},
}}

// TestMaterializeExactlyOnce: records produced into a topic with a table
// are in the Iceberg table once each, read back by iceberg-go; records
// that break the schema are in the dead-letter table with their error.
func TestMaterializeExactlyOnce(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 3)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	sum := 0.0
	bad := 0
	for round := 0; round < 5; round++ {
		for p := int32(0); p < 3; p++ {
			var vals []string
			for i := 0; i < 20; i++ {
				id := round*1000 + int(p)*100 + i
				if i == 7 {
					vals = append(vals, fmt.Sprintf(`{"id": "not a number %d"}`, id))
					bad++
					continue
				}
				vals = append(vals, fmt.Sprintf(`{"id": %d, "amount": %d.5, "item": "x%d"}`, id, i, id))
				sum += float64(i) + 0.5
				want[fmt.Sprint(id)] = true
			}
			a.produce(t, "orders", p, vals...)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb := a.waitMaterialized(t, "orders", 30*time.Second)
	if tb.Rows != int64(len(want)) || tb.DLQRows != int64(bad) {
		t.Fatalf("table counts %d rows and %d dead letters, want %d and %d", tb.Rows, tb.DLQRows, len(want), bad)
	}
	rows := icebergScan(t, b, tb.Main.Metadata)
	if len(rows) != len(want) {
		t.Fatalf("iceberg-go reads %d rows, want %d", len(rows), len(want))
	}
	got := map[string]bool{}
	pos := map[string]bool{}
	gotSum := 0.0
	for _, r := range rows {
		id := fmt.Sprint(r["id"])
		if got[id] {
			t.Fatalf("id %s twice", id)
		}
		got[id] = true
		k := fmt.Sprint(r["_partition"], "/", r["_offset"])
		if pos[k] {
			t.Fatalf("(_partition, _offset) %s twice", k)
		}
		pos[k] = true
		gotSum += r["amount"].(float64)
		if r["item"] != "x"+id {
			t.Fatalf("row %v: item %v", r, r["item"])
		}
	}
	if gotSum != sum {
		t.Fatalf("sum(amount) = %v, want %v", gotSum, sum)
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("id %s missing", id)
		}
	}
	dl := icebergScan(t, b, tb.DLQ.Metadata)
	if len(dl) != bad {
		t.Fatalf("dead-letter table has %d rows, want %d", len(dl), bad)
	}
	for _, r := range dl {
		if e, _ := r["error"].(string); e == "" || r["value"] == nil {
			t.Fatalf("dead letter without its error or value: %v", r)
		}
	}
	// Table + dead letters = every record, each (partition, offset) once.
	for _, r := range dl {
		k := fmt.Sprint(r["_partition"], "/", r["_offset"])
		if pos[k] {
			t.Fatalf("(_partition, _offset) %s in the table and the dead-letter table", k)
		}
		pos[k] = true
	}
	if len(pos) != 300 {
		t.Fatalf("%d distinct records in table + dead letters, want 300", len(pos))
	}
	var keys []string
	for k := range tb.Live {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d commits, live files: %d", tb.Commits, len(keys))
}

// TestTablesSpreadOverAgents: two agents that materialize share four
// tables two and two, and every table is kept.
func TestTablesSpreadOverAgents(t *testing.T) {
	b := fileBucket(t)
	a1 := startAgent(t, b, Config{Workers: true})
	a2 := startAgent(t, b, Config{Workers: true})
	a1.createTopic(t, "orders", 1)
	ctx := context.Background()
	for i := range 4 {
		if _, err := a1.tables.Create(ctx, CreateRequest{Name: fmt.Sprintf("t%d", i), Topic: "orders"}); err != nil {
			t.Fatal(err)
		}
	}
	a1.produce(t, "orders", 0, "x", "y")
	deadline := time.Now().Add(30 * time.Second)
	for {
		a1.set.Log().Sync(ctx)
		held := map[string]int{}
		for i := range 4 {
			held[a1.set.Log().Lease(leaseName(fmt.Sprintf("t%d", i))).Holder]++
		}
		if held[a1.set.Log().AgentID()] == 2 && held[a2.set.Log().AgentID()] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases held %v", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 4 {
		if tb := a1.waitMaterialized(t, fmt.Sprintf("t%d", i), 20*time.Second); tb.Rows != 2 {
			t.Fatalf("t%d has %d rows", i, tb.Rows)
		}
	}
}
