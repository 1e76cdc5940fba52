package server

import (
	"errors"
	"net"
	"syscall"
)

// errNoRawConn: the connection under a limitConn has no descriptor (TLS).
var errNoRawConn = errors.New("server: connection has no raw descriptor")

// SyscallConn passes the descriptor of the connection under the limit
// through, so that the engine can write to it without waiting
// (internal/eio's inline writes); deadlines are not involved there.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoRawConn
}

// TCPConn returns the TCP connection under the limit, nil if it is not one
// (TLS): the engine writes large batches to it with one writev(2), which
// net.Buffers does only for the net package's own connections. Writing
// under the wrapper changes nothing: limitConn only clamps deadlines (set
// on the same descriptor) and counts Close.
func (c *limitConn) TCPConn() *net.TCPConn {
	tc, _ := c.Conn.(*net.TCPConn)
	return tc
}
