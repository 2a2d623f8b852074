package commitlog

import (
	"context"
	"net"
	"testing"
	"time"
)

// A reader whose polling would take 30 s learns of another agent's commit
// at once from its hint; with hints off it does not.
func TestCommitHintsWakeOtherAgents(t *testing.T) {
	for _, hints := range []bool{true, false} {
		b := openFile(t)
		opts := testOptions()
		opts.PollMin, opts.PollMax = 30*time.Second, 30*time.Second
		opts.RegisterInterval = 50 * time.Millisecond
		opts.NoJanitor = true
		if !hints {
			opts.HintAddr = "off"
		}
		reader, _ := openLog(t, b, opts)
		writer, _ := openLog(t, b, opts)
		// Let both registrations (and peer lists) settle, then let the
		// reader's first poll go by.
		time.Sleep(300 * time.Millisecond)
		seq, _, err := writer.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for reader.Applied() < seq && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		switch {
		case hints && reader.Applied() < seq:
			t.Fatalf("with hints, the reader had not applied commit %d after 2s (applied %d)", seq, reader.Applied())
		case !hints && reader.Applied() >= seq:
			t.Fatal("without hints the reader applied the commit before its poll interval: the test proves nothing")
		}
		if hints && reader.Stats.HintsReceived.Load() == 0 {
			t.Fatal("no hint counted")
		}
	}
}

// Garbage on the hint socket is ignored; the agent keeps working.
func TestMalformedHintsAreIgnored(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.NoJanitor = true
	l, _ := openLog(t, b, opts)
	addr, err := net.ResolveUDPAddr("udp", l.hintAddr())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range [][]byte{nil, []byte("x"), []byte("TWH\x01short"), append([]byte("TWH\x02"), make([]byte, 8)...), make([]byte, 1000)} {
		c.Write(msg)
	}
	time.Sleep(50 * time.Millisecond)
	if n := l.Stats.HintsReceived.Load(); n != 0 {
		t.Fatalf("%d malformed hints counted", n)
	}
	if _, _, err := l.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte("after")}); err != nil {
		t.Fatal(err)
	}
}

// Commits made in a burst are read ahead in parallel from the hinted
// sequence number; a forged hint far ahead costs a few reads and nothing
// else.
func TestHintedReadAheadAndForgedHints(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.PollMin, opts.PollMax = 30*time.Second, 30*time.Second
	opts.RegisterInterval = 50 * time.Millisecond
	opts.NoJanitor = true
	reader, rec := openLog(t, b, opts)
	writer, _ := openLog(t, b, opts)
	time.Sleep(300 * time.Millisecond)

	// A forged hint: nothing is there.
	addr, _ := net.ResolveUDPAddr("udp", reader.hintAddr())
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	forged := make([]byte, hintLen)
	copy(forged, hintMagic)
	forged[len(hintMagic)] = 0x7f // far ahead
	c.Write(forged)
	time.Sleep(100 * time.Millisecond)
	if err := reader.Err(); err != nil {
		t.Fatal(err)
	}

	var last uint64
	for i := range 30 {
		seq, _, err := writer.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte{byte(i)}})
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	deadline := time.Now().Add(3 * time.Second)
	for reader.Applied() < last && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if reader.Applied() < last {
		t.Fatalf("reader applied %d of %d", reader.Applied(), last)
	}
	var n int
	reader.View(rec, func() { n = len(rec.IDs) })
	if n != 30 {
		t.Fatalf("reader holds %d records, want 30", n)
	}
}

// The inline data of the newest commits is served from memory, exactly.
func TestRecentBlobServesInlineDataOfNewCommits(t *testing.T) {
	b := openFile(t)
	opts := testOptions()
	opts.NoJanitor = true
	l, rec := openLog(t, b, opts)
	blob := []byte("the inline payload")
	if _, _, err := l.Propose(context.Background(), Entry{Type: typeRecord, Data: []byte("r"), Blob: blob}); err != nil {
		t.Fatal(err)
	}
	var ref Ref
	l.View(rec, func() { ref = rec.Refs["r"] })
	got, ok := l.RecentBlob(ref)
	if !ok || string(got) != string(blob) || VerifyBlob(ref, got) != nil {
		t.Fatalf("RecentBlob = %q, %v", got, ok)
	}
	bad := ref
	bad.Len = 1 << 20
	if _, ok := l.RecentBlob(bad); ok {
		t.Fatal("a ref past the end of the commit was served")
	}
	if _, ok := l.RecentBlob(Ref{Key: "log/elsewhere", Len: 1}); ok {
		t.Fatal("an unknown object was served")
	}
}
