package eio

import (
	"net"
	"testing"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// wrappedTCP is a connection wrapper that says which TCP connection it
// writes to, as the server's connection limit does.
type wrappedTCP struct{ net.Conn }

func (w wrappedTCP) TCPConn() *net.TCPConn { tc, _ := w.Conn.(*net.TCPConn); return tc }

// TestTCPOf: large batches go out with one writev(2), and inline writes go
// to the descriptor, on a TCP connection, bare or under a wrapper that
// passes it through, never on anything else.
func TestTCPOf(t *testing.T) {
	a, _ := tcpPair(t)
	if tcpOf(a) != a {
		t.Fatal("tcpOf(*net.TCPConn) is not the connection")
	}
	if tcpOf(wrappedTCP{a}) != a {
		t.Fatal("tcpOf(wrapper) is not the connection under it")
	}
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if tcpOf(p) != nil || tcpOf(wrappedTCP{p}) != nil {
		t.Fatal("tcpOf found a TCP connection in a pipe")
	}
	if inlineWrites && (rawOf(a) == nil || rawOf(wrappedTCP{a}) == nil) {
		t.Fatal("no descriptor for inline writes on a TCP connection")
	}
	if rawOf(p) != nil || rawOf(wrappedTCP{p}) != nil {
		t.Fatal("rawOf found a descriptor in a pipe")
	}
}

// TestRawOfUnix: a bare Unix socket gets inline writes too.
func TestRawOfUnix(t *testing.T) {
	if !inlineWrites {
		t.Skip("no inline writes on this platform")
	}
	path := t.TempDir() + "/s"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skip("no Unix sockets here:", err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rawOf(c) == nil {
		t.Fatal("no descriptor for inline writes on a Unix socket")
	}
}
