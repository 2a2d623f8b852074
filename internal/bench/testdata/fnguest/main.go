// The guest of `twoway bench fn`: a raw twoway_v1 guest (no SDK), built
// with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. The bench
// embeds this file and builds it at run time; it imports only the
// standard library.
//
//   - A record event (kind 2) is one durable actor update: the actor's new
//     state is the record's value with its first 8 bytes replaced by the
//     number of updates so far (little-endian), read from the old state.
//   - An HTTP or invoke event (kinds 1 and 4) is stateless: the answer is
//     200, Content-Type text/plain, body = path + " " + the body
//     upper-cased (the bench's native handler does the same).
package main

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport twoway_v1 state_get
func stateGet(keyPtr, keyLen uint32) int32

//go:wasmimport twoway_v1 state_set
func stateSet(ptr, n uint32) int32

//go:wasmimport twoway_v1 result_read
func resultRead(ptr, n uint32) int32

// live keeps the buffers lent to the host reachable.
var live = map[uint32][]byte{}

// lastOut is the previous call's output, kept until the next call.
var lastOut []byte

// scratch holds state read from the host and state written to it.
var scratch, next []byte

func ptrOf(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

//go:wasmexport twoway_alloc
func alloc(size uint32) uint32 {
	b := make([]byte, max(size, 1))
	p := ptrOf(b)
	live[p] = b
	return p
}

type dec struct {
	b  []byte
	ok bool
}

func (d *dec) u32() uint32 {
	if !d.ok || len(d.b) < 4 {
		d.ok = false
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *dec) skip(n int) {
	if !d.ok || len(d.b) < n {
		d.ok = false
		return
	}
	d.b = d.b[n:]
}

func (d *dec) bytes() []byte {
	n := d.u32()
	if !d.ok || uint64(n) > uint64(len(d.b)) {
		d.ok = false
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) nullable() []byte {
	if len(d.b) >= 4 && binary.LittleEndian.Uint32(d.b) == 0xFFFFFFFF {
		d.b = d.b[4:]
		return nil
	}
	return d.bytes()
}

func respond(status uint32, ctype string, body []byte) uint64 {
	out := lastOut[:0]
	out = binary.LittleEndian.AppendUint32(out, status)
	if ctype == "" {
		out = binary.LittleEndian.AppendUint32(out, 0)
	} else {
		out = binary.LittleEndian.AppendUint32(out, 1)
		out = binary.LittleEndian.AppendUint32(out, uint32(len("Content-Type")))
		out = append(out, "Content-Type"...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(ctype)))
		out = append(out, ctype...)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	lastOut = out
	return uint64(ptrOf(out))<<32 | uint64(len(out))
}

// work is the stateless handler's work: path, a space, the body
// upper-cased.
func work(path, body []byte) []byte {
	out := make([]byte, 0, len(path)+1+len(body))
	out = append(out, path...)
	out = append(out, ' ')
	for _, c := range body {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	return out
}

func update(value []byte) uint64 {
	var count uint64
	if n := stateGet(0, 0); n >= 8 {
		if cap(scratch) < int(n) {
			scratch = make([]byte, n)
		}
		scratch = scratch[:n]
		resultRead(ptrOf(scratch), uint32(n))
		count = binary.LittleEndian.Uint64(scratch)
	}
	next = append(next[:0], value...)
	for len(next) < 8 {
		next = append(next, 0)
	}
	binary.LittleEndian.PutUint64(next, count+1)
	if stateSet(ptrOf(next), uint32(len(next))) < 0 {
		return respond(500, "", []byte("state_set failed"))
	}
	return 0
}

//go:wasmexport twoway_handle
func handle(ptr, n uint32) uint64 {
	in := live[ptr][:n]
	delete(live, ptr)
	d := &dec{b: in, ok: true}
	d.u32() // abi
	kind := d.u32()
	d.bytes() // key
	d.bytes() // invocation
	switch kind {
	case 1: // http
		d.bytes() // method
		path := d.bytes()
		d.bytes() // query
		for h := d.u32(); h > 0 && d.ok; h-- {
			d.bytes()
			d.bytes()
		}
		body := d.bytes()
		if !d.ok {
			return respond(400, "", []byte("malformed event"))
		}
		return respond(200, "text/plain", work(path, body))
	case 2: // record
		d.bytes()  // topic
		d.skip(20) // partition, offset, timestamp
		d.nullable()
		value := d.nullable()
		if !d.ok {
			return respond(400, "", []byte("malformed event"))
		}
		return update(value)
	case 4: // invoke
		d.bytes() // method
		body := d.bytes()
		if !d.ok {
			return respond(400, "", []byte("malformed event"))
		}
		return respond(200, "text/plain", work(nil, body))
	}
	return respond(501, "", []byte("unknown event kind"))
}

func main() {}
