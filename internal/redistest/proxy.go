package redistest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

type proxyState int

const (
	stateForward proxyState = iota
	stateCut
	stateBlackhole
)

// proxyDialTimeout bounds the proxy's dial of its target.
const proxyDialTimeout = 5 * time.Second

// Proxy is a fault-injecting TCP proxy on a loopback port. It starts in the
// forwarding state. All methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	ctx    context.Context // cancelled by Close; aborts dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the proxy started

	mu      sync.Mutex
	state   proxyState
	changed chan struct{} // closed and replaced on every state change
	closed  bool
	conns   map[*proxyConn]struct{}

	closeOnce sync.Once
}

// proxyConn is one accepted client connection and, once dialed, its
// connection to the target.
type proxyConn struct {
	client net.Conn
	done   chan struct{} // closed by close

	mu     sync.Mutex
	server net.Conn
	closed bool
}

func (pc *proxyConn) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.closed = true
	close(pc.done)
	pc.client.Close()
	if pc.server != nil {
		pc.server.Close()
	}
}

// setServer attaches the target connection; false (and the connection
// closed) if pc was closed meanwhile.
func (pc *proxyConn) setServer(s net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		s.Close()
		return false
	}
	pc.server = s
	return true
}

// NewProxy starts a proxy on a free 127.0.0.1 port forwarding every
// connection to target ("host:port"). t.Cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:      ln,
		target:  target,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   map[*proxyConn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Conns returns the number of live client connections (forwarding, being
// dialed, or held by Blackhole).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut closes every current connection (both sides) and, until Restore,
// resets every new connection right after accepting it: a client's dial may
// succeed but its first read or write fails with "connection reset" or EOF.
// The listener stays open so that no other process can take the port.
func (p *Proxy) Cut() { p.setState(stateCut) }

// Blackhole stalls the proxy to simulate a hang: new connections are
// accepted but not dialed, and bytes already read from either side of a
// connection are held instead of forwarded (the proxy stops reading, so the
// kernel buffers fill). Restore delivers the held bytes and resumes; Cut
// closes everything.
func (p *Proxy) Blackhole() { p.setState(stateBlackhole) }

// Restore returns to forwarding after Cut or Blackhole. Connections closed
// by Cut stay closed; clients must reconnect.
func (p *Proxy) Restore() { p.setState(stateForward) }

// Close stops the listener, closes every connection and waits for every
// goroutine of the proxy to return. It is idempotent.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.changed)
		conns := p.takeConnsLocked()
		p.mu.Unlock()
		p.cancel()
		p.ln.Close()
		for _, pc := range conns {
			pc.close()
		}
		p.wg.Wait()
	})
}

func (p *Proxy) setState(st proxyState) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.state = st
	close(p.changed)
	p.changed = make(chan struct{})
	var conns []*proxyConn
	if st == stateCut {
		conns = p.takeConnsLocked()
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
}

func (p *Proxy) takeConnsLocked() []*proxyConn {
	out := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		out = append(out, pc)
		delete(p.conns, pc)
	}
	return out
}

func (p *Proxy) remove(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // for example EMFILE
			continue
		}
		p.mu.Lock()
		switch {
		case p.closed:
			p.mu.Unlock()
			c.Close()
			return
		case p.state == stateCut:
			p.mu.Unlock()
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // close with RST
			}
			c.Close()
			continue
		}
		pc := &proxyConn{client: c, done: make(chan struct{})}
		p.conns[pc] = struct{}{}
		// Add under p.mu while not closed, so it never races with Close's Wait.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(pc)
	}
}

// waitForward blocks while the proxy is blackholed. It returns true when
// forwarding, false when cut, closed, or pc was closed.
func (p *Proxy) waitForward(pc *proxyConn) bool {
	for {
		p.mu.Lock()
		st, closed, changed := p.state, p.closed, p.changed
		p.mu.Unlock()
		switch {
		case closed || st == stateCut:
			return false
		case st == stateForward:
			select {
			case <-pc.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-changed:
		case <-pc.done:
			return false
		}
	}
}

func (p *Proxy) handle(pc *proxyConn) {
	defer p.wg.Done()
	defer p.remove(pc)
	if !p.waitForward(pc) {
		return
	}
	d := net.Dialer{Timeout: proxyDialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		return // the deferred remove closes the client: it sees EOF
	}
	if !pc.setServer(server) {
		return
	}
	p.wg.Add(1) // safe: this goroutine is counted, so the counter is > 0
	go func() {
		defer p.wg.Done()
		p.pipe(pc, pc.client, server)
		pc.close()
	}()
	p.pipe(pc, server, pc.client)
}

// pipe copies src to dst until either fails or the proxy is cut or closed,
// holding each chunk while the proxy is blackholed.
func (p *Proxy) pipe(pc *proxyConn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitForward(pc) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
