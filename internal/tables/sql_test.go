//go:build !nosql

package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// queryRows runs q and returns its rows as JSON values.
func queryRows(t testing.TB, a *agent, q string) [][]any {
	t.Helper()
	res, err := a.tables.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Rows [][]any `json:"rows"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out.Rows
}

// TestSQLSeesEveryRecord: count, sum and max(_offset) per partition equal
// what was produced, right after the last acknowledgement (all of it in
// the fresh tail), and again once it is all materialized (all in files),
// and half way (some in each).
func TestSQLSeesEveryRecord(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 3)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema, CommitInterval: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	produce := func(round int) {
		for p := int32(0); p < 3; p++ {
			var vals []string
			for i := 0; i < 10+int(p); i++ {
				vals = append(vals, fmt.Sprintf(`{"id": %d, "amount": %d, "item": "r%d"}`, round*1000+int(p)*100+i, i, round))
			}
			vals = append(vals, `{"id": "bad"}`)
			a.produce(t, "orders", p, vals...)
		}
	}
	check := func(rounds int, when string) {
		t.Helper()
		rows := queryRows(t, a, `select _partition, count(*), sum(amount), max(_offset) from orders group by _partition order by _partition`)
		if len(rows) != 3 {
			t.Fatalf("%s: %d partitions: %v", when, len(rows), rows)
		}
		for p, r := range rows {
			n := 10 + p
			wantSum := float64(rounds * n * (n - 1) / 2)
			if r[1] != float64(rounds*n) || r[2] != wantSum || r[3] != float64(rounds*(n+1)-2) {
				t.Fatalf("%s: partition %d: count %v sum %v max(_offset) %v; want %d %v %d", when, p, r[1], r[2], r[3], rounds*n, wantSum, rounds*(n+1)-2)
			}
		}
		dl := queryRows(t, a, `select count(*), min(error) from orders_dlq`)
		if dl[0][0] != float64(rounds*3) {
			t.Fatalf("%s: %v dead letters, want %d", when, dl[0][0], rounds*3)
		}
		raw := queryRows(t, a, `select count(*) from topic('orders')`)
		if raw[0][0] != float64(rounds*(10+11+12+3)) {
			t.Fatalf("%s: topic('orders') has %v records", when, raw[0][0])
		}
	}
	produce(0)
	check(1, "all in the tail")
	if tb, _ := a.tables.Get("orders"); tb.Commits != 0 {
		t.Fatalf("committed already (%d): the check did not see the tail alone", tb.Commits)
	}
	a.waitMaterialized(t, "orders", 20*time.Second)
	check(1, "all in files")
	produce(1)
	check(2, "files and tail")
	a.waitMaterialized(t, "orders", 20*time.Second)
	check(2, "all in files again")
}
