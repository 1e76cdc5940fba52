package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// faultProxy is the TCP proxy between one node and Redis in a soak run: Cut
// severs that node's Redis connections (and refuses new ones) until
// Restore, without touching the other node's. internal/redistest has a
// richer one, but it is built on testing.TB; this one belongs to the
// command. Its goroutines are owned by it: Close stops and waits for them.
type faultProxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string
	cut    bool
	closed bool
	conns  map[net.Conn]struct{} // both sides of every live connection
	cuts   int                   // connections severed by Cut, for the report
}

// newFaultProxy listens on a free loopback port and forwards to target
// ("host:port").
func newFaultProxy(target string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy: %w", err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes where new connections go (Redis restarted on another
// port); live ones are left alone.
func (p *faultProxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Cut closes every connection with a reset and, until Restore, resets every
// new one as soon as it is accepted. It returns how many connections it
// severed (each pair counted once per side).
func (p *faultProxy) Cut() int {
	p.mu.Lock()
	p.cut = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.cuts += len(conns)
	p.mu.Unlock()
	for _, c := range conns {
		reset(c)
	}
	return len(conns)
}

// Restore forwards again after Cut.
func (p *faultProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the listener, closes every connection and waits for every
// goroutine of the proxy.
func (p *faultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// track registers c; false (c closed) when the proxy is cut or closed.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		reset(c)
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: not a reason to stop the run.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		return // the client sees its connection close, as with Redis down
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		_, _ = io.Copy(server, client)
		_ = server.Close()
	}()
	_, _ = io.Copy(client, server)
	_ = client.Close()
	<-done
}
