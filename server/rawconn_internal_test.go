package server

import (
	"net"
	"testing"
)

// TestLimitConnTCPConn: the connection limit's wrapper passes its TCP
// connection through (for the engine's inline and vectored writes), and nothing for
// a connection that is not TCP.
func TestLimitConnTCPConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := (&limitConn{Conn: c}).TCPConn(); got != c.(*net.TCPConn) {
		t.Fatalf("TCPConn() = %v, want the connection under the limit", got)
	}
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if got := (&limitConn{Conn: p}).TCPConn(); got != nil {
		t.Fatalf("TCPConn() of a pipe = %v, want nil", got)
	}
}
