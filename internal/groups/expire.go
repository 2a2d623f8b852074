package groups

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twoway/twoway/internal/commitlog"
)

// DefaultOffsetsRetention is how long the offsets of a group nobody
// coordinates are kept after its newest commit, as Kafka's
// offsets.retention.minutes (7 days).
const DefaultOffsetsRetention = 7 * 24 * time.Hour

// ExpiryTask is the janitor task that bounds the replicated state unknown
// clients can make grow: it deletes the committed offsets of groups whose
// coordinator lease is released and whose newest commit is older than
// retention (<= 0: DefaultOffsetsRetention), and removes released leases of
// groups that hold no offsets (every FindCoordinator for a new name makes
// one) and, once the fleet knows TypeForgetGroup, the records of groups
// that hold no offsets. The offset and lease entries are fenced: a group taken over again meanwhile keeps
// everything.
func ExpiryTask(o *Offsets, retention time.Duration) commitlog.Task {
	if retention <= 0 {
		retention = DefaultOffsetsRetention
	}
	return commitlog.Task{Name: "group-expiry", Every: time.Minute, Run: func(ctx context.Context, l *commitlog.Log) error {
		return expire(ctx, l, o, retention, time.Now())
	}}
}

func expire(ctx context.Context, l *commitlog.Log, o *Offsets, retention time.Duration, now time.Time) error {
	var entries []commitlog.Entry
	removable := l.Enabled("type:3")
	l.Leases(func(name string, cur commitlog.Lease) {
		group, ok := strings.CutPrefix(name, "group/")
		if !ok || cur.Holder != "" {
			return
		}
		var has bool
		var newest int64
		l.View(o, func() {
			has = o.HasOffsets(group)
			if g := o.groups[group]; g != nil {
				for _, parts := range g.Offsets {
					for _, c := range parts {
						newest = max(newest, c.CommitMs)
					}
				}
			}
		})
		switch {
		case has && now.Sub(time.UnixMilli(newest)) > retention:
			data, _ := json.Marshal(deleteGroupEntry{Group: group, Epoch: cur.Epoch})
			entries = append(entries, commitlog.Entry{Type: TypeDeleteGroup, Data: data})
		case !has && removable:
			entries = append(entries, commitlog.LeaseRemove(name, cur.Epoch))
		}
	})
	// The records of groups without offsets that nobody coordinates.
	if l.Enabled(fmt.Sprintf("type:%d", TypeForgetGroup)) {
		var forget []string
		l.View(o, func() {
			for name, g := range o.groups {
				if g.forgettable() {
					forget = append(forget, name)
				}
			}
		})
		sort.Strings(forget)
		for _, name := range forget {
			if l.Lease(LeaseName(name)).Holder == "" {
				data, _ := json.Marshal(forgetEntry{Group: name})
				entries = append(entries, commitlog.Entry{Type: TypeForgetGroup, Data: data})
			}
		}
	}
	if len(entries) == 0 {
		return nil
	}
	_, _, err := l.Propose(ctx, entries...)
	return err
}
