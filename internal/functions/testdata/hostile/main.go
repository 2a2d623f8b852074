// A hostile test guest for the twoway_v1 ABI, written against the raw ABI
// (no SDK) and built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
// What it does is chosen by the command in its event: the body of an
// invoke (kind 4) or HTTP request (kind 1, else the path without its
// leading "/"), the value of a record (kind 2):
//
//	ok              state := state + 1 (a decimal counter); 200 with the new count
//	                ("ok" when unkeyed)
//	loop            poison, then spin forever
//	grow            poison, then allocate without bound (a memory bomb)
//	trap            panic
//	state-then-trap poison, then panic
//	huge-output     poison, then answer 200 with an 8 KiB body
//	oob-state-set   poison, then state_set with a range outside memory
//	oob-publish     poison, then publish with a value outside memory
//	big-state       state_set of 2000 bytes; 200 with "state_set: <rc>"
//	slow            spin for 150 ms by now_ms, then 200 "slow"
//
// "poison" is state_set("poisoned") and a publish to topic hostile-out:
// effects that must never be committed, because the invocation fails.
package main

import (
	"encoding/binary"
	"strconv"
	"unsafe"
)

//go:wasmimport twoway_v1 state_get
func stateGet(keyPtr, keyLen uint32) int32

//go:wasmimport twoway_v1 state_set
func stateSet(ptr, n uint32) int32

//go:wasmimport twoway_v1 result_read
func resultRead(ptr, n uint32) int32

//go:wasmimport twoway_v1 publish
func publish(topicPtr, topicLen, keyPtr, keyLen, valuePtr, valueLen uint32) int32

//go:wasmimport twoway_v1 now_ms
func nowMs() int64

// OutTopic is where poison publishes.
const OutTopic = "hostile-out"

// oob is an address far outside any memory the guest may have.
const oob = 0xFFFF0000

// live keeps the buffers handed to the host reachable.
var live = map[uint32][]byte{}

// lastOut keeps the last response until the next call.
var lastOut []byte

var hog [][]byte

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
	if n == 0xFFFFFFFF { // a null (nullable bytes)
		return nil
	}
	if !d.ok || uint64(n) > uint64(len(d.b)) {
		d.ok = false
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// command is what the event asks for.
func command(event []byte) (string, bool) {
	d := &dec{b: event, ok: true}
	d.u32() // abi
	kind := d.u32()
	d.bytes() // key
	d.bytes() // invocation
	var cmd []byte
	switch kind {
	case 1: // http: method, path, query, headers, body
		d.bytes()
		path := d.bytes()
		d.bytes()
		for n := d.u32(); n > 0 && d.ok; n-- {
			d.bytes()
			d.bytes()
		}
		cmd = d.bytes()
		if len(cmd) == 0 && len(path) > 0 {
			cmd = path[1:]
		}
	case 2: // record: topic, partition, offset, timestamp, key, value
		d.bytes()
		d.skip(4 + 8 + 8)
		d.bytes()
		cmd = d.bytes()
	case 4: // invoke: method, body
		d.bytes()
		cmd = d.bytes()
	default:
		return "", false
	}
	return string(cmd), d.ok
}

func response(status uint32, body []byte) uint64 {
	out := binary.LittleEndian.AppendUint32(nil, status)
	out = binary.LittleEndian.AppendUint32(out, 0) // no headers
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	lastOut = out // reachable until the next call; the host copies it first
	return uint64(ptrOf(out))<<32 | uint64(len(out))
}

func setState(v []byte) int32 {
	if len(v) == 0 {
		return stateSet(0, 0)
	}
	return stateSet(ptrOf(v), uint32(len(v)))
}

func poison() {
	setState([]byte("poisoned"))
	topic, value := []byte(OutTopic), []byte("poison")
	publish(ptrOf(topic), uint32(len(topic)), 0, 0xFFFFFFFF, ptrOf(value), uint32(len(value)))
}

var spin uint64

//go:wasmexport twoway_handle
func handle(ptr, n uint32) uint64 {
	in := live[ptr][:n]
	delete(live, ptr)
	lastOut = nil
	cmd, ok := command(in)
	if !ok {
		return response(400, []byte("malformed event"))
	}
	switch cmd {
	case "ok":
		count := 0
		if rc := stateGet(0, 0); rc == -5 { // NO_ACTOR: unkeyed
			return response(200, []byte("ok"))
		} else if rc > 0 {
			b := make([]byte, rc)
			resultRead(ptrOf(b), uint32(rc))
			count, _ = strconv.Atoi(string(b))
		}
		v := []byte(strconv.Itoa(count + 1))
		if rc := setState(v); rc < 0 {
			return response(500, []byte("state_set: "+strconv.Itoa(int(rc))))
		}
		return response(200, v)
	case "loop":
		poison()
		for {
			spin++
		}
	case "grow":
		poison()
		for {
			hog = append(hog, make([]byte, 1<<20))
		}
	case "trap":
		panic("asked to trap")
	case "state-then-trap":
		poison()
		panic("asked to trap after writing state")
	case "huge-output":
		poison()
		return response(200, make([]byte, 8<<10))
	case "oob-state-set":
		poison()
		stateSet(oob, 64)
		return response(200, []byte("state_set took a range outside memory"))
	case "oob-publish":
		poison()
		topic := []byte(OutTopic)
		publish(ptrOf(topic), uint32(len(topic)), 0, 0xFFFFFFFF, oob, 1<<20)
		return response(200, []byte("publish took a range outside memory"))
	case "big-state":
		rc := setState(make([]byte, 2000))
		return response(200, []byte("state_set: "+strconv.Itoa(int(rc))))
	case "slow":
		until := nowMs() + 150
		for nowMs() < until {
		}
		return response(200, []byte("slow"))
	}
	return response(400, []byte("unknown command "+strconv.Quote(cmd)))
}

func main() {}
