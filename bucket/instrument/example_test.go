package instrument_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twoway/twoway/bucket/filebucket"
	"github.com/twoway/twoway/bucket/instrument"
)

// A benchmark reads the in-process counters before and after its run; the
// same calls are on the registry for /metrics.
func Example() {
	dir, _ := os.MkdirTemp("", "instrument-example-")
	defer os.RemoveAll(dir)
	inner, _ := filebucket.Open(dir)
	ctx := context.Background()

	reg := prometheus.NewRegistry()
	b := instrument.Wrap(inner, reg)
	before := b.Writes()
	for _, key := range []string{"chunks/1", "log/1"} {
		b.PutIfAbsent(ctx, key, strings.NewReader("data"), 4)
	}
	b.PutIfAbsent(ctx, "log/1", strings.NewReader("late"), 4) // loses: precondition

	fmt.Println("writes:", b.Writes()-before)
	fmt.Println("put-if-absent calls:", b.Counts()[instrument.OpPutIfAbsent])
	_, written := b.Bytes()
	fmt.Println("bytes written:", written)
	// Output:
	// writes: 3
	// put-if-absent calls: 3
	// bytes written: 8
}
