package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twoway/twoway/internal/httpapi"
	"github.com/twoway/twoway/internal/kafka"
)

// TestReadIsolation: with franz-go transactional producers writing a
// topic (a transaction committed, one aborted, one open), a read with
// isolation=read_committed returns the committed records only and stops
// at the open transaction until it commits (a long poll there wakes
// then); the default, read_uncommitted, returns every record. Either way
// next_offset moves past transaction markers and skipped records, so a
// reader paging one record at a time sees the same.
func TestReadIsolation(t *testing.T) {
	srv, svc := newAPI(t, fileBucket(t), httpapi.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := svc.Log().EnableFeatures(ctx); err != nil {
		t.Fatal(err)
	}
	ks := kafka.NewServer(kafka.Config{Service: svc, Addr: "127.0.0.1:0", Logger: quietLogger(), TxnLeaseDuration: time.Second})
	if err := ks.Listen(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- ks.Serve(context.Background()) }()
	t.Cleanup(func() { ks.Close(); <-errc })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	must(t, srv, 201, "POST", "/v1/topics", `{"name":"tx"}`)

	producer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(ks.Addr().String()), kgo.TransactionalID(id), kgo.DefaultProduceTopic("tx"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	inTxn := func(cl *kgo.Client, vals ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
	}
	end := func(cl *kgo.Client, commit bool) {
		t.Helper()
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	plain := func(v string) { must(t, srv, 200, "POST", "/v1/topics/tx/records", fmt.Sprintf(`{"value":%q}`, v)) }

	plain("p0")
	p1, p2, p3 := producer("t1"), producer("t2"), producer("t3")
	inTxn(p1, "c1a", "c1b")
	end(p1, true)
	inTxn(p2, "a2a", "a2b")
	end(p2, false)
	plain("p1")
	inTxn(p3, "o3a")
	open := read(t, srv, "/v1/topics/tx/partitions/0/records?offset=latest&isolation=read_uncommitted").NextOffset - 1

	values := func(rb readBody) []string {
		var out []string
		for _, r := range rb.Records {
			out = append(out, *r.Value)
		}
		return out
	}
	// pageAll reads from 0 max records at a time until a read brings
	// nothing, and returns the values and where it stopped.
	pageAll := func(query string, max int) ([]string, readLSO) {
		t.Helper()
		var out []string
		var last readLSO
		for off := int64(0); ; {
			last = readWithLSO(t, srv, fmt.Sprintf("/v1/topics/tx/partitions/0/records?offset=%d&max=%d%s", off, max, query))
			if last.NextOffset == off {
				return out, last
			}
			out = append(out, values(last.readBody)...)
			off = last.NextOffset
		}
	}
	check := func(when, query string, want []string, wantNext int64) {
		t.Helper()
		for _, max := range []int{1000, 1} {
			got, last := pageAll(query, max)
			if !slices.Equal(got, want) || last.NextOffset != wantNext {
				t.Fatalf("%s: reading %q %d at a time: %v next_offset %d; want %v next_offset %d", when, query, max, got, last.NextOffset, want, wantNext)
			}
		}
	}
	hw := open + 1
	check("open transaction", "", []string{"p0", "c1a", "c1b", "a2a", "a2b", "p1", "o3a"}, hw)
	check("open transaction", "&isolation=read_uncommitted", []string{"p0", "c1a", "c1b", "a2a", "a2b", "p1", "o3a"}, hw)
	check("open transaction", "&isolation=read_committed", []string{"p0", "c1a", "c1b", "p1"}, open)
	if rb := readWithLSO(t, srv, "/v1/topics/tx/partitions/0/records?offset=0&isolation=read_committed"); rb.LastStableOffset != open || rb.HighWatermark != hw {
		t.Fatalf("read_committed: last_stable_offset %d high_watermark %d, want %d %d", rb.LastStableOffset, rb.HighWatermark, open, hw)
	}
	// latest is the last stable offset to a read_committed reader.
	if rb := read(t, srv, "/v1/topics/tx/partitions/0/records?offset=latest&isolation=read_committed"); rb.NextOffset != open || len(rb.Records) != 0 {
		t.Fatalf("offset=latest&isolation=read_committed: %+v, want no records and next_offset %d", rb, open)
	}
	// Records after the open transaction wait for it too.
	plain("p2")
	check("open transaction, records after it", "&isolation=read_committed", []string{"p0", "c1a", "c1b", "p1"}, open)

	// A long poll at the last stable offset wakes when the transaction
	// commits.
	got := make(chan readBody, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/v1/topics/tx/partitions/0/records?offset=%d&wait=20s&isolation=read_committed", ts.URL, open))
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		defer resp.Body.Close()
		var rb readBody
		if err := json.NewDecoder(resp.Body).Decode(&rb); err != nil {
			t.Error(err)
		}
		got <- rb
	}()
	end(p3, true)
	select {
	case rb := <-got:
		if v := values(rb); !slices.Equal(v, []string{"o3a", "p2"}) {
			t.Fatalf("the long poll answered %v, want [o3a p2]", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit did not wake the read_committed long poll")
	}
	all := hw + 2 // p2 and the commit marker
	check("all ended", "&isolation=read_committed", []string{"p0", "c1a", "c1b", "p1", "o3a", "p2"}, all)
	check("all ended", "", []string{"p0", "c1a", "c1b", "a2a", "a2b", "p1", "o3a", "p2"}, all)

	// A bad isolation level is refused, naming the parameter.
	r := must(t, srv, 400, "GET", "/v1/topics/tx/partitions/0/records?isolation=committed", "")
	if !strings.Contains(r.body, "isolation") || !strings.Contains(r.body, "read_committed") {
		t.Fatalf("bad isolation: %s", r.body)
	}

	// The client reads the same.
	cl, err := httpapi.NewClient(ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.ReadCommitted(ctx, "tx", 0, 0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, rec := range res.Records {
		vals = append(vals, string(rec.Value))
	}
	if !slices.Equal(vals, []string{"p0", "c1a", "c1b", "p1", "o3a", "p2"}) || res.NextOffset != all || res.LastStableOffset != all {
		t.Fatalf("ReadCommitted: %v next %d last stable %d", vals, res.NextOffset, res.LastStableOffset)
	}
}

type readLSO struct {
	readBody
	LastStableOffset int64 `json:"last_stable_offset"`
}

func readWithLSO(t *testing.T, h http.Handler, path string) readLSO {
	t.Helper()
	r := must(t, h, 200, "GET", path, "")
	var rb readLSO
	if err := json.Unmarshal([]byte(r.body), &rb); err != nil {
		t.Fatal(err)
	}
	return rb
}
