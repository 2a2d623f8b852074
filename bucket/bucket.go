// Package bucket defines the object-store interface twoway keeps all of its
// state in, and the contract every backend honours.
//
// A bucket is a flat namespace of immutable-until-replaced objects addressed
// by keys. The one primitive the rest of twoway is built on is PutIfAbsent:
// of any number of concurrent callers creating the same key, in any number of
// processes or machines, exactly one succeeds and every other gets
// ErrPrecondition. The commit log, leases and checkpoints all rest on it.
//
// Backends live in their own packages (filebucket, s3bucket); cross-cutting
// behaviour such as metrics, key prefixes, latency and fault injection wraps a
// Bucket rather than living inside a backend.
package bucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Backends wrap them in *OpError; test them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrPrecondition: a conditional write lost. PutIfAbsent found the key
	// already present, or PutIfMatch found a version other than the one given
	// (or no object at all).
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalidKey: the key is not acceptable (see ValidateKey). Nothing was
	// read or written.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidRange: GetRange was asked for a negative offset, or an offset
	// past the end of the object.
	ErrInvalidRange = errors.New("invalid range")
)

// Info describes a stored object.
type Info struct {
	Key  string
	Size int64
	// Version identifies the stored content of the key; PutIfMatch compares
	// against it. It changes whenever the object is replaced, except that two
	// writes of identical bytes may yield the same version (as S3 ETags do).
	// It is stable across restarts of the process and of the backend.
	Version string
	// Modified is the backend's last-modified time. It comes from the
	// store's clock, not ours: use it for coarse ages only, never for order.
	Modified time.Time
}

// Bucket is an object store. All methods are safe for concurrent use by many
// goroutines, and the conditional writes are safe across processes and
// machines sharing the same underlying store.
//
// Every error other than the sentinels above is an *OpError naming the
// bucket, the operation and the key. Methods honour ctx cancellation.
type Bucket interface {
	// Get opens the whole object for reading. The caller must Close the
	// reader. A missing key is ErrNotFound. Once opened, the reader sees one
	// version of the object even if it is replaced meanwhile.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)

	// GetRange reads length bytes starting at offset. A range running past
	// the end of the object is cut short at the end; length < 0 means "to the
	// end". An offset beyond the size of the object, or a negative offset, is
	// ErrInvalidRange. A missing key is ErrNotFound.
	GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error)

	// Stat returns the object's Info without reading it. A missing key is
	// ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)

	// Put creates or replaces key with size bytes read from body. The new
	// content becomes visible atomically: a reader sees the old object or the
	// whole new one, never a part. If Put returns an error the object may or
	// may not have been written (the outcome is unknown), but it is never
	// partly written. size must be the exact length of body.
	Put(ctx context.Context, key string, body io.Reader, size int64) (Info, error)

	// PutIfAbsent is Put that only creates: if key exists it returns
	// ErrPrecondition and leaves the object alone. Of any number of racing
	// callers exactly one succeeds. A backend that retries internally after
	// an unknown outcome must not report ErrPrecondition for an object that
	// its own earlier attempt created: it checks whether the stored object is
	// the one it was writing.
	PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (Info, error)

	// PutIfMatch replaces key only if its current Version equals version;
	// otherwise (including when key does not exist) it returns
	// ErrPrecondition. Of racing callers holding the same version, exactly
	// one succeeds.
	PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (Info, error)

	// Delete removes key. Deleting a missing key is not an error, so Delete
	// is idempotent and safe to retry.
	Delete(ctx context.Context, key string) error

	// List yields the objects whose keys start with prefix and sort strictly
	// after startAfter (which may be empty), in lexicographic byte order of
	// key. The backend pages through the store internally; stop early by
	// breaking out of the loop. On error List yields one final (Info{}, err).
	// Objects created or deleted during a listing may or may not appear.
	List(ctx context.Context, prefix, startAfter string) iter.Seq2[Info, error]

	// String describes the bucket for logs and errors, e.g.
	// "file:///var/lib/twoway" or "s3://bucket/prefix". It never contains
	// credentials.
	String() string
}

// OpError is the error type backends return for failures other than the
// sentinels themselves: it says what failed, where, and wraps the cause (which
// may itself be a sentinel, so errors.Is keeps working).
type OpError struct {
	Bucket string // Bucket.String()
	Op     string // "get", "put-if-absent", ...
	Key    string
	Err    error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("bucket %s: %s %q: %v", e.Bucket, e.Op, e.Key, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// IsNotFound reports whether err means the key does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsPrecondition reports whether err means a conditional write lost.
func IsPrecondition(err error) bool { return errors.Is(err, ErrPrecondition) }

// MaxKeyLen bounds key length; S3 allows 1024 bytes.
const MaxKeyLen = 1024

// Keys form a tree, as paths do: a key may not also be a prefix of other
// keys followed by '/' ("a" and "a/b" cannot both exist). The file backend
// cannot store both, and S3-compatible stores disagree on how to list them.
//
// ValidateKey checks that key is a relative, clean, slash-separated path: not
// empty, at most MaxKeyLen bytes, no leading or trailing '/', no empty, "." or
// ".." segments, no NUL or backslash, and valid UTF-8. A key that passes can
// never name anything outside the bucket's root on any backend.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case strings.ContainsRune(key, 0):
		return bad("contains NUL")
	case strings.ContainsRune(key, '\\'):
		return bad("contains a backslash")
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment (leading, trailing or double '/')")
		case ".", "..":
			return bad("'.' and '..' segments are not allowed")
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: empty, or a key-like string that may
// end in '/'.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/") + "/x")
}

// ReadAll reads a whole object into memory. For objects that are known to be
// small (commits, checkpoints, chunks).
func ReadAll(ctx context.Context, b Bucket, key string) ([]byte, Info, error) {
	rc, info, err := b.Get(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(max(info.Size, 0)) + 1) // +1: ReadFrom wants room to see EOF
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, Info{}, &OpError{Bucket: b.String(), Op: "get", Key: key, Err: err}
	}
	return buf.Bytes(), info, nil
}

// Keys collects the keys List yields, for callers that want them all at once.
func Keys(ctx context.Context, b Bucket, prefix, startAfter string) ([]string, error) {
	var keys []string
	for info, err := range b.List(ctx, prefix, startAfter) {
		if err != nil {
			return nil, err
		}
		keys = append(keys, info.Key)
	}
	return keys, nil
}
