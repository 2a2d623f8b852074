// Package keyed keeps large per-key values (one state blob per actor,
// millions of them) for an Owner of the commit log, with only an index in
// memory. A value is an entry's blob: the log stores it inline in the
// commit or in a chunk, and the entry's Ref, which Apply receives, is what
// the Owner records in its Index. The Owner lists the Index's refs in
// LiveObjects so garbage collection keeps them, exactly as the streams
// index does for record data. Values are read back through a Reader with
// its own byte-bounded LRU cache.
//
// The Index is built for checkpoints of millions of keys: Capture is
// O(shards) (copy-on-write shards), so applying never waits for it, and the
// encoding is compact and deterministic.
package keyed

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twoway/twoway/bucket"
	"github.com/twoway/twoway/internal/commitlog"
)

// nShards is the number of copy-on-write shards. After a capture, the
// first write to each shard copies it (1/nShards of the index), so the
// cost of a checkpoint is spread over the applies that follow it.
const nShards = 256

// Index maps keys to the refs of their values. Its methods follow the
// Owner's locking: Set and Delete from Apply, Get and Range from Apply or
// under Log.View, Capture from Snapshot.
type Index struct {
	shards [nShards]*shard
	n      int
}

// Value is what the index keeps of a key: where its value is, and the
// version the owner gave it (the sequence number of the commit that wrote
// it, say), for optimistic concurrency.
type Value struct {
	commitlog.Ref
	Ver uint64
}

type shard struct {
	m map[string]Value
	// frozen: a capture holds this shard; the index copies it before
	// writing.
	frozen bool
}

// New returns an empty index.
func New() *Index {
	x := &Index{}
	for i := range x.shards {
		x.shards[i] = &shard{m: map[string]Value{}}
	}
	return x
}

func shardOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % nShards)
}

func (x *Index) writable(i int) *shard {
	s := x.shards[i]
	if s.frozen {
		s = &shard{m: maps.Clone(s.m)}
		x.shards[i] = s
	}
	return s
}

// Set records key's value at ref, with version ver.
func (x *Index) Set(key string, ref commitlog.Ref, ver uint64) {
	s := x.writable(shardOf(key))
	if _, ok := s.m[key]; !ok {
		x.n++
	}
	s.m[key] = Value{Ref: ref, Ver: ver}
}

// Delete forgets key.
func (x *Index) Delete(key string) {
	i := shardOf(key)
	if _, ok := x.shards[i].m[key]; !ok {
		return
	}
	delete(x.writable(i).m, key)
	x.n--
}

// Get returns key's value.
func (x *Index) Get(key string) (Value, bool) {
	r, ok := x.shards[shardOf(key)].m[key]
	return r, ok
}

// Len is the number of keys.
func (x *Index) Len() int { return x.n }

// Range calls fn for every key, in no order.
func (x *Index) Range(fn func(key string, v Value)) {
	for _, s := range x.shards {
		for k, r := range s.m {
			fn(k, r)
		}
	}
}

// LiveObjects calls fn with the bucket key of every value.
func (x *Index) LiveObjects(fn func(string)) {
	x.Range(func(_ string, v Value) { fn(v.Key) })
}

// Frozen is a captured index: it never changes.
type Frozen struct {
	shards [nShards]*shard
	n      int
}

// Capture freezes the index as it is now, in O(shards).
func (x *Index) Capture() *Frozen {
	f := &Frozen{n: x.n}
	for i, s := range x.shards {
		s.frozen = true
		f.shards[i] = s
	}
	return f
}

// magic starts an encoded index.
const magic = "TWKV\x02"

// magicV1 is the first encoding, without versions (read as version 0).
const magicV1 = "TWKV\x01"

// Encode writes the captured index deterministically:
//
//	"TWKV" 0x02, uvarint keys
//	uvarint objects; objects × key: the values' bucket keys, in order of
//	  first use, each front-coded against the one before
//	256 × shard: uvarint n, then n entries in key order:
//	  key: front-coded against the previous entry's key
//	  uvarint object index, uvarint off, uvarint len, u32 crc (little
//	  endian), uvarint version (absent in encoding 0x01)
//
// A front-coded key is uvarint bytes shared with the previous one, then
// uvarint length and bytes of the rest. Values share few objects (a chunk
// holds thousands), so each is named once.
func (f *Frozen) Encode() []byte {
	type entry struct {
		key string
		ref Value
		obj uint64
	}
	objects := map[string]uint64{}
	var order []string
	sorted := make([][]entry, nShards)
	for i, s := range f.shards {
		es := make([]entry, 0, len(s.m))
		for k, r := range s.m {
			es = append(es, entry{key: k, ref: r})
		}
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		last := ""
		var lastObj uint64
		for j := range es {
			rk := es[j].ref.Key
			if rk != last || j == 0 {
				o, ok := objects[rk]
				if !ok {
					o = uint64(len(order))
					objects[rk] = o
					order = append(order, rk)
				}
				last, lastObj = rk, o
			}
			es[j].obj = lastObj
		}
		sorted[i] = es
	}
	b := make([]byte, 0, 16+f.n*16)
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(f.n))
	b = binary.AppendUvarint(b, uint64(len(order)))
	prevObj := ""
	for _, o := range order {
		b = appendFront(b, prevObj, o)
		prevObj = o
	}
	var prevKey string
	for _, es := range sorted {
		b = binary.AppendUvarint(b, uint64(len(es)))
		for _, e := range es {
			b = appendFront(b, prevKey, e.key)
			b = binary.AppendUvarint(b, e.obj)
			b = binary.AppendUvarint(b, uint64(e.ref.Off))
			b = binary.AppendUvarint(b, uint64(e.ref.Len))
			b = binary.LittleEndian.AppendUint32(b, e.ref.CRC)
			b = binary.AppendUvarint(b, e.ref.Ver)
			prevKey = e.key
		}
	}
	return b
}

func appendFront(b []byte, prev, s string) []byte {
	n := 0
	for n < len(prev) && n < len(s) && prev[n] == s[n] {
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(s)-n))
	return append(b, s[n:]...)
}

var errCorrupt = errors.New("keyed index: truncated or corrupt")

// Restore replaces the index with an encoded one.
func (x *Index) Restore(b []byte) error {
	v1 := len(b) >= len(magicV1) && string(b[:len(magicV1)]) == magicV1
	if !v1 && (len(b) < len(magic) || string(b[:len(magic)]) != magic) {
		return fmt.Errorf("keyed index: unknown encoding (first bytes %q)", b[:min(len(b), 5)])
	}
	d := decoder{b: b[len(magic):]}
	total := d.count(0)
	nx := &Index{n: total}
	objects := make([]string, d.count(1))
	prevObj := ""
	for i := range objects {
		objects[i] = d.front(prevObj)
		prevObj = objects[i]
	}
	var prevKey string
	seen := 0
	for i := range nx.shards {
		n := d.count(7)
		seen += n
		m := make(map[string]Value, n)
		for range n {
			k := d.front(prevKey)
			oi := d.uvarint()
			if oi >= uint64(len(objects)) {
				d.fail()
			}
			if d.err != nil {
				return d.err
			}
			r := Value{Ref: commitlog.Ref{Key: objects[oi], Off: int64(d.uvarint()), Len: int64(d.uvarint()), CRC: d.u32()}}
			if !v1 {
				r.Ver = d.uvarint()
			}
			if d.err != nil {
				return d.err
			}
			if shardOf(k) != i || k <= prevKey && len(m) > 0 {
				return fmt.Errorf("keyed index: key %q out of place", k)
			}
			m[k] = r
			prevKey = k
		}
		nx.shards[i] = &shard{m: m}
	}
	if d.err != nil {
		return d.err
	}
	if seen != total || len(d.b) != 0 {
		return errCorrupt
	}
	*x = *nx
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count whose items take at least minBytes each (0: no
// bound from the input, only a sanity one).
func (d *decoder) count(minBytes int) int {
	v := d.uvarint()
	limit := uint64(1 << 40)
	if minBytes > 0 {
		limit = uint64(len(d.b) / minBytes)
	}
	if v > limit {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) front(prev string) string {
	shared := d.uvarint()
	rest := d.count(1)
	if d.err != nil || shared > uint64(len(prev)) || rest > len(d.b) {
		d.fail()
		return ""
	}
	s := prev[:shared] + string(d.b[:rest])
	d.b = d.b[rest:]
	return s
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// Reader reads values through a byte-bounded LRU cache. It is safe for
// concurrent use.
type Reader struct {
	b bucket.Bucket

	mu    sync.Mutex
	max   int64
	size  int64
	lru   *list.List // of *cached, most recent first
	items map[commitlog.Ref]*list.Element

	Hits, Misses atomic.Int64
}

type cached struct {
	ref  commitlog.Ref
	data []byte
}

// NewReader reads from b, caching up to maxBytes of values.
func NewReader(b bucket.Bucket, maxBytes int64) *Reader {
	return &Reader{b: b, max: maxBytes, lru: list.New(), items: map[commitlog.Ref]*list.Element{}}
}

// Read returns the value at ref, checking its CRC. The returned slice is
// shared with the cache: do not modify it.
func (r *Reader) Read(ctx context.Context, ref commitlog.Ref) ([]byte, error) {
	r.mu.Lock()
	if e, ok := r.items[ref]; ok {
		r.lru.MoveToFront(e)
		r.mu.Unlock()
		r.Hits.Add(1)
		return e.Value.(*cached).data, nil
	}
	r.mu.Unlock()
	r.Misses.Add(1)
	data, err := r.b.GetRange(ctx, ref.Key, ref.Off, ref.Len)
	if err != nil {
		return nil, fmt.Errorf("read value at %s+%d: %w", ref.Key, ref.Off, err)
	}
	if err := commitlog.VerifyBlob(ref, data); err != nil {
		return nil, err
	}
	r.put(ref, data)
	return data, nil
}

func (r *Reader) put(ref commitlog.Ref, data []byte) {
	if int64(len(data)) > r.max/8 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.items[ref]; ok {
		return
	}
	r.items[ref] = r.lru.PushFront(&cached{ref: ref, data: data})
	r.size += int64(len(data))
	for r.size > r.max {
		old := r.lru.Back()
		c := old.Value.(*cached)
		r.lru.Remove(old)
		delete(r.items, c.ref)
		r.size -= int64(len(c.data))
	}
}

// Cached is the number of bytes the cache holds.
func (r *Reader) Cached() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size
}
