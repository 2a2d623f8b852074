package filebucket

import (
	"context"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/twoway/twoway/bucket"
)

// List yields the objects under prefix that sort after startAfter, in byte
// order of their keys.
//
// Walking directories in name order is not key order: "a.b" < "a/b" < "a0",
// yet the directory "a" holds "a/b". So each directory's entries are sorted
// by the key they start, a directory d as "d/": every key below d begins
// with "d/", and no other entry's key does. The walk only enters the
// directory the prefix names, skips whole subtrees that sort before
// startAfter, and stats only the files it yields. Each directory's matching
// names are held in memory while it is walked.
func (b *Bucket) List(ctx context.Context, prefix, startAfter string) iter.Seq2[bucket.Info, error] {
	return func(yield func(bucket.Info, error) bool) {
		w := &walker{b: b, ctx: ctx, prefix: prefix, startAfter: startAfter, yield: yield}
		if err := ctx.Err(); err != nil {
			w.fail(err)
			return
		}
		if err := bucket.ValidatePrefix(prefix); err != nil {
			w.fail(err)
			return
		}
		dir, namePrefix := "", prefix
		if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
			dir, namePrefix = prefix[:i+1], prefix[i+1:]
		}
		if strings.HasPrefix(dir, internalDir) {
			return // reserved; no keys there
		}
		w.walk(dir, namePrefix)
	}
}

type walker struct {
	b          *Bucket
	ctx        context.Context
	prefix     string
	startAfter string
	yield      func(bucket.Info, error) bool
}

// entry is a directory entry, named by the key it starts: the object's key
// for a file, the common prefix of the keys below it ("a/b/") for a
// directory.
type entry struct {
	key string
	dir bool
}

func (w *walker) fail(err error) bool {
	w.yield(bucket.Info{}, w.b.fail("list", w.prefix, err))
	return false
}

// walk yields the objects below directory dir ("" or "a/b/") whose names
// there start with namePrefix, in key order. It reports whether to go on.
func (w *walker) walk(dir, namePrefix string) bool {
	if err := w.ctx.Err(); err != nil {
		return w.fail(err)
	}
	entries, err := w.readDir(dir, namePrefix)
	if err != nil {
		if notExist(err) {
			return true // nothing there, or removed meanwhile
		}
		return w.fail(err)
	}
	for _, e := range entries {
		if e.dir {
			if !w.walk(e.key, "") {
				return false
			}
			continue
		}
		if err := w.ctx.Err(); err != nil {
			return w.fail(err)
		}
		fi, err := os.Stat(w.b.path(e.key))
		if err != nil {
			if notExist(err) {
				continue // deleted since the directory was read
			}
			return w.fail(err)
		}
		if fi.IsDir() {
			continue // a symbolic link to a directory; not an object
		}
		if !w.yield(info(e.key, fi), nil) {
			return false
		}
	}
	return true
}

// readDir returns the sorted entries of directory dir that can hold keys
// after startAfter.
func (w *walker) readDir(dir, namePrefix string) ([]entry, error) {
	f, err := os.Open(filepath.Join(w.b.root, filepath.FromSlash(dir)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var entries []entry
	for {
		batch, err := f.ReadDir(1024)
		for _, de := range batch {
			name := de.Name()
			if !strings.HasPrefix(name, namePrefix) ||
				dir == "" && strings.HasPrefix(name, internalDir) ||
				// Not something a key can name, so not an object.
				!utf8.ValidString(name) || strings.ContainsRune(name, '\\') {
				continue
			}
			e := entry{key: dir + name, dir: de.IsDir()}
			if e.dir {
				e.key += "/"
				// Every key below starts with e.key. They all sort
				// after startAfter if e.key does; if e.key sorts before
				// it, some may still follow it only when startAfter
				// itself lies below.
				if e.key <= w.startAfter && !strings.HasPrefix(w.startAfter, e.key) {
					continue
				}
			} else if e.key <= w.startAfter || len(e.key) > bucket.MaxKeyLen {
				continue
			}
			entries = append(entries, e)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return entries, nil
}
