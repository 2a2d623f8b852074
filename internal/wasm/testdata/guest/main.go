// A test guest for the twoway_v1 ABI, built with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared (a reactor: its exports stay callable after
// _initialize). It upper-cases its input and counts its calls, and misbehaves
// on request: "loop" spins forever, "grow" allocates without bound, "trap"
// panics.
package main

import (
	"bytes"
	"strconv"
	"unsafe"
)

//go:wasmimport twoway_v1 log
func hostLog(level, ptr, n uint32)

// live keeps the buffers handed to the host reachable.
var live = map[uint32][]byte{}

var calls int

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

//go:wasmexport twoway_handle
func handle(ptr, n uint32) uint64 {
	in := live[ptr][:n]
	delete(live, ptr)
	switch string(in) {
	case "loop":
		for {
		}
	case "grow":
		for {
			hog = append(hog, make([]byte, 1<<20))
		}
	case "trap":
		panic("asked to trap")
	}
	calls++
	msg := []byte("handling " + strconv.Itoa(len(in)) + " bytes")
	hostLog(1, ptrOf(msg), uint32(len(msg)))
	out := append(bytes.ToUpper(in), []byte(" #"+strconv.Itoa(calls))...)
	lastOut = out // reachable until the next call; the host copies it first
	return uint64(ptrOf(out))<<32 | uint64(len(out))
}

func main() {}
