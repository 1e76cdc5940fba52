package server

import (
	"errors"
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
