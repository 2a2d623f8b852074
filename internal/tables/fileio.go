package tables

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/twoway/twoway/bucket"
)

// bucketIO is iceberg-go's file system over the bucket. Iceberg names
// files by absolute URLs (the table's location is the bucket's URL plus
// tables/NAME); the bucket's own URL is stripped to find the key. Files are
// read whole and written whole: manifests and metadata are small, data
// files are written once from memory.
type bucketIO struct {
	ctx  context.Context
	b    bucket.Bucket
	base string // the bucket's URL with a trailing slash
}

func newBucketIO(ctx context.Context, b bucket.Bucket) *bucketIO {
	return &bucketIO{ctx: ctx, b: b, base: strings.TrimSuffix(b.String(), "/") + "/"}
}

// URL is the absolute location of key.
func (f *bucketIO) URL(key string) string { return f.base + key }

// Key is the bucket key of an absolute location, or an error for a
// location outside the bucket.
func (f *bucketIO) Key(loc string) (string, error) {
	if k, ok := strings.CutPrefix(loc, f.base); ok && k != "" {
		return k, nil
	}
	// "file:/x" and "file:///x" name the same file.
	if strings.HasPrefix(loc, "file:/") && strings.HasPrefix(f.base, "file://") {
		if k, ok := strings.CutPrefix("file://"+strings.TrimPrefix(loc, "file:"), f.base); ok && k != "" {
			return k, nil
		}
	}
	if !strings.Contains(loc, "://") && !strings.HasPrefix(loc, "/") && loc != "" {
		return loc, nil // already a key
	}
	return "", fmt.Errorf("%s is outside the bucket %s", loc, f.base)
}

func (f *bucketIO) pathErr(op, name string, err error) error {
	if bucket.IsNotFound(err) {
		err = fs.ErrNotExist
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (f *bucketIO) ReadFile(name string) ([]byte, error) {
	key, err := f.Key(name)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	data, _, err := bucket.ReadAll(f.ctx, f.b, key)
	if err != nil {
		return nil, f.pathErr("open", name, err)
	}
	return data, nil
}

func (f *bucketIO) Open(name string) (icebergio.File, error) {
	data, err := f.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(data), name: name, size: int64(len(data))}, nil
}

func (f *bucketIO) Remove(name string) error {
	// Iceberg-go removes files it orphaned; garbage collection removes
	// everything no snapshot references, after a grace period that keeps
	// them for readers still on an older snapshot. So nothing is removed
	// here.
	return nil
}

func (f *bucketIO) WriteFile(name string, p []byte) error {
	key, err := f.Key(name)
	if err != nil {
		return f.pathErr("write", name, err)
	}
	if _, err := f.b.Put(f.ctx, key, bytes.NewReader(p), int64(len(p))); err != nil {
		return f.pathErr("write", name, err)
	}
	return nil
}

func (f *bucketIO) Create(name string) (icebergio.FileWriter, error) {
	if _, err := f.Key(name); err != nil {
		return nil, f.pathErr("create", name, err)
	}
	return &memWriter{f: f, name: name}, nil
}

// memFile is a whole object in memory.
type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (m *memFile) Stat() (fs.FileInfo, error) { return memInfo{m}, nil }
func (m *memFile) Close() error               { return nil }

type memInfo struct{ m *memFile }

func (i memInfo) Name() string       { return i.m.name[strings.LastIndex(i.m.name, "/")+1:] }
func (i memInfo) Size() int64        { return i.m.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// memWriter buffers a file and puts it at Close.
type memWriter struct {
	f    *bucketIO
	name string
	buf  bytes.Buffer
	done bool
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memWriter) ReadFrom(r io.Reader) (int64, error) {
	return w.buf.ReadFrom(r)
}

func (w *memWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.f.WriteFile(w.name, w.buf.Bytes())
}
