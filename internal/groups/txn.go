package groups

import (
	"encoding/json"
	"fmt"

	"github.com/twoway/twoway/internal/commitlog"
)

// TypeTxnOffsets applies the offsets a committed transaction holds for one
// group (gated). It is only ever proposed in an all-or-none group
// (commitlog.All) whose guard is the transaction's end (stream.TypeTxnEnd):
// the guard decides, on every agent alike, whether the transaction commits
// (the producer's epoch fences zombies), so the entry is not fenced by the
// group coordinator's lease as OffsetCommit is.
const TypeTxnOffsets uint16 = 610

type txnOffsetsEntry struct {
	Group    string         `json:"group"`
	CommitMs int64          `json:"commit_ms"`
	Topics   []TopicOffsets `json:"topics"`
}

// TxnOffsetsEntry is the entry committing a transaction's offsets of group.
func TxnOffsetsEntry(group string, commitMs int64, topics []TopicOffsets) commitlog.Entry {
	return jsonEntry(TypeTxnOffsets, txnOffsetsEntry{Group: group, CommitMs: commitMs, Topics: topics})
}

func (o *Offsets) applyTxnOffsets(e commitlog.Entry) any {
	var en txnOffsetsEntry
	if err := json.Unmarshal(e.Data, &en); err != nil || en.Group == "" {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	g := o.record(en.Group)
	for _, t := range en.Topics {
		if len(t.Partitions) == 0 {
			continue
		}
		if g.Offsets == nil {
			g.Offsets = map[string]map[int32]Committed{}
		}
		parts := g.Offsets[t.Topic]
		if parts == nil {
			parts = map[int32]Committed{}
			g.Offsets[t.Topic] = parts
		}
		for _, p := range t.Partitions {
			parts[p.Partition] = Committed{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata, CommitMs: en.CommitMs}
		}
	}
	return nil
}
