package bench

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twoway/twoway/bucket/bucketurl"
)

func envInt(k string) int { v, _ := strconv.Atoi(os.Getenv(k)); return v }

func TestTryProduce(t *testing.T) {
	u := os.Getenv("TRY_BUCKET")
	if u == "" {
		t.Skip()
	}
	b, err := bucketurl.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := time.ParseDuration(os.Getenv("TRY_DURATION"))
	l, _ := time.ParseDuration(os.Getenv("TRY_LINGER"))
	opts := ProduceOptions{Partitions: envInt("TRY_PARTS"), RecordSize: envInt("TRY_RS"), BatchSize: envInt("TRY_BS"), Producers: envInt("TRY_PROD"), Duration: d}
	opts.Log.Linger = l
	opts.Log.ChunkUploads = envInt("TRY_CU")
	if p, _ := time.ParseDuration(os.Getenv("TRY_POLLMIN")); p > 0 {
		opts.Log.PollMin = p
	}
	res, err := Produce(t.Context(), b, opts)
	out, _ := json.MarshalIndent(res, "", "  ")
	os.Stdout.Write(out)
	if err != nil {
		t.Fatal(err)
	}
}
