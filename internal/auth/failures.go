package auth

import (
	"net"
	"sync"
	"time"
)

// failures slows down guessing: after a failed authentication from an
// address, the next failure from it is answered later, doubling up to
// maxDelay; a success, or a quiet minute, forgets the address.
type failures struct {
	mu sync.Mutex
	m  map[string]*failure
}

type failure struct {
	n    int
	last time.Time
}

const (
	firstDelay = 100 * time.Millisecond
	maxDelay   = 5 * time.Second
	forgetFail = time.Minute
)

// hostOf is the address's IP, so that new ports do not start over.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Failed records a failure from addr and returns how long to wait before
// answering it.
func (m *Module) Failed(addr string) time.Duration {
	f := &m.fails
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if len(f.m) > 100000 {
		f.m = map[string]*failure{}
	}
	h := hostOf(addr)
	e := f.m[h]
	if e == nil || now.Sub(e.last) > forgetFail {
		e = &failure{}
		f.m[h] = e
	}
	e.n++
	e.last = now
	d := firstDelay << min(e.n-1, 10)
	return min(d, maxDelay)
}

// Succeeded forgets addr's failures.
func (m *Module) Succeeded(addr string) {
	f := &m.fails
	f.mu.Lock()
	delete(f.m, hostOf(addr))
	f.mu.Unlock()
}
