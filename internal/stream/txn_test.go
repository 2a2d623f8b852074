package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/twoway/twoway/internal/commitlog"
	"github.com/twoway/twoway/internal/records"
)

// txnEntries is a history of two transactional ids: a commit over two
// partitions, an abort by fencing (a second InitProducerId), a fenced
// zombie's end, a timeout abort, and a transaction left open.
func txnEntries(t *testing.T) []commitlog.Entry {
	t.Helper()
	ref := func(n int) commitlog.Ref { return commitlog.Ref{Key: fmt.Sprintf("chunks/%d", n), Len: 80} }
	create, _ := json.Marshal(createEntry{TopicConfig: TopicConfig{Name: "t", Partitions: 2, RetentionMs: -1, RetentionBytes: -1}})
	produce := func(p int32, pid int64, epoch int16, seq int32, n int64, txn bool, r int) commitlog.Entry {
		pe := produceEntry{Topic: "t", Partition: p, Count: n, PID: pid, Epoch: epoch, FirstSeq: seq, LastSeq: seq + int32(n) - 1, Txn: txn, AppendMs: 1000}
		if pid < 0 {
			pe.PID = 0
		}
		data, _ := json.Marshal(pe)
		return commitlog.Entry{Type: TypeProduce, Data: data, Ref: ref(r)}
	}
	withRef := func(e commitlog.Entry, r int) commitlog.Entry { e.Ref, e.Blob = ref(r), nil; return e }
	marker := records.EncodeControl(1, 0, true, 0, 5)
	return []commitlog.Entry{
		{Type: TypeCreateTopic, Data: create},                                                  // 1
		withRef(TxnInitEntry("a", 60000, 1000, 0, 0, marker), 100),                             // 2: a gets pid 1
		produce(0, 1, 0, 0, 3, true, 1),                                                        // 3: a's txn, p0 offsets 0-2
		produce(1, 1, 0, 0, 2, true, 2),                                                        // 4: p1 offsets 0-1
		produce(0, -1, 0, 0, 1, false, 3),                                                      // 5: plain, p0 offset 3
		withRef(TxnEndEntry("a", 1, 0, true, 2000, 3, marker), 101),                            // 6: commit (rev: begun at 3)
		withRef(TxnInitEntry("b", 60000, 2000, 0, 0, marker), 102),                             // 7: b gets pid 2
		produce(0, 2, 0, 0, 2, true, 4),                                                        // 8: b's txn on p0
		withRef(TxnInitEntry("b", 60000, 3000, 0, 0, marker), 103),                             // 9: fences b's epoch 0, aborts
		withRef(TxnEndEntry("b", 2, 0, true, 3000, 8, marker), 104),                            // 10: the zombie's commit: fenced
		produce(1, 2, 0, 2, 1, true, 5),                                                        // 11: the zombie's batch: refused
		produce(1, 2, 1, 0, 1, true, 6),                                                        // 12: b at epoch 1 on p1
		withRef(TxnTimeoutEntry(Txn{ID: "b", PID: 2, Epoch: 1, Begun: 12}, 9000, marker), 105), // 13: timed out
		produce(1, 1, 0, 2, 4, true, 7),                                                        // 14: a's next txn, left open
		withRef(TxnInitEntry("b", 60000, 9500, 2, 0, marker), 106),                             // 15: a zombie of epoch 0 re-initialising: fenced
		withRef(TxnInitEntry("b", 60000, 9600, 2, 1, marker), 107),                             // 16: the producer the timeout fenced: epoch 3 (KIP-588)
	}
}

func TestTxnApply(t *testing.T) {
	entries := txnEntries(t)
	s := newState()
	res := applyAll(s, entries, 0)
	for i, want := range map[int]error{9: ErrProducerFenced, 10: ErrInvalidProducerEpoch, 14: ErrProducerFenced} {
		if err, _ := res[i].(error); !errors.Is(err, want) {
			t.Errorf("entry %d: %v, want %v", i+1, res[i], want)
		}
	}
	for i, r := range res {
		if err, ok := r.(error); ok && i != 9 && i != 10 && i != 14 {
			t.Errorf("entry %d: %v", i+1, err)
		}
	}
	p0, _ := s.partition("t", 0)
	p1, _ := s.partition("t", 1)
	top := s.topics["t"]
	// p0: a's 0-2, plain 3, a's commit marker 4, b's 5-6, b's abort marker 7.
	// p1: a's 0-1, commit marker 2, b's epoch-1 batch 3, its abort marker 4,
	// a's open batch 5-8.
	if p0.End != 8 || p1.End != 9 {
		t.Fatalf("ends %d, %d; want 8, 9", p0.End, p1.End)
	}
	if lso := s.lastStable("t", top, 0, p0); lso != 8 {
		t.Errorf("p0 last stable offset %d, want 8", lso)
	}
	if lso := s.lastStable("t", top, 1, p1); lso != 5 {
		t.Errorf("p1 last stable offset %d, want 5 (a's open transaction)", lso)
	}
	ab0 := s.txn.parts[txnPartKey{"t", top.ID, 0}].Aborted
	ab1 := s.txn.parts[txnPartKey{"t", top.ID, 1}].Aborted
	if want := []AbortedTxn{{PID: 2, First: 5, Last: 7}}; fmt.Sprint(ab0) != fmt.Sprint(want) {
		t.Errorf("p0 aborted %v, want %v", ab0, want)
	}
	if want := []AbortedTxn{{PID: 2, First: 3, Last: 4}}; fmt.Sprint(ab1) != fmt.Sprint(want) {
		t.Errorf("p1 aborted %v, want %v", ab1, want)
	}
	if b := s.txn.ids["b"]; b.Epoch != 3 || b.State != TxnCompleteAbort || s.producers[2] != 3 || b.TimedOut {
		t.Errorf("b after its timeout and re-initialisation: %+v (producer epoch %d)", b, s.producers[2])
	}
	if a := s.txn.ids["a"]; a.State != TxnOngoing || len(a.Partitions) != 1 || a.StartMs != 1000 {
		t.Errorf("a: %+v", a)
	}

	// Every prefix snapshots and restores (both encodings) to the same
	// state, which then applies the rest alike.
	for cut := range len(entries) + 1 {
		ref := newState()
		applyAll(ref, entries[:cut], 0)
		want, _ := ref.capture().encodeJSON()
		ref.UseFeatures(allEnabled)
		bin, err := ref.Snapshot()()
		if err != nil || bin[0] == '{' {
			t.Fatalf("cut %d: binary snapshot: %v (%q...)", cut, err, bin[:min(len(bin), 8)])
		}
		for name, enc := range map[string][]byte{"json": want, "binary": bin} {
			r := newState()
			if err := r.Restore(enc); err != nil {
				t.Fatalf("cut %d: restore %s: %v", cut, name, err)
			}
			if back, _ := r.capture().encodeJSON(); !bytes.Equal(back, want) {
				t.Fatalf("cut %d: %s round trip differs:\n%s\n%s", cut, name, back, want)
			}
			rest := applyAll(r, entries, cut)
			again := applyAll(newStateAt(entries, cut), entries, cut)
			if fmt.Sprint(rest) != fmt.Sprint(again) {
				t.Fatalf("cut %d: %s: the restored state applies differently:\n%v\n%v", cut, name, rest, again)
			}
			if a, b := r.txn.encode(), s.txn.encode(); !bytes.Equal(a, b) {
				t.Fatalf("cut %d: %s: final transaction state differs:\n%s\n%s", cut, name, a, b)
			}
		}
	}
}
