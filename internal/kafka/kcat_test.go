package kafka

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kcat (librdkafka) produces and consumes through an agent: another real
// client with its own protocol choices. Skipped where kcat is not installed,
// except under CI=true, where make tools has installed it.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat is not installed; CI=true requires it (make tools installs it)")
		}
		t.Skip("kcat is not installed (make tools installs it)")
	}
	svc := testService(t, testBucket(t))
	addr := testServer(t, svc).Addr().String()
	createTopic(t, testClient(t, addr), "kcat", 2)

	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}

	if meta := run("", "-L"); !strings.Contains(meta, `topic "kcat" with 2 partitions`) {
		t.Fatalf("kcat -L:\n%s", meta)
	}
	var input strings.Builder
	for i := range 20 {
		fmt.Fprintf(&input, "key%d:value %d\n", i, i)
	}
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		run(input.String(), "-P", "-t", "kcat", "-p", "1", "-K:", "-z", codec, "-H", "codec="+codec,
			"-X", "enable.idempotence=true")
	}
	out := run("", "-C", "-t", "kcat", "-p", "1", "-o", "beginning", "-e", "-f", "%o %k=%s %h\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 100 {
		t.Fatalf("kcat consumed %d records, want 100:\n%s", len(lines), out)
	}
	for i, line := range lines {
		codec := []string{"none", "gzip", "snappy", "lz4", "zstd"}[i/20]
		want := fmt.Sprintf("%d key%d=value %d codec=%s", i, i%20, i%20, codec)
		if line != want {
			t.Fatalf("record %d is %q, want %q", i, line, want)
		}
	}
}
