package tables

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"
)

// TestRESTCatalog: iceberg-go's own REST catalog client, pointed at
// /iceberg/, lists the tables and reads one: the rows produced.
func TestRESTCatalog(t *testing.T) {
	b := fileBucket(t)
	a := startAgent(t, b, Config{Workers: true})
	a.createTopic(t, "orders", 2)
	ctx := context.Background()
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "orders", Topic: "orders", Schema: ordersSchema}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.tables.Create(ctx, CreateRequest{Name: "raw", Topic: "orders"}); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		var vals []string
		for i := 0; i < 50; i++ {
			vals = append(vals, fmt.Sprintf(`{"id": %d, "amount": 2}`, int(p)*1000+i))
		}
		a.produce(t, "orders", p, vals...)
	}
	a.waitMaterialized(t, "orders", 20*time.Second)
	a.waitMaterialized(t, "raw", 20*time.Second)

	cat, err := rest.NewCatalog(ctx, "twoway", a.http.URL+"/iceberg")
	if err != nil {
		t.Fatal(err)
	}
	nss, err := cat.ListNamespaces(ctx, nil)
	if err != nil || len(nss) != 1 || nss[0][0] != "default" {
		t.Fatalf("namespaces %v, %v", nss, err)
	}
	var names []string
	for id, err := range cat.ListTables(ctx, table.Identifier{"default"}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, id[len(id)-1])
	}
	if fmt.Sprint(names) != "[orders orders_dlq raw raw_dlq]" {
		t.Fatalf("tables %v", names)
	}
	if ok, err := cat.CheckTableExists(ctx, table.Identifier{"default", "nope"}); err != nil || ok {
		t.Fatalf("a missing table exists: %v %v", ok, err)
	}
	for _, name := range []string{"orders", "raw"} {
		tbl, err := cat.LoadTable(ctx, table.Identifier{"default", name})
		if err != nil {
			t.Fatal(err)
		}
		arr, err := tbl.Scan().ToArrowTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if arr.NumRows() != 100 {
			t.Fatalf("%s: %d rows through the REST catalog, want 100", name, arr.NumRows())
		}
		arr.Release()
	}
	// A table with nothing committed loads as an empty table.
	tbl, err := cat.LoadTable(ctx, table.Identifier{"default", "orders_dlq"})
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CurrentSnapshot() != nil {
		t.Fatalf("orders_dlq has a snapshot: %v", tbl.CurrentSnapshot())
	}
}
