package bucketcopy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
)

// Difference is one object in which a copy and its source disagree.
type Difference struct {
	Key string
	Why string // "missing from the copy", "differs from the source", ...
}

func (d Difference) String() string { return d.Key + ": " + d.Why }

// Verify compares the copy dst with its source src object by object, byte
// for byte: every object of cs, the copy set of dst (which an agent opened
// on dst computed), must be in both and the same, and carry valid
// checksums. It returns the differences, sorted by key; an error means the
// comparison could not be made.
func Verify(ctx context.Context, src, dst bucket.Bucket, cs commitlog.CopySet, opts Options) ([]Difference, error) {
	opts.fill()
	return compare(ctx, src, dst, cs.Keys, cs.Snapshots, false, opts.Concurrency)
}

// VerifyObjects is Verify for a copy that does not open (a corrupt commit,
// checkpoint or snapshot stops an agent): it compares every object dst
// holds under the prefixes a copy writes with the source's. Objects the
// source no longer has (collected since the copy) cannot be compared and
// are left out.
func VerifyObjects(ctx context.Context, src, dst bucket.Bucket, opts Options) ([]Difference, error) {
	opts.fill()
	var keys []string
	for _, p := range []string{commitlog.LogPrefix, commitlog.CheckpointPrefix, commitlog.SnapshotPrefix, commitlog.ChunkPrefix, modulesPrefix, "tables/"} {
		for info, err := range dst.List(ctx, p, "") {
			if err != nil {
				return nil, fmt.Errorf("list the copy: %w", err)
			}
			if strings.HasSuffix(info.Key, "/version-hint.text") {
				continue // rewritten in place (Put): not part of the log's state
			}
			keys = append(keys, info.Key)
		}
	}
	return compare(ctx, src, dst, keys, nil, true, opts.Concurrency)
}

func compare(ctx context.Context, src, dst bucket.Bucket, keys []string, sums map[string]commitlog.ObjectSum, skipGone bool, conc int) ([]Difference, error) {
	var mu sync.Mutex
	var diffs []Difference
	add := func(key, why string) {
		mu.Lock()
		diffs = append(diffs, Difference{key, why})
		mu.Unlock()
	}
	c := &copier{cs: commitlog.CopySet{Snapshots: sums}}
	err := forEach(ctx, keys, conc, func(ctx context.Context, key string) error {
		b, _, err := bucket.ReadAll(ctx, dst, key)
		if bucket.IsNotFound(err) {
			add(key, "missing from the copy")
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s from the copy: %w", key, err)
		}
		a, _, err := bucket.ReadAll(ctx, src, key)
		switch {
		case bucket.IsNotFound(err) && skipGone:
			return nil
		case bucket.IsNotFound(err):
			add(key, "missing from the source (collected since the copy was made?)")
			return nil
		case err != nil:
			return fmt.Errorf("read %s from the source: %w", key, err)
		}
		if sha256.Sum256(a) != sha256.Sum256(b) {
			add(key, fmt.Sprintf("differs from the source (%d bytes, the source's %d)", len(b), len(a)))
			return nil
		}
		if err := c.check(key, b); err != nil {
			add(key, "corrupt in both: "+err.Error())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Key < diffs[j].Key })
	return diffs, nil
}
