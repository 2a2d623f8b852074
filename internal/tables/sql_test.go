//go:build !nosql

package tables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/bucket/bucketurl"
	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/authz"
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
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			url := "file://" + t.TempDir()
			if backend == "s3" {
				url = s3URL(t)
			}
			b, err := bucketurl.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			checkSQL(t, b)
		})
	}
}

func checkSQL(t *testing.T, b bucket.Bucket) {
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

// TestSQLConfined: through the HTTP API, SQL that reaches outside the
// tables, writes, installs or runs too long is refused with a clear error,
// and the agent goes on answering.
func TestSQLConfined(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true, SQLTimeout: 500 * time.Millisecond})
	a.createTopic(t, "orders", 1)
	if _, err := a.tables.Create(context.Background(), CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	a.produce(t, "orders", 0, `{"id": 1, "amount": 3}`)
	a.waitMaterialized(t, "orders", 20*time.Second)
	post := func(q string) (int, map[string]any) {
		body, _ := json.Marshal(SQLBody{SQL: q})
		resp, err := http.Post(a.http.URL+"/v1/sql", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, c := range []struct{ q, code, says string }{
		{"select * from read_csv('/etc/passwd')", CodeSQL, "Permission"},
		{"select * from read_text('/etc/passwd')", CodeSQL, "Permission"},
		{"select * from read_parquet('/etc/*.parquet')", CodeSQL, "Permission"},
		{"copy orders to '/tmp/twoway-stolen.csv'", CodeNotReadOnly, "COPY"},
		{"install httpfs", CodeNotReadOnly, "INSTALL"},
		{"load httpfs", CodeNotReadOnly, "LOAD"},
		{"attach '/tmp/x.db'", CodeNotReadOnly, "ATTACH"},
		{"set enable_external_access = true", CodeNotReadOnly, "SET"},
		{"select 1; drop view orders", CodeNotReadOnly, "statement"},
		{"select count(*) from range(1000000000000) a, range(1000) b", CodeTimeout, "limit"},
		{"selec 1", CodeSQL, "syntax"},
		{"select nope from orders", CodeSQL, "nope"},
	} {
		status, out := post(c.q)
		msg, _ := out["error"].(string)
		if status != http.StatusBadRequest || out["code"] != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %v", c.q, status, out)
		}
	}
	if _, err := os.Stat("/tmp/twoway-stolen.csv"); err == nil {
		t.Fatal("COPY wrote a file")
	}
	// Still serving, with the data intact.
	status, out := post("select sum(amount) from orders")
	if status != http.StatusOK || fmt.Sprint(out["rows"]) != "[[3]]" {
		t.Fatalf("after the refusals: %d %v", status, out)
	}
	// CSV and Arrow by Accept.
	req, _ := http.NewRequest(http.MethodPost, a.http.URL+"/v1/sql", strings.NewReader("select id, amount from orders"))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Accept", MediaCSV)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(csv) != "id,amount\n1,3\n" {
		t.Fatalf("CSV: %q", csv)
	}
	req, _ = http.NewRequest(http.MethodPost, a.http.URL+"/v1/sql", strings.NewReader(`{"sql": "select id from orders"}`))
	req.Header.Set("Accept", MediaArrow)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rdr, err := ipc.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("Arrow answer (%s): %v", resp.Header.Get("Content-Type"), err)
	}
	defer rdr.Release()
	if !rdr.Next() || rdr.RecordBatch().NumRows() != 1 || rdr.Schema().Field(0).Name != "id" {
		t.Fatalf("Arrow answer: %v", rdr.Err())
	}
}

// TestSQLACLs: with ACLs enforced, a query sees only the tables its
// principal may read (others do not exist for it), topic() needs read on
// the topic, and the table routes answer 403.
func TestSQLACLs(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 1)
	ctx := context.Background()
	for _, name := range []string{"orders", "payroll"} {
		if _, err := a.tables.Create(ctx, CreateRequest{Name: name, Topic: "orders", Schema: ordersSchema}); err != nil {
			t.Fatal(err)
		}
	}
	a.produce(t, "orders", 0, `{"id": 1, "amount": 3}`)
	if err := a.users.CreateACLs(ctx, []auth.ACL{{Principal: "User:alice", Resource: auth.ResTable, Name: "orders", Operation: auth.OpRead}}); err != nil {
		t.Fatal(err)
	}
	a.users.SetAuthorization(true, nil)
	alice := authz.With(ctx, "User:alice", "127.0.0.1", a.users)
	res, err := a.tables.Query(alice, "select count(*) from orders")
	if err != nil || fmt.Sprint(res.Rows) != "[[1]]" {
		t.Fatalf("alice reads orders: %v %v", res, err)
	}
	if _, err := a.tables.Query(alice, "select count(*) from payroll"); err == nil || !strings.Contains(err.Error(), "payroll") {
		t.Fatalf("alice reads payroll: %v", err)
	}
	if _, err := a.tables.Query(alice, "select count(*) from topic('orders')"); !errors.Is(err, authz.ErrDenied) {
		t.Fatalf("alice reads the raw topic: %v", err)
	}
	if res, err := a.tables.Query(ctx, "select count(*) from payroll"); err != nil || fmt.Sprint(res.Rows) != "[[1]]" {
		t.Fatalf("without a principal (in process, authorization off for it): %v %v", res, err)
	}
}
