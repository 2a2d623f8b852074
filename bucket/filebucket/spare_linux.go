//go:build linux

package filebucket

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// unnamedTemp opens a new file in dir that has no name yet (O_TMPFILE),
// flocked as a temp file in use is. Nothing sees it in the directory, and
// a crash leaves nothing behind.
func unnamedTemp(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "")
	if err := flock(f, syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// nameTemp gives an unnamed file the name path (which must not exist).
func nameTemp(f *os.File, path string) error {
	return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}
