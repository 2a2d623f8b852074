// Package prefixed confines a bucket.Bucket to the keys under one prefix, so
// that several twoway deployments, tests or benchmarks can share a bucket
// without seeing each other's objects.
package prefixed

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/twoway/twoway/bucket"
)

// Bucket is a bucket.Bucket whose keys all live under a prefix of the bucket
// it wraps. Keys passed in and listed out are relative to the prefix.
type Bucket struct {
	inner  bucket.Bucket
	prefix string // "" or ends in '/'
}

var _ bucket.Bucket = (*Bucket)(nil)

// Wrap returns b confined to prefix. The prefix is a key-like path such as
// "tenants/a" (a trailing '/' is optional: the key "x" is stored as
// "tenants/a/x" either way, so "tenants/a" never sees "tenants/ab/x"). An
// empty prefix confines nothing. A prefix that could not be part of a valid
// key (see bucket.ValidateKey) is an error wrapping bucket.ErrInvalidKey.
func Wrap(b bucket.Bucket, prefix string) (*Bucket, error) {
	if prefix != "" {
		if err := bucket.ValidatePrefix(prefix); err != nil {
			return nil, fmt.Errorf("key prefix: %w", err)
		}
		prefix = strings.TrimSuffix(prefix, "/") + "/"
	}
	return &Bucket{inner: b, prefix: prefix}, nil
}

// Prefix returns the prefix, with its trailing '/' (or "").
func (b *Bucket) Prefix() string { return b.prefix }

// Unwrap returns the bucket b wraps.
func (b *Bucket) Unwrap() bucket.Bucket { return b.inner }

// key checks key before prefixing it: a key like ".." must not be able to
// climb out of the prefix, even though the prefixed result might be valid.
func (b *Bucket) key(op, key string) (string, error) {
	if err := bucket.ValidateKey(key); err != nil {
		return "", &bucket.OpError{Bucket: b.String(), Op: op, Key: key, Err: err}
	}
	return b.prefix + key, nil
}

func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, bucket.Info, error) {
	k, err := b.key("get", key)
	if err != nil {
		return nil, bucket.Info{}, err
	}
	rc, info, err := b.inner.Get(ctx, k)
	if err != nil {
		return nil, bucket.Info{}, err
	}
	info.Key = key
	return rc, info, nil
}

func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	k, err := b.key("get-range", key)
	if err != nil {
		return nil, err
	}
	return b.inner.GetRange(ctx, k, offset, length)
}

func (b *Bucket) Stat(ctx context.Context, key string) (bucket.Info, error) {
	k, err := b.key("stat", key)
	if err != nil {
		return bucket.Info{}, err
	}
	info, err := b.inner.Stat(ctx, k)
	return b.info(info, key, err), err
}

func (b *Bucket) Put(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	k, err := b.key("put", key)
	if err != nil {
		return bucket.Info{}, err
	}
	info, err := b.inner.Put(ctx, k, body, size)
	return b.info(info, key, err), err
}

func (b *Bucket) PutIfAbsent(ctx context.Context, key string, body io.Reader, size int64) (bucket.Info, error) {
	k, err := b.key("put-if-absent", key)
	if err != nil {
		return bucket.Info{}, err
	}
	info, err := b.inner.PutIfAbsent(ctx, k, body, size)
	return b.info(info, key, err), err
}

func (b *Bucket) PutIfMatch(ctx context.Context, key string, body io.Reader, size int64, version string) (bucket.Info, error) {
	k, err := b.key("put-if-match", key)
	if err != nil {
		return bucket.Info{}, err
	}
	info, err := b.inner.PutIfMatch(ctx, k, body, size, version)
	return b.info(info, key, err), err
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	k, err := b.key("delete", key)
	if err != nil {
		return err
	}
	return b.inner.Delete(ctx, k)
}

// List lists the keys under the prefix, with the prefix stripped.
func (b *Bucket) List(ctx context.Context, prefix, startAfter string) iter.Seq2[bucket.Info, error] {
	return func(yield func(bucket.Info, error) bool) {
		if err := bucket.ValidatePrefix(prefix); err != nil {
			yield(bucket.Info{}, &bucket.OpError{Bucket: b.String(), Op: "list", Key: prefix, Err: err})
			return
		}
		after := ""
		if startAfter != "" {
			after = b.prefix + startAfter
		}
		for info, err := range b.inner.List(ctx, b.prefix+prefix, after) {
			if err == nil {
				rel, ok := strings.CutPrefix(info.Key, b.prefix)
				if !ok {
					err = &bucket.OpError{Bucket: b.String(), Op: "list", Key: info.Key,
						Err: fmt.Errorf("listing %q returned a key outside the prefix", b.prefix+prefix)}
					info = bucket.Info{}
				}
				info.Key = rel
			}
			if !yield(info, err) || err != nil {
				return
			}
		}
	}
}

// String names the wrapped bucket followed by the prefix, e.g.
// "s3://bucket/base/tenants/a/".
func (b *Bucket) String() string {
	if b.prefix == "" {
		return b.inner.String()
	}
	return strings.TrimSuffix(b.inner.String(), "/") + "/" + b.prefix
}

// info turns a successful result's key back into the caller's key.
func (b *Bucket) info(info bucket.Info, key string, err error) bucket.Info {
	if err != nil {
		return bucket.Info{}
	}
	info.Key = key
	return info
}
