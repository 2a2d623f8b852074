// Package kafka is twoway's Kafka wire-protocol front door: existing Kafka
// producers, consumers and admin tools talk to any agent as if it were a
// broker, and every agent serves every partition.
//
// The server parses frames and request headers itself and encodes bodies
// with kmsg. Requests on one connection are processed concurrently, up to a
// bound, and answered in request order; produce requests that touch the same
// partition are applied in the order they arrived, as a broker that
// processes one request at a time would. docs/KAFKA.md lists the APIs and
// versions served and how brokers, leaders and coordinators map onto agents.
package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twoway/twoway/internal/auth"
	"github.com/twoway/twoway/internal/codec" // also installs stream.Decompress
	"github.com/twoway/twoway/internal/records"
	"github.com/twoway/twoway/internal/stream"
	"github.com/twoway/twoway/internal/tlsconf"
)

// Defaults for Config.
const (
	DefaultAddr          = "127.0.0.1:9092"
	DefaultClusterID     = "twoway"
	DefaultMaxFrameBytes = 100 << 20
	DefaultMaxInFlight   = 64
	DefaultIdleTimeout   = 10 * time.Minute
	DefaultPartitions    = 1
	// A produce request may decompress to as much as one batch may
	// (256 MiB), and two compressed batches of a connection may decompress
	// at once (512 MiB).
	DefaultMaxDecompressedPerRequest    = codec.MaxDecompressed
	DefaultMaxDecompressedPerConnection = 2 * codec.MaxDecompressed
	// DefaultAgentTTL is how long an agent's registration counts as live
	// without a refresh; DefaultAgentRefresh is how often an agent refreshes
	// its own.
	DefaultAgentTTL     = 30 * time.Second
	DefaultAgentRefresh = 3 * time.Second
)

// writeTimeout bounds writing one response, so that a client that stops
// reading cannot hold the connection's goroutines forever.
const writeTimeout = time.Minute

// Config configures a Server. Service is required; every other field has a
// default.
type Config struct {
	// Service is the agent's streams; the server never closes it.
	Service *stream.Service
	// Addr is the TCP address to listen on. Default DefaultAddr.
	Addr string
	// Advertise is the "host:port" clients are told to connect to (in
	// Metadata and in this agent's registration). Default: the address
	// listened on, with the machine's host name in place of an
	// unspecified IP (0.0.0.0, ::).
	Advertise string
	// NodeID is this agent's broker id. Default: derived from the
	// advertised address (FNV-1a & 0x7fffffff), so it is stable across
	// restarts and distinct between agents with distinct addresses.
	NodeID int32
	// ClusterID is reported in Metadata and DescribeCluster. Default
	// DefaultClusterID; every agent of a bucket should use the same.
	ClusterID string
	// Logger receives the server's log lines. Default slog.Default().
	Logger *slog.Logger
	// TLS, if set, makes the listener speak TLS (Kafka's SSL security
	// protocol); a client certificate's subject is the connection's
	// principal.
	TLS *tls.Config
	// Auth, if set, serves SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
	// with its users; RequireAuth then refuses every request but
	// ApiVersions and the SASL ones until a connection has authenticated
	// (SASL_PLAINTEXT, or SASL_SSL with TLS).
	Auth        *auth.Module
	RequireAuth bool
	// AuthTimeout closes a connection that has not authenticated this
	// long after it opened, with RequireAuth. Default 10s.
	AuthTimeout time.Duration
	// SessionLifetime, if positive, limits a SASL authentication to this
	// long (Kafka's connections.max.reauth.ms, KIP-368): SaslAuthenticate
	// v1 and later tell the client (session_lifetime_ms), the client may
	// re-authenticate on the connection at any time, as the same
	// principal, and a connection whose session expired is closed on its
	// next request other than ApiVersions, SaslHandshake and
	// SaslAuthenticate. Whole milliseconds (at least 1); 0 is off.
	SessionLifetime time.Duration
	// Groups serves the consumer-group APIs. Nil answers them with
	// COORDINATOR_NOT_AVAILABLE.
	Groups GroupHandler
	// MaxFrameBytes bounds one request; a larger frame closes its
	// connection. It also bounds the request bytes a connection has in
	// flight. Default DefaultMaxFrameBytes (Kafka's socket.request.max.bytes).
	MaxFrameBytes int
	// MaxRequestBytes, if positive, bounds the request bytes in flight on
	// all connections together (a memory budget): beyond it the server
	// stops reading requests until earlier ones are answered, so producers
	// feel backpressure instead of the agent growing. One request larger
	// than the bound is taken when nothing else is in flight. 0: only the
	// per-connection bound (MaxFrameBytes) holds.
	MaxRequestBytes int
	// MaxFetchBytes, if positive, bounds the record bytes of one Fetch
	// response (below the client's max_bytes) and MaxFetchInFlight the
	// bytes reserved by the fetches being served on all connections
	// together: a fetch reserves its bound before it reads and holds what
	// its response takes until the response is written. 0: no bound but
	// the client's.
	MaxFetchBytes, MaxFetchInFlight int
	// MaxInFlight bounds the requests one connection has in flight; beyond
	// it the server stops reading from the connection until responses are
	// written. Default DefaultMaxInFlight.
	MaxInFlight int
	// MaxDecompressedPerRequest bounds the bytes the compressed batches of
	// one produce request decompress to, together, while they are
	// validated. A batch that would go beyond it fails its partition with
	// MESSAGE_TOO_LARGE, and so does every compressed batch of the request
	// validated after it (partitions are validated concurrently); the
	// request's other partitions are appended as usual. Default
	// DefaultMaxDecompressedPerRequest.
	MaxDecompressedPerRequest int
	// MaxDecompressedPerConnection bounds the decompressed bytes that the
	// produce requests of one connection hold at once while their batches
	// are validated; beyond it validation waits. A compressed batch holds
	// codec.MaxDecompressed (the most it may decompress to) while it
	// decompresses, then its decompressed size until its records are
	// checked; one batch is always let through. Default
	// DefaultMaxDecompressedPerConnection.
	MaxDecompressedPerConnection int
	// MaxDecompressedInFlight, if positive, replaces it with one bound for
	// all connections together (a memory budget).
	MaxDecompressedInFlight int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Default DefaultIdleTimeout (Kafka's connections.max.idle.ms).
	IdleTimeout time.Duration
	// DefaultPartitions is used by CreateTopics with num_partitions -1
	// and for topics created on demand by Metadata.
	// Default DefaultPartitions.
	DefaultPartitions int32
	// NoAutoCreateTopics turns off creating unknown topics on a Metadata
	// request that allows it (Kafka's auto.create.topics.enable, which is on
	// by default there and here).
	NoAutoCreateTopics bool
	// AgentTTL and AgentRefresh tune the agent registry (see agents.go).
	AgentTTL, AgentRefresh time.Duration
	// TxnLeaseDuration is how long the transaction coordinator's lease
	// lasts unrenewed before another agent takes over (txn.go). Default
	// DefaultTxnLeaseDuration.
	TxnLeaseDuration time.Duration
	// TxnMaxTimeout bounds the transaction timeout a producer may ask for
	// (Kafka's transaction.max.timeout.ms). Default DefaultTxnMaxTimeout.
	TxnMaxTimeout time.Duration

	// decompress is codec.Decompress unless a test replaces it.
	decompress records.Decompressor
}

// Server serves the Kafka protocol for one agent. Create it with NewServer,
// then Listen (optional) and Serve.
type Server struct {
	cfg Config
	svc *stream.Service
	log *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	host   string
	port   int32
	nodeID int32
	conns  map[*conn]struct{}
	done   chan struct{} // closed when Serve returns; nil before Serve
	closed bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	agents *registry
	topics topicIDs
	txn    *txnCoordinator

	// Server-wide budgets (nil without MaxRequestBytes, MaxFetchInFlight).
	requests, fetches *byteBudget
	// decompressed is shared by all connections with MaxDecompressedInFlight
	// (nil: each connection has its own, MaxDecompressedPerConnection).
	decompressed *byteBudget
}

// NewServer returns a server for cfg. It does not listen yet.
func NewServer(cfg Config) *Server {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = DefaultClusterID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxDecompressedPerRequest <= 0 {
		cfg.MaxDecompressedPerRequest = DefaultMaxDecompressedPerRequest
	}
	if cfg.MaxDecompressedPerConnection <= 0 {
		cfg.MaxDecompressedPerConnection = DefaultMaxDecompressedPerConnection
	}
	if cfg.decompress == nil {
		cfg.decompress = codec.Decompress
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 10 * time.Second
	}
	if cfg.SessionLifetime < 0 {
		cfg.SessionLifetime = 0
	}
	if cfg.SessionLifetime > 0 {
		// The client is told whole milliseconds; expire when it was told.
		cfg.SessionLifetime = max(cfg.SessionLifetime.Truncate(time.Millisecond), time.Millisecond)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = DefaultPartitions
	}
	if cfg.AgentTTL <= 0 {
		cfg.AgentTTL = DefaultAgentTTL
	}
	if cfg.AgentRefresh <= 0 {
		cfg.AgentRefresh = DefaultAgentRefresh
	}
	if cfg.TxnLeaseDuration <= 0 {
		cfg.TxnLeaseDuration = DefaultTxnLeaseDuration
	}
	if cfg.TxnMaxTimeout <= 0 {
		cfg.TxnMaxTimeout = DefaultTxnMaxTimeout
	}
	s := &Server{
		cfg:   cfg,
		svc:   cfg.Service,
		log:   cfg.Logger.With("component", "kafka"),
		conns: map[*conn]struct{}{},
	}
	if cfg.MaxRequestBytes > 0 {
		s.requests = &byteBudget{max: cfg.MaxRequestBytes}
	}
	if cfg.MaxFetchInFlight > 0 {
		s.fetches = &byteBudget{max: cfg.MaxFetchInFlight}
	}
	if cfg.MaxDecompressedInFlight > 0 {
		s.decompressed = &byteBudget{max: cfg.MaxDecompressedInFlight}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.txn = &txnCoordinator{s: s, lease: cfg.TxnLeaseDuration}
	return s
}

// NodeIDFor is the broker id an agent advertising addr ("host:port") gets by
// default.
func NodeIDFor(addr string) int32 {
	h := fnv.New32a()
	h.Write([]byte(addr))
	return int32(h.Sum32() & 0x7fffffff)
}

// Listen binds the configured address, so that Addr and NodeID are known
// before Serve. Serve calls it when it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.closed {
		return errors.New("kafka: server closed")
	}
	if s.svc == nil {
		return errors.New("kafka: Config.Service is required")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka: listen: %w", err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	adv := s.cfg.Advertise
	if adv == "" {
		adv = advertiseFor(ln.Addr().(*net.TCPAddr))
	}
	host, portStr, err := net.SplitHostPort(adv)
	port, perr := strconv.ParseUint(portStr, 10, 16)
	if err != nil || perr != nil || host == "" || port == 0 {
		ln.Close()
		return fmt.Errorf("kafka: advertised address %q: want host:port with a port from 1 to 65535", adv)
	}
	s.ln, s.host, s.port = ln, host, int32(port)
	s.nodeID = s.cfg.NodeID
	if s.nodeID == 0 {
		s.nodeID = NodeIDFor(net.JoinHostPort(host, portStr))
	}
	return nil
}

func advertiseFor(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			return net.JoinHostPort(h, strconv.Itoa(a.Port))
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return a.String()
}

// Addr is the address listened on, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// NodeID is this agent's broker id (known after Listen).
func (s *Server) NodeID() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeID
}

// Advertised is the host and port clients are told to use (known after
// Listen).
func (s *Server) Advertised() (host string, port int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host, s.port
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Serve accepts connections until ctx ends or Close is called, registering
// this agent in the bucket meanwhile. Then it closes the listener and every
// connection, removes the registration and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.done != nil {
		s.mu.Unlock()
		return errors.New("kafka: Serve called twice")
	}
	s.done = make(chan struct{})
	ln := s.ln
	s.agents = newRegistry(s.svc.Log().Bucket(), agent{NodeID: s.nodeID, Addr: net.JoinHostPort(s.host, strconv.Itoa(int(s.port)))}, s.cfg.AgentTTL, s.log)
	s.mu.Unlock()
	defer close(s.done)

	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	// Registered before the first client can ask for metadata.
	s.agents.register(s.ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.agents.run(s.ctx, s.cfg.AgentRefresh)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.txn.run(s.ctx)
	}()
	go func() {
		<-s.ctx.Done()
		ln.Close()
	}()
	s.log.Info("kafka serving", "addr", ln.Addr().String(), "advertise", s.agents.self.Addr, "node_id", s.nodeID)

	var failures int
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				break
			}
			// Out of file descriptors and the like: wait, then retry.
			failures++
			s.log.Warn("kafka accept failed; retrying", "err", err)
			select {
			case <-time.After(min(time.Duration(failures)*50*time.Millisecond, time.Second)):
			case <-s.ctx.Done():
			}
			continue
		}
		failures = 0
		s.startConn(c)
	}
	s.shutdown()
	return nil
}

func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.agents.deregister(ctx)
	s.log.Info("kafka stopped")
}

// Close stops the server as the end of Serve's context does, and waits for
// Serve to return.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	done := s.done
	if done == nil {
		s.closed = true
		if s.ln != nil {
			s.ln.Close()
		}
	}
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	return nil
}

// conn is one client connection. A reader goroutine reads and decodes
// frames and starts a goroutine per request; a writer goroutine writes the
// responses in request order.
// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

type conn struct {
	s  *Server
	nc net.Conn
	// srvMu guards what this connection holds of the server-wide budgets
	// (Config.MaxRequestBytes, MaxFetchInFlight), returned whole when the
	// connection ends (srvDone), whatever its requests were doing.
	srvMu               sync.Mutex
	srvReqs, srvFetched int
	srvDone             bool
	// principal is who the client is ("User:CN=..." from a TLS client
	// certificate, "User:NAME" once SASL authenticated it; "" on a
	// plaintext listener).
	principal string
	// host is the client's IP, which ACLs may name.
	host string
	// refusals are the authorization refusals logged on this connection
	// (see refused).
	refusalsMu sync.Mutex
	refusals   map[string]bool
	// The SASL exchange, under saslMu (SASL requests are handled by the
	// reader, in order); authenticated is set when one succeeded.
	saslMu        sync.Mutex
	sasl          auth.Exchange
	authenticated atomic.Bool
	log           *slog.Logger
	ctx           context.Context
	cancel        context.CancelFunc
	queue         chan *slot
	budget        byteBudget // request bytes in flight
	// decompressed bounds the decompressed bytes of the produce requests in
	// flight (see decompression).
	decompressed *byteBudget
	// produceOrder maps a partition to the turn of the last produce request
	// on this connection that touched it: closed once that request has
	// submitted its batch (reader goroutine only).
	produceOrder map[partitionKey]chan struct{}
	once         sync.Once
	// Under saslMu too: the mechanism of the exchange under way
	// (saslNext) and of the last authentication (saslMech); reauth is
	// set while the exchange under way re-authenticates; sessionEnd is
	// when the session expires (zero: never; see Config.SessionLifetime).
	saslNext, saslMech string
	reauth             bool
	sessionEnd         time.Time
}

// slot is one request's place in the response order.
type slot struct {
	done      chan struct{}
	resp      []byte // framed response; nil writes nothing (acks=0)
	closeConn bool   // close the connection once earlier responses are out
	size      int    // the request's bytes (Config.MaxFrameBytes, MaxRequestBytes)
	fetched   int    // fetch bytes held until written (Config.MaxFetchInFlight)
}

type partitionKey struct {
	topic     string // name, or the topic id's bytes
	partition int32
}

func (s *Server) startConn(nc net.Conn) {
	ctx, cancel := context.WithCancel(s.ctx)
	host, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	c := &conn{
		s:            s,
		nc:           nc,
		host:         host,
		log:          s.log.With("remote", nc.RemoteAddr().String()),
		ctx:          ctx,
		cancel:       cancel,
		queue:        make(chan *slot, s.cfg.MaxInFlight-1),
		budget:       byteBudget{max: s.cfg.MaxFrameBytes},
		decompressed: s.decompressed,
		produceOrder: map[partitionKey]chan struct{}{},
	}
	if c.decompressed == nil {
		c.decompressed = &byteBudget{max: s.cfg.MaxDecompressedPerConnection}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	if s.cfg.RequireAuth {
		t := time.AfterFunc(s.cfg.AuthTimeout, func() {
			if !c.authenticated.Load() {
				c.log.Warn("kafka connection did not authenticate in time; closing it", "timeout", s.cfg.AuthTimeout)
				c.close()
			}
		})
		context.AfterFunc(ctx, func() { t.Stop() })
	}
	go c.readLoop()
	go c.writeLoop()
}

// close stops the connection; the loops end and the socket closes.
func (c *conn) close() {
	c.once.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer close(c.queue)
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("kafka connection reader panicked; closing the connection", "panic", p)
			c.close()
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The handshake first, within 10 s (or the idle timeout), so a
		// bad one is logged as such and the principal is known.
		tc.SetDeadline(time.Now().Add(min(c.s.cfg.IdleTimeout, handshakeTimeout)))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("kafka TLS handshake failed", "err", err)
			}
			c.close()
			return
		}
		tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		c.principal = tlsconf.Principal(&cs)
		c.log = c.log.With("principal", c.principal)
	}
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		frame, err := c.readFrame(br)
		if err != nil {
			if c.ctx.Err() == nil && !clientGone(err) {
				c.log.Warn("kafka connection closed", "err", err)
			}
			return
		}
		h, req, err := parseRequest(frame)
		if err != nil {
			var ue *unsupportedError
			if errors.As(err, &ue) {
				c.log.Warn("kafka request not supported; closing the connection as Kafka does", "err", err, "client_id", h.clientID, "correlation_id", h.correlationID)
			} else {
				c.log.Warn("kafka request malformed; closing the connection", "err", err, "bytes", len(frame))
			}
			c.releaseFrame(len(frame))
			return
		}
		isSASL := h.key == 17 || h.key == 36
		if !isSASL && h.key != apiVersionsKey && c.sessionExpired() {
			// As Kafka's broker does (KIP-368): the client may
			// re-authenticate, and nothing else, once its session is over.
			c.log.Info("kafka SASL session expired without re-authentication; closing the connection as Kafka does",
				"principal", c.principal, "api", kmsg.NameForKey(h.key), "client_id", h.clientID, "session_lifetime", c.s.cfg.SessionLifetime)
			c.releaseFrame(len(frame))
			return
		}
		if c.s.cfg.RequireAuth && !c.authenticated.Load() && !isSASL && h.key != apiVersionsKey {
			c.log.Warn("kafka request before SASL authentication; closing the connection", "api", kmsg.NameForKey(h.key), "client_id", h.clientID)
			c.releaseFrame(len(frame))
			return
		}
		sl := &slot{done: make(chan struct{}), size: len(frame)}
		select {
		case c.queue <- sl:
		case <-c.ctx.Done():
			return
		}
		turns := c.orderProduce(req)
		ctx := c.requestContext(h)
		c.s.wg.Add(1) // the reader's own count keeps the group above zero
		if isSASL {
			// In order, before the next frame is read: a request that
			// follows a successful authentication must see it.
			c.handle(ctx, h, req, sl, turns)
			if sl.closeConn {
				// A failed (re-)authentication: serve nothing sent
				// after it, not even with the principal from before.
				return
			}
			continue
		}
		go c.handle(ctx, h, req, sl, turns)
	}
}

// readFrame reads one size-prefixed frame, after waiting until the
// connection's in-flight bytes leave room for it.
func (c *conn) readFrame(br *bufio.Reader) ([]byte, error) {
	var size [4]byte
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	if _, err := io.ReadFull(br, size[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(size[:])))
	if n < 0 || n > c.s.cfg.MaxFrameBytes {
		return nil, fmt.Errorf("%w: frame of %d bytes; the limit is %d (MaxFrameBytes)", errMalformed, n, c.s.cfg.MaxFrameBytes)
	}
	if err := c.reserveFrame(n); err != nil {
		return nil, err
	}
	// Grow with the data that actually arrives rather than trusting the
	// size prefix for one large allocation.
	frame := make([]byte, 0, min(n, 64<<10))
	for len(frame) < n {
		if len(frame) == cap(frame) {
			frame = slices.Grow(frame, min(n-len(frame), cap(frame)))
		}
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		m, err := br.Read(frame[len(frame):min(cap(frame), n)])
		frame = frame[:len(frame)+m]
		if err != nil && len(frame) < n {
			c.releaseFrame(n)
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading a %d-byte frame: %w", n, err)
		}
	}
	return frame, nil
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer func() {
		c.close()
		c.releaseServerBudgets()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	}()
	for sl := range c.queue {
		select {
		case <-sl.done:
		case <-c.ctx.Done():
			return
		}
		if sl.resp != nil {
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(sl.resp); err != nil {
				switch {
				case c.ctx.Err() != nil:
				case clientGone(err):
					c.log.Debug("kafka client went away before its response", "err", err)
				default:
					c.log.Warn("kafka write failed; closing the connection", "err", err)
				}
				return
			}
		}
		c.releaseFrame(sl.size)
		c.releaseFetched(sl.fetched)
		if sl.closeConn {
			return
		}
	}
}

// clientGone reports whether a connection error only means that the client
// closed or reset the connection. That is routine, not worth a warning:
// clients exit with requests in flight, such as a consumer's fetch waiting
// for records or a heartbeat, and librdkafka resets connections it closes
// with responses unread.
func clientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// produceTurns orders a produce request's partitions behind the earlier
// produce requests on the same connection: a partition's batch is submitted
// to the log only once the previous request's batch for that partition has
// been submitted (not committed). Requests pipeline, and offsets still follow
// arrival order, as on a broker that handles a connection's requests in
// order.
type produceTurns struct {
	prev map[partitionKey]chan struct{}
	mu   sync.Mutex
	mine map[partitionKey]chan struct{}
	// decompressed is the connection's budget of decompressed bytes.
	decompressed *byteBudget
}

// wait blocks until it is this request's turn to submit partition k.
func (t *produceTurns) wait(ctx context.Context, k partitionKey) error {
	if t == nil || t.prev[k] == nil {
		return nil
	}
	select {
	case <-t.prev[k]:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pass lets the next request submit partition k. It is idempotent.
func (t *produceTurns) pass(k partitionKey) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.mine[k]; ok {
		close(ch)
		delete(t.mine, k)
	}
}

// passAll passes every partition not passed yet (failures, skips).
func (t *produceTurns) passAll() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, ch := range t.mine {
		close(ch)
		delete(t.mine, k)
	}
}

// orderProduce takes this request's turns for its partitions, behind the
// earlier requests on this connection (reader goroutine only).
func (c *conn) orderProduce(req kmsg.Request) *produceTurns {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		return nil
	}
	t := &produceTurns{prev: map[partitionKey]chan struct{}{}, mine: map[partitionKey]chan struct{}{}, decompressed: c.decompressed}
	for _, tp := range pr.Topics {
		name := tp.Topic
		if pr.Version >= 13 {
			name = string(tp.TopicID[:])
		}
		for _, p := range tp.Partitions {
			k := partitionKey{name, p.Partition}
			if _, dup := t.mine[k]; dup {
				continue
			}
			if prev, ok := c.produceOrder[k]; ok {
				select {
				case <-prev:
				default:
					t.prev[k] = prev
				}
			}
			t.mine[k] = make(chan struct{})
			c.produceOrder[k] = t.mine[k]
		}
	}
	if len(c.produceOrder) > 4096 {
		for k, ch := range c.produceOrder {
			select {
			case <-ch:
				delete(c.produceOrder, k)
			default:
			}
		}
	}
	return t
}

func (c *conn) handle(ctx context.Context, h header, req kmsg.Request, sl *slot, turns *produceTurns) {
	defer c.s.wg.Done()
	defer close(sl.done)
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("kafka request handler panicked; closing the connection", "api", kmsg.NameForKey(h.key), "version", h.version, "panic", p)
			sl.resp, sl.closeConn = nil, true
		}
	}()
	defer turns.passAll() // whatever happens, later requests must not wait forever
	start := time.Now()
	if h.key == 1 && c.s.fetches != nil {
		held := &fetchHold{b: c.s.fetches, max: c.s.cfg.MaxFetchBytes}
		ctx = context.WithValue(ctx, fetchHoldKey{}, held)
		// Runs before close(sl.done): the write loop releases it once
		// the response is written (or the connection's end does).
		defer func() { sl.fetched = c.keepFetched(held.n) }()
	}
	resp, closeConn := c.s.dispatch(ctx, c, h, req, turns)
	observeRequest(h.key, start, req, resp)
	sl.closeConn = closeConn
	if resp != nil {
		sl.resp = appendResponse(nil, h, resp)
	}
}

// reserveFrame waits until the connection's in-flight request bytes, and
// the server's (Config.MaxRequestBytes), leave room for n more.
func (c *conn) reserveFrame(n int) error {
	if err := c.budget.acquire(c.ctx, n); err != nil {
		return err
	}
	if c.s.requests != nil {
		if err := c.s.requests.acquire(c.ctx, n); err != nil {
			c.budget.release(n)
			return err
		}
		c.srvMu.Lock()
		defer c.srvMu.Unlock()
		if c.srvDone {
			c.s.requests.release(n)
			c.budget.release(n)
			return net.ErrClosed
		}
		c.srvReqs += n
	}
	return nil
}

func (c *conn) releaseFrame(n int) {
	c.budget.release(n)
	if c.s.requests == nil {
		return
	}
	c.srvMu.Lock()
	defer c.srvMu.Unlock()
	if !c.srvDone {
		c.srvReqs -= n
		c.s.requests.release(n)
	}
}

// keepFetched records n fetch bytes held by a response until it is
// written, and returns what the write loop is to release.
func (c *conn) keepFetched(n int) int {
	c.srvMu.Lock()
	defer c.srvMu.Unlock()
	if c.srvDone {
		c.s.fetches.release(n)
		return 0
	}
	c.srvFetched += n
	return n
}

func (c *conn) releaseFetched(n int) {
	if n == 0 {
		return
	}
	c.srvMu.Lock()
	defer c.srvMu.Unlock()
	if !c.srvDone {
		c.srvFetched -= n
		c.s.fetches.release(n)
	}
}

// releaseServerBudgets returns all this connection holds of the server's
// budgets: it has ended, and its requests' responses will not be written.
func (c *conn) releaseServerBudgets() {
	c.srvMu.Lock()
	defer c.srvMu.Unlock()
	c.srvDone = true
	c.s.requests.release(c.srvReqs)
	c.s.fetches.release(c.srvFetched)
	c.srvReqs, c.srvFetched = 0, 0
}

// fetchHold is the share of Config.MaxFetchInFlight one Fetch holds: what
// its response takes, from before it reads the records until the response
// is written.
type fetchHold struct {
	b   *byteBudget
	max int // Config.MaxFetchBytes: the most one response holds
	n   int
}

type fetchHoldKey struct{}

// holdFor returns the fetch's hold, nil when fetches are not bounded.
func holdFor(ctx context.Context) *fetchHold {
	h, _ := ctx.Value(fetchHoldKey{}).(*fetchHold)
	return h
}

// take reserves up to want bytes for records about to be read and returns
// how many it got (at least 1 unless it got nothing: then the fetch stops
// gathering). A fetch holding nothing waits for room; one holding some
// takes only what is free at once, so fetches never wait on each other
// while holding bytes.
func (h *fetchHold) take(ctx context.Context, want int) (int, error) {
	if h == nil {
		return want, nil
	}
	want = min(want, h.max-h.n)
	if want <= 0 {
		return 0, nil
	}
	if h.n == 0 {
		if err := h.b.acquire(ctx, want); err != nil {
			return 0, err
		}
	} else if !h.b.tryAcquire(want) {
		return 0, nil
	}
	h.n += want
	return want, nil
}

// give returns n bytes taken but not used.
func (h *fetchHold) give(n int) {
	if h == nil || n <= 0 {
		return
	}
	h.n -= n
	h.b.release(n)
}

// reset returns everything held: the fetch gathers again after a wait.
func (h *fetchHold) reset() {
	if h != nil {
		h.give(h.n)
	}
}

// byteBudget bounds the bytes a connection has in flight: request bytes, or
// decompressed bytes. A reservation is always admitted when nothing else is
// in flight, so one larger than the bound waits for the rest to drain
// rather than forever.
type byteBudget struct {
	mu    sync.Mutex
	used  int
	max   int
	freed chan struct{} // closed by the next release; nil while nobody waits
}

func (b *byteBudget) acquire(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryAcquire reserves n bytes if they fit now.
func (b *byteBudget) tryAcquire(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == 0 || b.used+n <= b.max {
		b.used += n
		return true
	}
	return false
}

// release returns n bytes and wakes every waiter: several may fit now. A
// nil budget bounds nothing.
func (b *byteBudget) release(n int) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
}
