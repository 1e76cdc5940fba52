package server

import "net"

// TCPConn returns the TCP connection under the limit, nil if it is not one
// (TLS): the engine writes to its descriptor without waiting (inline
// writes) and large batches with one writev(2), which net.Buffers does only
// for the net package's own connections. Writing
// under the wrapper changes nothing: limitConn only clamps deadlines (set
// on the same descriptor) and counts Close.
func (c *limitConn) TCPConn() *net.TCPConn {
	tc, _ := c.Conn.(*net.TCPConn)
	return tc
}
