package server

import (
	"bytes"
	"sync"
	"time"

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
	// joining holds, for each namespace whose CONNECT reply is written but
	// whose socket zishang520 has not registered yet, a channel closed once
	// it has: see connectGate.
	joining map[string]chan struct{}
	// gated reports whether a namespace opens its gate (only those the
	// server instrumented fire the hook; one made through Raw() does not,
	// and is not gated).
	gated func(nsp string) bool
}

// connectGateTimeout bounds how long a client's packet waits for its
// namespace's registration (see connectGate); the wait is normally a few
// microseconds, this is only a guard against a registration that never
// completes.
const connectGateTimeout = 2 * time.Second

// connectGate corrects a race of zishang520's socket.io server. A namespace
// writes its CONNECT reply (Socket._onconnect) before the client records
// the namespace's socket (the callback of namespace.Add, which stores it in
// Client.nsps), and those run on the namespace's goroutine while the
// client's packets are decoded on the transport's. A client that emits as
// soon as it reads the reply (the official client does, with what it
// buffered) can have its event decoded in between: zishang520 then finds no
// socket for the namespace, logs "invalid state" and closes the whole
// connection ("forced close"). Node runs both on one thread, so the reply
// and the registration are never apart there. The gate opens when
// the namespace fires "connection", which zishang520 does right after the
// registration; until then, a packet of the client for that namespace
// waits in observe, before zishang520 decodes it.
func (cs *connState) connectReplySent(nsp string) {
	cs.mu.Lock()
	if _, ok := cs.joining[nsp]; !ok {
		cs.joining[nsp] = make(chan struct{})
	}
	cs.mu.Unlock()
}

// registered opens the gate of nsp.
func (cs *connState) registered(nsp string) {
	cs.mu.Lock()
	if ch, ok := cs.joining[nsp]; ok {
		close(ch)
		delete(cs.joining, nsp)
	}
	cs.mu.Unlock()
}

// waitRegistered blocks while nsp's gate is closed, up to
// connectGateTimeout.
func (cs *connState) waitRegistered(nsp string) {
	cs.mu.Lock()
	ch, ok := cs.joining[nsp]
	cs.mu.Unlock()
	if !ok {
		return
	}
	t := time.NewTimer(connectGateTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		// Never registered through a namespace we instrument: stop
		// gating it rather than delay each packet again.
		cs.mu.Lock()
		if cs.joining[nsp] == ch {
			close(ch)
			delete(cs.joining, nsp)
		}
		cs.mu.Unlock()
	}
}

// openAll opens every gate: the connection is gone.
func (cs *connState) openAll() {
	cs.mu.Lock()
	for nsp, ch := range cs.joining {
		close(ch)
		delete(cs.joining, nsp)
	}
	cs.mu.Unlock()
}

// trackConnections follows every Engine.IO connection, for the connect
// gate (connState) and the Engine.IO metrics, with one listener per event:
// the engine socket's emitter is a good part of each packet's cost, and
// every listener is another call on every packet. Its listener runs after
// socket.io's own, so that the client is set up first.
func (s *Server) trackConnections() {
	m := s.metrics
	_ = s.io.Engine().On("connection", func(args ...any) {
		if len(args) == 0 {
			return
		}
		conn, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		m.engineConns.Inc()
		cs := &connState{
			leaving: map[string]bool{},
			sockets: map[*socket.Socket]struct{}{},
			joining: map[string]chan struct{}{},
			gated: func(nsp string) bool {
				_, ok := s.metrics.gatedNames.Load(nsp)
				return ok
			},
		}
		s.conns.Store(conn, cs)
		// The metrics first: observe may hold a packet (the gate).
		_ = conn.On("packet", func(a ...any) {
			p := packetArg(a)
			m.packetReceived(p)
			cs.observe(p)
		})
		_ = conn.On("packetCreate", func(a ...any) {
			p := packetArg(a)
			m.packetQueued(p)
			cs.observeOut(p)
		})
		// A connection closed before this listener ran gets no "close"
		// event: the state is checked too, and the close handled once.
		var once sync.Once
		closed := func(...any) {
			once.Do(func() {
				m.engineConns.Dec()
				s.dropConn(conn, cs)
			})
		}
		_ = conn.Once("close", closed)
		if conn.ReadyState() == "closed" {
			closed()
		}
	})
}

// packetArg is the *packet.Packet an engine socket's "packet" and
// "packetCreate" events carry, or nil.
func packetArg(args []any) *packet.Packet {
	if len(args) == 0 {
		return nil
	}
	p, _ := args[0].(*packet.Packet)
	return p
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
	cs.openAll()
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

// observe notes CONNECT and DISCONNECT packets, and holds any other packet
// of a namespace whose registration is under way (see connectGate). It runs
// on the transport's goroutine, in arrival order, before zishang520 decodes
// the packet: it must not consume the buffer.
func (cs *connState) observe(p *packet.Packet) {
	if p == nil || p.Type != packet.MESSAGE {
		return
	}
	typ, nsp, ok := socketIOHeader(p.Data)
	if !ok {
		return
	}
	if typ != '0' && typ != '1' {
		cs.waitRegistered(nsp)
		return
	}
	cs.mu.Lock()
	if typ == '1' {
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

// observeOut notes the CONNECT replies the server writes: see connectGate.
func (cs *connState) observeOut(p *packet.Packet) {
	if p == nil || p.Type != packet.MESSAGE {
		return
	}
	if typ, nsp, ok := socketIOHeader(p.Data); ok && typ == '0' && (cs.gated == nil || cs.gated(nsp)) {
		cs.connectReplySent(nsp)
	}
}

// socketIOHeader reads the type and namespace of the Socket.IO packet in
// an Engine.IO message's data, without consuming it. Binary data (the
// attachments of a binary packet) has no header: ok is false.
func socketIOHeader(data any) (typ byte, nsp string, ok bool) {
	sb, isString := data.(*types.StringBuffer)
	if !isString || sb == nil || sb.Buffer == nil {
		return 0, "", false
	}
	b := sb.Bytes()
	if len(b) == 0 {
		return 0, "", false
	}
	// A binary event or ack ("5", "6") carries its attachment count
	// before the namespace: "51-/chat,[...]".
	rest := b[1:]
	if b[0] == '5' || b[0] == '6' {
		if i := bytes.IndexByte(rest, '-'); i >= 0 {
			rest = rest[i+1:]
		}
	}
	nsp = "/"
	if len(rest) > 0 && rest[0] == '/' {
		end := bytes.IndexAny(rest, ",?")
		if end < 0 {
			end = len(rest)
		}
		nsp = string(rest[:end])
	}
	return b[0], nsp, true
}
