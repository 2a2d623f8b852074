package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twoway/twoway/bucket"
)

// fileCache hands DuckDB local paths of data files. On a directory bucket
// they are the bucket's own files, read in place. On any other bucket a
// file is downloaded once into a bounded cache directory (data files are
// immutable, so a cached copy never goes stale); the least recently used
// files not in use by a query are evicted beyond the bound.
type fileCache struct {
	b     bucket.Bucket
	local string // the bucket's directory, if it is one
	dir   string
	max   int64

	mu      sync.Mutex
	size    int64
	entries map[string]*cacheEntry
	loading map[string]chan struct{}
}

type cacheEntry struct {
	path string
	size int64
	pins int
	used time.Time
}

func newFileCache(dir string, max int64, b bucket.Bucket) *fileCache {
	c := &fileCache{b: b, dir: dir, max: max, entries: map[string]*cacheEntry{}, loading: map[string]chan struct{}{}}
	if u, err := url.Parse(b.String()); err == nil && u.Scheme == "file" {
		c.local = filepath.FromSlash(u.Path)
	}
	return c
}

// Local reports whether files are read in place.
func (c *fileCache) Local() bool { return c.local != "" }

func (c *fileCache) cacheDir() (string, error) {
	if c.dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		c.dir = filepath.Join(base, "twoway", "tables")
	}
	return c.dir, os.MkdirAll(c.dir, 0o700)
}

// Path returns a local path holding key; release ends its use.
func (c *fileCache) Path(ctx context.Context, key string) (string, func(), error) {
	if c.local != "" {
		return filepath.Join(c.local, filepath.FromSlash(key)), func() {}, nil
	}
	for {
		c.mu.Lock()
		if e := c.entries[key]; e != nil {
			e.pins++
			e.used = time.Now()
			c.mu.Unlock()
			return e.path, c.releaser(key), nil
		}
		if ch := c.loading[key]; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return "", nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		c.loading[key] = ch
		c.mu.Unlock()
		path, size, err := c.download(ctx, key)
		c.mu.Lock()
		delete(c.loading, key)
		close(ch)
		if err != nil {
			c.mu.Unlock()
			return "", nil, err
		}
		c.entries[key] = &cacheEntry{path: path, size: size, pins: 1, used: time.Now()}
		c.size += size
		c.evictLocked()
		c.mu.Unlock()
		return path, c.releaser(key), nil
	}
}

func (c *fileCache) releaser(key string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			if e := c.entries[key]; e != nil {
				e.pins--
			}
			c.evictLocked()
			c.mu.Unlock()
		})
	}
}

func (c *fileCache) evictLocked() {
	if c.size <= c.max {
		return
	}
	var keys []string
	for k, e := range c.entries {
		if e.pins == 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return c.entries[keys[i]].used.Before(c.entries[keys[j]].used) })
	for _, k := range keys {
		if c.size <= c.max {
			return
		}
		e := c.entries[k]
		os.Remove(e.path)
		c.size -= e.size
		delete(c.entries, k)
	}
}

func (c *fileCache) download(ctx context.Context, key string) (string, int64, error) {
	dir, err := c.cacheDir()
	if err != nil {
		return "", 0, fmt.Errorf("table file cache: %w", err)
	}
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:16])
	if i := strings.LastIndex(key, "."); i >= 0 && !strings.Contains(key[i:], "/") {
		name += key[i:]
	}
	path := filepath.Join(dir, name)
	rc, _, err := c.b.Get(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", 0, fmt.Errorf("table file cache: %w", err)
	}
	n, err := io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", 0, fmt.Errorf("table file cache: download %s: %w", key, err)
	}
	return path, n, nil
}
