package commitlog

// Commit hints. An agent learns of its own commits at once; others' it
// learns by polling the next sequence number, with a backoff that grows
// while the log is idle. So that a reader does not wait out a poll
// interval, every agent listens on a UDP address it advertises in its
// registration, and after each commit the writer sends the new sequence
// number to every live agent. A hint is never trusted for content: it
// only makes the receiver poll now. Lost, late, forged or duplicated
// hints cost at most one read.

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// hintMagic starts a hint datagram: "TWH" 1, then the sequence number
// (u64 big-endian).
const hintMagic = "TWH\x01"

const hintLen = len(hintMagic) + 8

type hinter struct {
	conn *net.UDPConn
	// latest is the newest sequence to announce (coalescing: a slow send
	// skips to the newest).
	latest chan uint64

	mu    sync.Mutex
	peers []*net.UDPAddr
	// refresh asks for the peer list to be read again (a hint came from
	// an agent not on it: it started after the last refresh).
	refresh chan struct{}
}

// listenHints opens the hint socket, or returns nil when hints are off.
func (l *Log) listenHints() error {
	if l.opts.HintAddr == "off" {
		return nil
	}
	addr, err := net.ResolveUDPAddr("udp", l.opts.HintAddr)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return err
	}
	l.hints = &hinter{conn: conn, latest: make(chan uint64, 1), refresh: make(chan struct{}, 1)}
	return nil
}

// closeHints closes the hint socket of a log that failed to open.
func (l *Log) closeHints() {
	if l.hints != nil {
		l.hints.conn.Close()
	}
}

// hintAddr is the address this agent advertises, "" without hints.
func (l *Log) hintAddr() string {
	if l.hints == nil {
		return ""
	}
	return l.hints.conn.LocalAddr().String()
}

// announce queues seq to be hinted to the other agents.
func (l *Log) announce(seq uint64) {
	h := l.hints
	if h == nil {
		return
	}
	for {
		select {
		case h.latest <- seq:
			return
		default:
		}
		select {
		case old := <-h.latest:
			seq = max(seq, old)
		default:
		}
	}
}

// hintLoop sends queued hints and receives others'; it stops with the log.
func (l *Log) hintLoop() {
	defer l.wg.Done()
	h := l.hints
	go func() {
		<-l.ctx.Done()
		h.conn.Close()
	}()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, 64)
		for {
			n, from, err := h.conn.ReadFromUDP(buf)
			if err != nil {
				if l.ctx.Err() != nil {
					return
				}
				continue
			}
			if n != hintLen || string(buf[:len(hintMagic)]) != hintMagic {
				continue
			}
			if !h.knows(from) {
				select {
				case h.refresh <- struct{}{}:
				default:
				}
			}
			if seq := binary.BigEndian.Uint64(buf[len(hintMagic):n]); seq > l.Applied() {
				// Believed only as far as it makes the tail read ahead:
				// a sequence number that does not exist reads as missing.
				for cur := l.hinted.Load(); seq > cur && !l.hinted.CompareAndSwap(cur, seq); cur = l.hinted.Load() {
				}
				l.Stats.HintsReceived.Add(1)
				l.lastHint.Store(time.Now().UnixNano())
				select {
				case l.hintWake <- struct{}{}:
				default:
				}
			}
		}
	}()
	// Peer refreshes asked for by unknown senders, at most one a second.
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.ctx.Done():
				return
			case <-h.refresh:
			}
			l.refreshPeers(l.ctx)
			if !l.sleep(time.Second) {
				return
			}
		}
	}()
	self := h.conn.LocalAddr().String()
	msg := make([]byte, hintLen)
	copy(msg, hintMagic)
	// Say hello (sequence 0 wakes nobody): agents that started before this
	// one learn its address now rather than at their next refresh.
	l.announce(0)
	for {
		select {
		case <-l.ctx.Done():
			return
		case seq := <-h.latest:
			binary.BigEndian.PutUint64(msg[len(hintMagic):], seq)
			h.mu.Lock()
			peers := h.peers
			h.mu.Unlock()
			for _, p := range peers {
				if p.String() != self {
					_, _ = h.conn.WriteToUDP(msg, p)
				}
			}
		}
	}
}

func (h *hinter) knows(a *net.UDPAddr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.peers {
		if p.Port == a.Port && p.IP.Equal(a.IP) {
			return true
		}
	}
	return false
}

// hintsFlowing reports whether hints arrived in the last second, so that
// the tail may wait for them instead of probing for the next commit.
func (l *Log) hintsFlowing() bool {
	t := l.lastHint.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < time.Second
}

// refreshPeers reads the live agents' hint addresses from their
// registrations (after each registration of this agent's own).
func (l *Log) refreshPeers(ctx context.Context) {
	if l.hints == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	agents, err := l.Agents(ctx)
	if err != nil {
		return // keep the previous list
	}
	var peers []*net.UDPAddr
	for _, a := range agents {
		if a.Agent == l.opts.AgentID || a.Hint == "" {
			continue
		}
		if addr, err := net.ResolveUDPAddr("udp", a.Hint); err == nil {
			peers = append(peers, addr)
		}
	}
	l.hints.mu.Lock()
	l.hints.peers = peers
	l.hints.mu.Unlock()
}
