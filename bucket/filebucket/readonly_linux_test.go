package filebucket

import (
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// makeReadOnly makes dir refuse new entries until the test ends. Permission
// bits do not stop root, so as root it sets the immutable attribute, which
// does.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return
	}
	const (
		getFlags  = 0x80086601 // FS_IOC_GETFLAGS
		setFlags  = 0x40086602 // FS_IOC_SETFLAGS
		immutable = 0x10       // FS_IMMUTABLE_FL
	)
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var flags int
	ioctl := func(req uintptr) syscall.Errno {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, d.Fd(), req, uintptr(unsafe.Pointer(&flags)))
		return errno
	}
	if errno := ioctl(getFlags); errno != 0 {
		t.Skipf("running as root, and %s has no immutable attribute to set: %v", dir, errno)
	}
	flags |= immutable
	if errno := ioctl(setFlags); errno != 0 {
		t.Skipf("running as root, and cannot make %s immutable: %v", dir, errno)
	}
	t.Cleanup(func() {
		d, err := os.Open(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Close()
		flags &^= immutable
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, d.Fd(), setFlags, uintptr(unsafe.Pointer(&flags))); errno != 0 {
			t.Errorf("clearing the immutable attribute of %s: %v", dir, errno)
		}
	})
}
