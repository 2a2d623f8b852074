// Package filebucket is the file backend: a bucket kept in a local
// directory, the default when twoway is given a path.
//
// Each key is a file under the root (key "log/0001" is ROOT/log/0001), so a
// bucket can be inspected, copied and backed up with ordinary tools. The
// backend's own files live under ROOT/.twoway, which no key can name:
//
//	.twoway/tmp/    objects being written, before they are renamed or linked into place
//	.twoway/locks/  per-key lock files, present only while a write holds or awaits them
//
// Writes are crash-safe. New content goes to a temp file on the same file
// system, which is fsynced and then renamed (Put, PutIfMatch) or hard-linked
// (PutIfAbsent) to the key's path, and the directory is fsynced before the
// call returns. A reader sees the old object or the whole new one, never a
// part, and a crash leaves at most an unused temp file, which the next Open
// removes.
//
// Several processes may share one directory. PutIfAbsent rests on link(2),
// which fails if the name exists, so exactly one of any number of racing
// creators wins. PutIfMatch compares versions and renames while holding an
// exclusive flock(2) on the key's lock file; Put and Delete take the same
// lock, so nothing can slip in between the comparison and the rename. flock
// needs a local file system, or a network file system whose locks span the
// machines sharing it.
//
// A directory cannot do everything S3 does, and the file backend says so
// with an error instead of pretending: a key cannot be both an object and a
// prefix of other keys ("a" and "a/b"), since "a" cannot be both a file and
// a directory; a path segment is at most 255 bytes (ErrInvalidKey); and keys
// whose first segment starts with ".twoway" are reserved (ErrInvalidKey). On
// a case-insensitive file system, keys that differ only in case are one
// object.
package filebucket

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twoway/twoway/bucket"
)

// internalDir is the root's subdirectory for the backend's own files. Keys
// whose first segment starts with it are reserved, so that no key can reach
// it and List never shows it.
const internalDir = ".twoway"

// maxSegment is the longest file name common file systems accept
// (NAME_MAX). Longer key segments are ErrInvalidKey rather than an obscure
// ENAMETOOLONG.
const maxSegment = 255

// installAttempts bounds how often a write re-creates the key's directories
// when a concurrent Delete removes them as empty just before the rename.
const installAttempts = 100

// Bucket is a bucket kept in a local directory. It is safe for concurrent
// use by many goroutines and by many processes sharing the directory.
type Bucket struct {
	root  string // absolute and clean
	url   string // String()
	tmp   string // root/.twoway/tmp
	locks string // root/.twoway/locks

	// spare holds one temp file created ahead of need, unnamed (O_TMPFILE,
	// on Linux): creating a file costs as much as an fsync on some disks,
	// and a commit should not wait for it. A write names it (a link, tens
	// of microseconds) and goes on as with any temp file. Having no name,
	// it is invisible in the directory and vanishes with the process.
	spare     chan *os.File
	refilling atomic.Bool
}

var _ bucket.Bucket = (*Bucket)(nil)

// Open opens the bucket kept in directory root, creating the directory if it
// is missing, and checks that it can write there. It removes temp files that
// crashed writers left behind.
func Open(root string) (*Bucket, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("bucket directory %s: %w", root, err)
	}
	b := &Bucket{
		root:  abs,
		url:   "file://" + filepath.ToSlash(abs),
		tmp:   filepath.Join(abs, internalDir, "tmp"),
		locks: filepath.Join(abs, internalDir, "locks"),
		spare: make(chan *os.File, 1),
	}
	switch fi, err := os.Stat(abs); {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("bucket directory %s is not a directory", abs)
	case notExist(err):
		if err := os.MkdirAll(abs, 0o777); err != nil {
			return nil, fmt.Errorf("bucket directory %s cannot be created: %w", abs, cause(err))
		}
	case err != nil:
		return nil, fmt.Errorf("bucket directory %s is not usable: %w", abs, cause(err))
	}
	unwritable := func(err error) error {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("bucket directory %s is not writable: %w", abs, cause(err))
		}
		return fmt.Errorf("bucket directory %s is not usable: %w", abs, err)
	}
	for _, dir := range []string{b.tmp, b.locks} {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, unwritable(err)
		}
	}
	// Directories can exist yet refuse new files (read-only mounts,
	// permissions changed later): prove that a write can start and can
	// link into the root, under a reserved name that List never shows.
	t, err := b.createTemp()
	if err != nil {
		return nil, unwritable(err)
	}
	probe := filepath.Join(abs, internalDir+"-probe-"+rand.Text())
	err = os.Link(t.name, probe)
	t.discard()
	if err != nil {
		return nil, unwritable(err)
	}
	os.Remove(probe)
	b.removeStaleTemps()
	return b, nil
}

// cause strips the path from a *fs.PathError: the messages above name the
// directory already.
func cause(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// String returns the bucket's URL, file:///absolute/path.
func (b *Bucket) String() string { return b.url }

func (b *Bucket) fail(op, key string, err error) error {
	return &bucket.OpError{Bucket: b.url, Op: op, Key: key, Err: err}
}

// path is the file that holds key.
func (b *Bucket) path(key string) string {
	return filepath.Join(b.root, filepath.FromSlash(key))
}

// validateKey reports whether this backend accepts key: bucket.ValidateKey,
// and in addition no segment longer than 255 bytes and no first segment
// starting with ".twoway". The error wraps bucket.ErrInvalidKey.
func validateKey(key string) error {
	if err := bucket.ValidateKey(key); err != nil {
		return err
	}
	first, _, _ := strings.Cut(key, "/")
	if strings.HasPrefix(first, internalDir) {
		return fmt.Errorf("%w %q: keys starting with %q are reserved for the file backend's own files", bucket.ErrInvalidKey, key, internalDir)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if len(seg) > maxSegment {
			return fmt.Errorf("%w %q: path segment longer than %d bytes, the file backend's limit", bucket.ErrInvalidKey, key, maxSegment)
		}
	}
	return nil
}

func (b *Bucket) check(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return validateKey(key)
}

// notExist reports whether err means there is no file at a path: ENOENT, or
// ENOTDIR because an ancestor is a file (key "a/b" when "a" is an object).
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// version identifies the stored object fi describes: its inode number,
// modification time in nanoseconds and size, in hex.
//
// Every write makes a new file, so a replacement has a different inode from
// the object it replaces (both exist until the rename). An inode number can
// be recycled once the old file is gone, so writes also stamp the file's
// mtime with the clock's nanoseconds, raised above the mtime of the object
// being replaced if need be (see stampAfter): a recycled inode comes back
// with a later mtime, so a version the key had before does not recur. All
// three survive restarts. Copying the directory changes inodes and so
// versions, which only makes a PutIfMatch with an old version fail.
func version(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return strconv.FormatUint(ino, 16) + "-" +
		strconv.FormatUint(uint64(fi.ModTime().UnixNano()), 16) + "-" +
		strconv.FormatUint(uint64(fi.Size()), 16)
}

func info(key string, fi fs.FileInfo) bucket.Info {
	return bucket.Info{Key: key, Size: fi.Size(), Version: version(fi), Modified: fi.ModTime()}
}

// statObject returns the Info of the object at key. A directory (the key is
// only a prefix of other keys) is no object.
func (b *Bucket) statObject(key string) (fs.FileInfo, error) {
	fi, err := os.Stat(b.path(key))
	if err != nil {
		if notExist(err) {
			return nil, bucket.ErrNotFound
		}
		return nil, err
	}
	if fi.IsDir() {
		return nil, bucket.ErrNotFound
	}
	return fi, nil
}

// openObject opens the object at key for reading.
func (b *Bucket) openObject(key string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(b.path(key))
	if err != nil {
		if notExist(err) {
			return nil, nil, bucket.ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, nil, bucket.ErrNotFound
	}
	return f, fi, nil
}

// Get opens the object for reading. The reader is the open file, so it keeps
// reading the version it opened even if the key is replaced or deleted.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, bucket.Info, error) {
	const op = "get"
	if err := b.check(ctx, key); err != nil {
		return nil, bucket.Info{}, b.fail(op, key, err)
	}
	f, fi, err := b.openObject(key)
	if err != nil {
		return nil, bucket.Info{}, b.fail(op, key, err)
	}
	return f, info(key, fi), nil
}

// GetRange reads length bytes of the object from offset, as bucket.Bucket
// says.
func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	const op = "get-range"
	if err := b.check(ctx, key); err != nil {
		return nil, b.fail(op, key, err)
	}
	if offset < 0 {
		return nil, b.fail(op, key, fmt.Errorf("%w: negative offset %d", bucket.ErrInvalidRange, offset))
	}
	f, fi, err := b.openObject(key)
	if err != nil {
		return nil, b.fail(op, key, err)
	}
	defer f.Close()
	size := fi.Size()
	if offset > size {
		return nil, b.fail(op, key, fmt.Errorf("%w: offset %d is past the end of the %d-byte object", bucket.ErrInvalidRange, offset, size))
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return nil, b.fail(op, key, err)
	}
	return buf, nil
}

// Stat returns the object's Info.
func (b *Bucket) Stat(ctx context.Context, key string) (bucket.Info, error) {
	const op = "stat"
	if err := b.check(ctx, key); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	fi, err := b.statObject(key)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	return info(key, fi), nil
}

// Put creates or replaces key: temp file, fsync, rename over the key's path
// under the key's lock, fsync of the directory.
func (b *Bucket) Put(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	const op = "put"
	if err := b.check(ctx, key); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	t, err := b.writeTemp(ctx, body, size)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	defer t.discard()
	unlock, err := b.lockKey(key)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	defer unlock()
	cur, err := b.statObject(key)
	if err != nil && !errors.Is(err, bucket.ErrNotFound) {
		return bucket.Info{}, b.fail(op, key, err)
	}
	if err := t.stampAfter(cur); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	if err := b.install(key, t, false); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	return info(key, t.fi), nil
}

// PutIfAbsent creates key only if it does not exist: temp file, fsync, then
// link(2) to the key's path, which fails if anything has that name, so of
// racing callers in any number of processes exactly one succeeds.
func (b *Bucket) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	const op = "put-if-absent"
	if err := b.check(ctx, key); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	// Losing is common (that is how the commit log finds its place), so do
	// not upload a body that cannot win. The link below decides.
	if _, err := b.statObject(key); err == nil {
		return bucket.Info{}, b.fail(op, key, fmt.Errorf("%w: the object exists", bucket.ErrPrecondition))
	}
	t, err := b.writeTemp(ctx, body, size)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	defer t.discard()
	err = b.install(key, t, true)
	if errors.Is(err, fs.ErrExist) {
		if _, serr := b.statObject(key); serr == nil {
			err = fmt.Errorf("%w: the object exists", bucket.ErrPrecondition)
		}
	}
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	return info(key, t.fi), nil
}

// PutIfMatch replaces key only if its version is version. The comparison
// and the rename happen under the key's lock.
func (b *Bucket) PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (bucket.Info, error) {
	const op = "put-if-match"
	if err := b.check(ctx, key); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	// Checked again under the lock; this only spares uploading a body
	// that has already lost.
	cur, err := b.statObject(key)
	if err := checkVersion(cur, err, version); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	t, err := b.writeTemp(ctx, body, size)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	defer t.discard()
	unlock, err := b.lockKey(key)
	if err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	defer unlock()
	cur, err = b.statObject(key)
	if err := checkVersion(cur, err, version); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	if err := t.stampAfter(cur); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	if err := b.install(key, t, false); err != nil {
		return bucket.Info{}, b.fail(op, key, err)
	}
	return info(key, t.fi), nil
}

// checkVersion checks a PutIfMatch version against the object statObject
// found (or the error it returned).
func checkVersion(cur fs.FileInfo, err error, want string) error {
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return fmt.Errorf("%w: the object does not exist", bucket.ErrPrecondition)
	case err != nil:
		return err
	case version(cur) != want:
		return fmt.Errorf("%w: the object's version is %s, not %q", bucket.ErrPrecondition, version(cur), want)
	}
	return nil
}

// Delete removes key, if it exists, and then the directories above it that
// it leaves empty.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	const op = "delete"
	if err := b.check(ctx, key); err != nil {
		return b.fail(op, key, err)
	}
	unlock, err := b.lockKey(key)
	if err != nil {
		return b.fail(op, key, err)
	}
	defer unlock()
	path := b.path(key)
	fi, err := os.Lstat(path)
	switch {
	case err != nil && notExist(err):
		return nil
	case err != nil:
		return b.fail(op, key, err)
	case fi.IsDir():
		return nil // only a prefix of other keys; no object
	}
	// Not os.Remove, which falls back to rmdir.
	if err := syscall.Unlink(path); err != nil {
		if notExist(err) {
			return nil
		}
		return b.fail(op, key, &fs.PathError{Op: "unlink", Path: path, Err: err})
	}
	// A concurrent Delete of a sibling may have removed the directory
	// already, and with it the name.
	if err := syncDir(filepath.Dir(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return b.fail(op, key, err)
	}
	// Empty directories would pile up under keys that come and go (chunks
	// collected as garbage). A concurrent write that loses its directory
	// this way re-creates it (see install).
	for dir := filepath.Dir(path); dir != b.root && strings.HasPrefix(dir, b.root); dir = filepath.Dir(dir) {
		if syscall.Rmdir(dir) != nil {
			break
		}
	}
	return nil
}

// install gives the temp file t the key's name, creating missing
// directories, and makes the new name durable. It renames t over whatever
// the key holds, or with link it hard-links t to the key's path, which fails
// if the path exists. Either way t's own name is gone when install succeeds.
func (b *Bucket) install(key string, t *tempFile, link bool) error {
	place := os.Rename
	if link {
		place = os.Link
	}
	path := b.path(key)
	for attempt := 1; ; attempt++ {
		err := place(t.name, path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == installAttempts {
			return conflict(key, err)
		}
		// A missing directory, possibly removed by a concurrent Delete
		// between mkdirs and place: create it (again) and retry.
		if err := b.mkdirs(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return conflict(key, err)
		}
	}
	if link {
		// The object is in place; a leftover temp name would only be a
		// second link to it, removed by the next Open.
		os.Remove(t.name)
	}
	t.gone = true
	return syncDir(filepath.Dir(path))
}

// conflict explains the errors a rename, link or mkdir gets when a key
// collides with a directory or a file that holds other keys.
func conflict(key string, err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("key %q collides with other keys: a file bucket cannot hold both an object and keys under it as a directory (%w)", key, err)
	}
	return err
}

// mkdirs creates the directories above key's file, fsyncing the parent of
// each one it creates, so that the object's path survives a crash along
// with the object.
func (b *Bucket) mkdirs(key string) error {
	segs := strings.Split(key, "/")
	dir := b.root
	var created []string
	for _, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		err := os.Mkdir(dir, 0o777)
		switch {
		case err == nil:
			created = append(created, dir)
		case errors.Is(err, fs.ErrExist):
			// A directory, or a file that the rename will trip over.
		default:
			return err
		}
	}
	for _, dir := range created {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory, making the names created in or removed from it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockKey takes the exclusive lock that serializes Put, PutIfMatch and
// Delete of key across goroutines and processes, and returns its release.
//
// Lock files come and go: the release removes the file while still holding
// the lock, so the locks directory stays empty at rest. A waiter may thus
// wake up holding a file that is no longer the lock file; it checks, after
// locking, that the name still leads to the file it locked, and otherwise
// starts over.
//
// The wait does not heed a context: holders keep the lock only for a stat,
// a rename and an fsync of a directory, never while a body uploads.
func (b *Bucket) lockKey(key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	name := filepath.Join(b.locks, hex.EncodeToString(sum[:]))
	for {
		f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE, 0o666)
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		now, err := os.Stat(name)
		if err == nil && os.SameFile(held, now) {
			return func() {
				os.Remove(name)
				f.Close()
			}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
}

// flock applies or removes a flock(2) lock, retrying when a signal
// interrupts the wait.
func flock(f *os.File, how int) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = conn.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if ferr != nil {
		return &fs.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
	return nil
}

// A tempFile is an object being written, in root/.twoway/tmp. Its writer
// holds an exclusive flock on it from creation to close, which is how Open
// tells the leftovers of a crashed writer (unlocked) from a live writer's
// file in another process (locked).
type tempFile struct {
	f    *os.File
	name string
	fi   fs.FileInfo // after the last stamp: what the object's Info will say
	gone bool        // the name has been removed or renamed away
}

// createTemp creates and locks a new temp file.
func (b *Bucket) createTemp() (*tempFile, error) {
	for {
		name := filepath.Join(b.tmp, rand.Text())
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			os.Remove(name)
			return nil, err
		}
		// Between our open and our flock, an Open in another process may
		// have found the file unlocked, judged it a crashed writer's and
		// unlinked it. Then start again under a new name.
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			os.Remove(name)
			return nil, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
			f.Close()
			continue
		}
		return &tempFile{f: f, name: name}, nil
	}
}

// takeTemp returns the spare temp file, named, or a new one, and has the
// spare replaced in the background.
func (b *Bucket) takeTemp() (*tempFile, error) {
	defer b.refill()
	select {
	case f := <-b.spare:
		name := filepath.Join(b.tmp, rand.Text())
		if err := nameTemp(f, name); err == nil {
			return &tempFile{f: f, name: name}, nil
		}
		f.Close() // the directory went away, or /proc is missing
	default:
	}
	return b.createTemp()
}

// refill makes a spare unless one exists or is being made.
func (b *Bucket) refill() {
	if len(b.spare) > 0 || !b.refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.refilling.Store(false)
		f, err := unnamedTemp(b.tmp)
		if err != nil {
			return // no O_TMPFILE here: writes create their own
		}
		select {
		case b.spare <- f:
		default:
			f.Close()
		}
	}()
}

// discard closes the temp file and removes its name if it still has one.
func (t *tempFile) discard() {
	if !t.gone {
		os.Remove(t.name)
		t.gone = true
	}
	t.f.Close()
}

// copyBuffers hold the chunks of a body on its way to a temp file: objects
// are streamed, never held in memory whole.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// writeTemp streams exactly size bytes of body into a new temp file, stamps
// its mtime and fsyncs it. On error nothing is left behind.
func (b *Bucket) writeTemp(ctx context.Context, body io.Reader, size int64) (_ *tempFile, err error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	if body == nil {
		body = strings.NewReader("")
	}
	t, err := b.takeTemp()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.discard()
		}
	}()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Ask for one byte more than promised, to notice a body that is
		// too long.
		want := min(int64(len(buf)), size-n+1)
		m, rerr := body.Read(buf[:want])
		if m > 0 {
			n += int64(m)
			if n > size {
				return nil, fmt.Errorf("body is longer than the given size %d", size)
			}
			if _, err := t.f.Write(buf[:m]); err != nil {
				return nil, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("reading body: %w", rerr)
		}
	}
	if n < size {
		return nil, fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err := t.stamp(time.Now()); err != nil {
		return nil, err
	}
	return t, nil
}

// stamp sets the temp file's mtime, fsyncs it and records what was stored
// (file systems may round the time).
func (t *tempFile) stamp(mtime time.Time) error {
	if err := os.Chtimes(t.name, time.Time{}, mtime); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return err
	}
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	t.fi = fi
	return nil
}

// stampAfter makes the temp file's mtime later than that of cur, the object
// it is about to replace (nil if none), in case the clock stepped back or
// the file system keeps coarse times. See version.
func (t *tempFile) stampAfter(cur fs.FileInfo) error {
	if cur == nil {
		return nil
	}
	for _, step := range []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, time.Second, 2 * time.Second} {
		if t.fi.ModTime().After(cur.ModTime()) {
			return nil
		}
		if err := t.stamp(cur.ModTime().Add(step)); err != nil {
			return err
		}
	}
	if t.fi.ModTime().After(cur.ModTime()) {
		return nil
	}
	return errors.New("cannot give the new object a modification time later than the current one's")
}

// removeStaleTemps removes the temp files of writers that crashed: those
// nobody holds a lock on. A live writer, in this process or another, holds
// its temp file's lock until it is done with it.
func (b *Bucket) removeStaleTemps() {
	entries, err := os.ReadDir(b.tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := filepath.Join(b.tmp, e.Name())
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		if flock(f, syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.Remove(name)
		}
		f.Close()
	}
}
