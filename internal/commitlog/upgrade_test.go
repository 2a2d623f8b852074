package commitlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

const typeGated uint16 = 95 // a test module's entry type, newer than the fleet

// gated is a test module's Owner whose only entry type is gated.
type gated struct{ n int }

func (g *gated) Name() string             { return "gated" }
func (g *gated) Types() []uint16          { return []uint16{typeGated} }
func (g *gated) GatedTypes() []uint16     { return []uint16{typeGated} }
func (g *gated) Reset()                   { g.n = 0 }
func (g *gated) LiveObjects(func(string)) {}
func (g *gated) Apply(uint64, Entry) any  { g.n++; return nil }
func (g *gated) Snapshot() func() ([]byte, error) {
	b := []byte{byte(g.n)}
	return func() ([]byte, error) { return b, nil }
}
func (g *gated) Restore(b []byte) error {
	g.n = int(b[0])
	return nil
}

// Two builds on one bucket, the older lacking a module: the newer does not
// write the module's entries (which would stop the older) until the older
// has left; then the feature is enabled by a commit and usable. An older
// agent that starts after that stops at the unknown type, as always.
func TestRollingUpgradeEnablesNewTypesOnlyWhenEveryAgentKnowsThem(t *testing.T) {
	b := openFile(t)
	ctx := context.Background()
	opts := testOptions()
	opts.RegisterInterval = 50 * time.Millisecond
	opts.LeaseDuration = 150 * time.Millisecond
	oldOpts := opts
	oldOpts.NoJanitor = true
	old, _ := openLog(t, b, oldOpts)

	rec := newRecorder()
	g := &gated{}
	newer, err := Open(ctx, b, []Owner{rec, g}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	if _, _, err := newer.Propose(ctx, Entry{Type: typeGated}); !errors.Is(err, ErrNotEnabled) || !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("gated entry proposed while an older agent runs: %v", err)
	}
	// Give the newer agent's janitor time to consider enabling it.
	time.Sleep(20 * opts.RegisterInterval)
	if newer.Enabled(typeFeature(typeGated)) {
		t.Fatal("feature enabled while an agent that does not know it is live")
	}
	if _, _, err := old.Propose(ctx, Entry{Type: typeRecord, Data: []byte("old-still-works")}); err != nil {
		t.Fatalf("older agent: %v", err)
	}
	if err := old.Err(); err != nil {
		t.Fatalf("the newer agent stopped the older one: %v", err)
	}

	old.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !newer.Enabled(typeFeature(typeGated)) {
		if time.Now().After(deadline) {
			t.Fatal("feature not enabled after the older agent left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, res, err := newer.Propose(ctx, Entry{Type: typeGated}); err != nil || res[0] != nil {
		t.Fatalf("gated entry after enabling: %v %v", res, err)
	}
	var n int
	newer.View(g, func() { n = g.n })
	if n != 1 {
		t.Fatalf("gated owner applied %d entries, want 1", n)
	}

	// An older build that was offline meets the type and refuses to guess.
	_, err = Open(ctx, b, []Owner{newRecorder()}, oldOpts)
	var unknown *UnknownEntryError
	if !errors.As(err, &unknown) || unknown.Type != typeGated {
		t.Fatalf("older agent opening after the upgrade: %v", err)
	}
}
