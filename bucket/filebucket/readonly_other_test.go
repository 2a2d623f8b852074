//go:build !linux

package filebucket

import (
	"os"
	"testing"
)

// makeReadOnly makes dir refuse new entries until the test ends.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("running as root, which permission bits do not stop")
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
}
