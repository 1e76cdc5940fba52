package server

import (
	"bytes"
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// connState is what the server keeps about one Engine.IO connection (one
// client, over which it may join several namespaces).
//
// zishang520 decodes a client's packets on the transport's goroutine but
// processes them later, on the socket's task queue, whereas it handles the
// end of the transport at once. When a client sends DISCONNECT and closes the
// connection right after (what socket.disconnect() does when it is the
// client's last namespace), the close often wins: the socket ends with
// "transport close" instead of "client namespace disconnect", which Node
// always reports. connState watches the packets as they arrive, in order, so
// that the reason can be told right (TestEmitThenDisconnect).
type connState struct {
	mu sync.Mutex
	// leaving holds the namespaces whose last packet from the client was a
	// DISCONNECT (a later CONNECT removes it).
	leaving map[string]bool
	// sockets are the wrapped sockets of the connection, so that those that
	// never finished connecting are forgotten when the connection ends.
	sockets map[*socket.Socket]struct{}
}

// trackConnections follows every Engine.IO connection. Its listener runs
// after socket.io's own, so that the client is set up first.
func (s *Server) trackConnections() {
	_ = s.io.Engine().On("connection", func(args ...any) {
		if len(args) == 0 {
			return
		}
		conn, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		cs := &connState{leaving: map[string]bool{}, sockets: map[*socket.Socket]struct{}{}}
		s.conns.Store(conn, cs)
		_ = conn.On("packet", func(a ...any) { cs.observe(a) })
		_ = conn.Once("close", func(...any) { s.dropConn(conn, cs) })
		if conn.ReadyState() == "closed" {
			s.dropConn(conn, cs)
		}
	})
}

func (s *Server) connState(conn engine.Socket) *connState {
	if v, ok := s.conns.Load(conn); ok {
		return v.(*connState)
	}
	return nil
}

// dropConn forgets a closed connection and the sockets it still had (those
// whose connection to a namespace never completed).
func (s *Server) dropConn(conn engine.Socket, cs *connState) {
	s.conns.Delete(conn)
	cs.mu.Lock()
	left := make([]*socket.Socket, 0, len(cs.sockets))
	for raw := range cs.sockets {
		left = append(left, raw)
	}
	clear(cs.sockets)
	cs.mu.Unlock()
	for _, raw := range left {
		if !raw.Connected() {
			s.forget(raw)
		}
	}
}

// observe notes CONNECT and DISCONNECT packets. It runs on the transport's
// goroutine, in arrival order, before zishang520 decodes the packet: it must
// not consume the buffer.
func (cs *connState) observe(args []any) {
	if len(args) == 0 {
		return
	}
	p, ok := args[0].(*packet.Packet)
	if !ok || p.Type != packet.MESSAGE {
		return
	}
	sb, ok := p.Data.(*types.StringBuffer)
	if !ok || sb == nil || sb.Buffer == nil {
		return
	}
	b := sb.Bytes()
	if len(b) == 0 || (b[0] != '0' && b[0] != '1') {
		return
	}
	nsp := "/"
	if len(b) > 1 && b[1] == '/' {
		end := bytes.IndexAny(b, ",?")
		if end < 0 {
			end = len(b)
		}
		nsp = string(b[1:end])
	}
	cs.mu.Lock()
	if b[0] == '1' {
		cs.leaving[nsp] = true
	} else {
		delete(cs.leaving, nsp)
	}
	cs.mu.Unlock()
}

func (cs *connState) add(raw *socket.Socket) {
	cs.mu.Lock()
	cs.sockets[raw] = struct{}{}
	cs.mu.Unlock()
}

func (cs *connState) remove(raw *socket.Socket) {
	cs.mu.Lock()
	delete(cs.sockets, raw)
	cs.mu.Unlock()
}

func (cs *connState) isLeaving(nsp string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.leaving[nsp]
}

// disconnectReason corrects zishang520's reason for a socket's end: see
// connState.
func (s *Server) disconnectReason(raw *socket.Socket, reason string) string {
	if reason != "transport close" && reason != "transport error" {
		return reason
	}
	if cs := s.connState(raw.Conn()); cs != nil && cs.isLeaving(raw.Nsp().Name()) {
		return "client namespace disconnect"
	}
	return reason
}
