package records

import "testing"

func TestEncodeControl(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := EncodeControl(7, 3, commit, 0, 1700000000000)
		m, err := ParseMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if !m.IsControl() || !m.IsTransactional() || m.ProducerID != 7 || m.ProducerEpoch != 3 || m.NumRecords != 1 || m.Length != len(b) || m.BaseSequence != -1 {
			t.Fatalf("meta %+v", m)
		}
		recs, _, err := Decode(b, nil)
		if err != nil || len(recs) != 1 {
			t.Fatalf("decode: %v %v", recs, err)
		}
		if k := recs[0].Key; len(k) != 4 || k[3] != map[bool]byte{false: 0, true: 1}[commit] {
			t.Fatalf("key %x", k)
		}
	}
}
