package stream

import (
	"testing"

	"github.com/twoway/twoway/internal/records"
)

// TestTxnViewCommitted: the read_committed rule record by record.
func TestTxnViewCommitted(t *testing.T) {
	const txnAttr, ctrlAttr = 0x10, 0x20
	v := TxnView{LastStable: 20, Aborted: []AbortedTxn{{PID: 7, First: 5, Last: 9}, {PID: 8, First: 12, Last: 14}}}
	for _, c := range []struct {
		name   string
		m      records.BatchMeta
		offset int64
		want   bool
	}{
		{"plain record", records.BatchMeta{ProducerID: -1}, 6, true},
		{"idempotent record of an aborted pid, not transactional", records.BatchMeta{ProducerID: 7}, 6, true},
		{"aborted: first offset", records.BatchMeta{ProducerID: 7, Attributes: txnAttr}, 5, false},
		{"aborted: inside", records.BatchMeta{ProducerID: 7, Attributes: txnAttr}, 8, false},
		{"aborted: the marker", records.BatchMeta{ProducerID: 7, Attributes: txnAttr | ctrlAttr}, 9, false},
		{"same pid, committed later", records.BatchMeta{ProducerID: 7, Attributes: txnAttr}, 10, true},
		{"same pid, before its aborted range", records.BatchMeta{ProducerID: 7, Attributes: txnAttr}, 4, true},
		{"other pid inside the range", records.BatchMeta{ProducerID: 9, Attributes: txnAttr}, 8, true},
		{"second aborted range", records.BatchMeta{ProducerID: 8, Attributes: txnAttr}, 13, false},
		{"commit marker", records.BatchMeta{ProducerID: 9, Attributes: txnAttr | ctrlAttr}, 11, false},
		{"just below the last stable offset", records.BatchMeta{ProducerID: 9, Attributes: txnAttr}, 19, true},
		{"at the last stable offset", records.BatchMeta{ProducerID: -1}, 20, false},
		{"above it", records.BatchMeta{ProducerID: -1}, 25, false},
	} {
		if got := v.Committed(c.m, c.offset); got != c.want {
			t.Errorf("%s (offset %d): Committed = %v, want %v", c.name, c.offset, got, c.want)
		}
	}
}
