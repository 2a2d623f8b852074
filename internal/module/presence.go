package module

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/twoway/twoway/bucket"
)

// CountPresent is how agents doing a module's background work count each
// other to share it (partitions, tables): it writes agent's presence
// object prefix+agent (its clock in ms, as decimal text), then counts the
// presence objects under prefix refreshed within fresh. Objects an hour
// old are deleted (left by agents that died). Presence is discovery only,
// never part of the log: a stale count costs balance, not correctness.
func CountPresent(ctx context.Context, b bucket.Bucket, prefix, agent string, fresh time.Duration) (int, error) {
	now := time.Now()
	body := []byte(strconv.FormatInt(now.UnixMilli(), 10))
	if _, err := b.Put(ctx, prefix+agent, bytes.NewReader(body), int64(len(body))); err != nil {
		return 0, err
	}
	keys, err := bucket.Keys(ctx, b, prefix, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		data, _, err := bucket.ReadAll(ctx, b, k)
		if err != nil {
			continue
		}
		ms, err := strconv.ParseInt(string(data), 10, 64)
		if err != nil {
			continue
		}
		switch age := now.Sub(time.UnixMilli(ms)); {
		case age <= fresh:
			n++
		case age > time.Hour:
			b.Delete(ctx, k)
		}
	}
	return n, nil
}
