package tables

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
)

// TestSchemaEvolution: adding an optional column gives the table a new
// schema id; rows written before read null there, rows after have it.
func TestSchemaEvolution(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 1)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	a.produce(t, "orders", 0, `{"id": 1, "note": "lost: no such column yet"}`, `{"id": 2}`)
	a.waitMaterialized(t, "orders", 20*time.Second)

	next := &Schema{Columns: append(append([]Column{}, ordersSchema.Columns...), Column{Name: "note", Type: "string"},
		Column{Name: "tags", Type: "list<struct<k:string,n:int>>"})}
	// Changing or requiring columns is refused, with the reason.
	for _, bad := range []*Schema{
		{Columns: []Column{{Name: "id", Type: "string", Required: true}}},
		{Columns: append(append([]Column{}, ordersSchema.Columns...), Column{Name: "x", Type: "long", Required: true})},
	} {
		if _, err := a.tables.Alter(ctx, "orders", bad); err == nil || !strings.Contains(err.Error(), "schema change") {
			t.Fatalf("alter to %v: %v", bad.Columns, err)
		}
	}
	if _, err := a.tables.Alter(ctx, "orders", next); err != nil {
		t.Fatal(err)
	}
	a.produce(t, "orders", 0, `{"id": 3, "note": "hello", "tags": [{"k": "a", "n": 1}]}`)
	tb := a.waitMaterialized(t, "orders", 20*time.Second)
	meta, err := loadMetadata(ctx, b, tb.Main.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(meta.Schemas()); n != 2 || meta.CurrentSchema().ID != 1 {
		t.Fatalf("%d schemas, current id %d; want 2 and 1", n, meta.CurrentSchema().ID)
	}
	rows := icebergScan(t, b, tb.Main.Metadata)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	notes := map[string]any{}
	for _, r := range rows {
		notes[fmt.Sprint(r["id"])] = r["note"]
	}
	if notes["1"] != nil || notes["2"] != nil || notes["3"] != "hello" {
		t.Fatalf("notes %v", notes)
	}
}

// TestMaintenance: small files are merged, old snapshots expired, and the
// files no snapshot references any more are deleted by garbage collection,
// while every row stays exactly once.
func TestMaintenance(t *testing.T) {
	b := fileBucket(t)
	opts := testLogOptions()
	opts.Grace = 2 * time.Second
	opts.CheckpointInterval = 200 * time.Millisecond
	a := startAgentLog(t, b, Config{Workers: true, MaintenanceEvery: 300 * time.Millisecond, MinMergeFiles: 2,
		SnapshotsKeep: 1, SnapshotMaxAge: time.Millisecond}, opts)
	a.createTopic(t, "orders", 1)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema, CommitInterval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	const rounds = 6
	for i := range rounds {
		a.produce(t, "orders", 0, fmt.Sprintf(`{"id": %d}`, i), fmt.Sprintf(`{"id": %d}`, 100+i))
		a.waitMaterialized(t, "orders", 20*time.Second)
	}
	// Wait for a merge into one data file, snapshots down to 1, and the
	// unreferenced files gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.set.Log().Sync(ctx)
		tb, _ := a.tables.Get("orders")
		meta, err := loadMetadata(ctx, b, tb.Main.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		files, err := a.tables.dataFiles(ctx, "orders", tb.Main.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := bucket.Keys(ctx, b, "tables/orders/data/", "")
		if err != nil {
			t.Fatal(err)
		}
		all, err := bucket.Keys(ctx, b, "tables/orders/", "")
		if err != nil {
			t.Fatal(err)
		}
		garbage := 0
		for _, k := range all {
			if !tb.Live[k] {
				garbage++
			}
		}
		if len(files) == 1 && len(meta.Snapshots()) == 1 && len(stored) == 1 && garbage == 0 {
			rows := icebergScan(t, b, tb.Main.Metadata)
			if len(rows) != 2*rounds {
				t.Fatalf("%d rows after maintenance, want %d", len(rows), 2*rounds)
			}
			for k := range tb.Live {
				if _, err := b.Stat(ctx, k); err != nil {
					t.Fatalf("live file %s: %v", k, err)
				}
			}
			t.Logf("after maintenance: %d data file, %d snapshots, %d files under the table", len(files), len(meta.Snapshots()), len(all))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not maintained: %d data files in the snapshot, %d stored, %d snapshots, %d unreferenced files", len(files), len(stored), len(meta.Snapshots()), garbage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTableRetention: rows older than the table's retention (by
// _timestamp) are deleted by maintenance; newer ones stay.
func TestTableRetention(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true, MaintenanceEvery: 200 * time.Millisecond})
	a.createTopic(t, "orders", 1)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "bad", Topic: "orders", Retention: time.Millisecond}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a retention of 1ms: %v", err)
	}
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	var recs []records.Record
	for i := range 10 {
		ts := time.Now().UnixMilli()
		if i < 6 {
			ts = old
		}
		recs = append(recs, records.Record{Value: []byte(fmt.Sprintf(`{"id": %d}`, i)), Timestamp: ts})
	}
	if _, errs, err := a.streams.Produce(ctx, "orders", []stream.Batch{{Partition: 0, Records: recs}}); err != nil || errs[0] != nil {
		t.Fatalf("produce: %v %v", err, errs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.set.Log().Sync(ctx)
		tb, _ := a.tables.Get("orders")
		if tb.Main.Metadata != "" {
			if rows := icebergScan(t, b, tb.Main.Metadata); len(rows) == 4 {
				for _, r := range rows {
					if id := fmt.Sprint(r["id"]); id < "6" {
						t.Fatalf("row %s past the retention is still there", id)
					}
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("rows past the retention were not deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
