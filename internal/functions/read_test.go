package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A guest granted read:TOPIC reads that topic's committed records; one
// granted another topic is denied; one granted none cannot be deployed.
func TestReadCapability(t *testing.T) {
	a := startAgent(t, fileBucket(t), Config{})
	a.createTopic(t, "events", 1)
	a.createTopic(t, "other", 1)
	for i := range 3 {
		a.produce(t, "events", "k", fmt.Sprintf("e%d", i))
	}
	ctx := context.Background()
	wasm := buildGo(t, "internal/functions/testdata/reader")
	if _, err := a.fns.Deploy(ctx, DeployRequest{Name: "reader", Module: wasm, Grants: []string{"read:events"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := a.fns.Invoke(ctx, "reader", "", false, "", []byte("events"))
	if err != nil || string(resp.Body) != "3\n0=e0\n1=e1\n2=e2" {
		t.Fatalf("read events: %q %v", resp.Body, err)
	}
	if resp, err := a.fns.Invoke(ctx, "reader", "", false, "", []byte("other")); err != nil || string(resp.Body) != "denied" {
		t.Fatalf("read a topic not granted: %q %v", resp.Body, err)
	}
	_, err = a.fns.Deploy(ctx, DeployRequest{Name: "reader2", Module: wasm})
	if !errors.Is(err, ErrNotGranted) || !strings.Contains(err.Error(), "twoway_v1.read") || !strings.Contains(err.Error(), "read:TOPIC") {
		t.Fatalf("deploy without read: %v", err)
	}
	if _, err := a.fns.Deploy(ctx, DeployRequest{Name: "reader3", Module: wasm, Grants: []string{"read:nosuch"}}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("deploy with read of a missing topic: %v", err)
	}
}
