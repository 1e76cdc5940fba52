package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Namespace is a Socket.IO namespace: a channel with its own handlers,
// middlewares, rooms and sockets over the clients' shared connections. A
// Namespace from OfDynamic stands for every namespace it serves: its
// broadcasts and socket operations reach all of them.
type Namespace struct {
	raw socket.Namespace
	srv *Server
}

// Of returns the namespace named name ("/" is the main one), creating it.
func (s *Server) Of(name string) *Namespace {
	n := &Namespace{raw: s.io.Of(name, nil), srv: s}
	s.instrument(n.raw)
	return n
}

// OfDynamic serves every namespace whose name match accepts: a client may
// connect to any such name, and the namespace is created on first use; a
// client asking for a name that no namespace serves gets a connect_error
// "Invalid namespace". Register the handlers and middlewares on the returned
// Namespace before clients connect: a namespace created earlier keeps the
// ones it was created with (as in Node). Socket.Namespace tells which
// namespace a socket is in.
func (s *Server) OfDynamic(match func(name string, auth map[string]any) bool) *Namespace {
	fn := func(name string, auth map[string]any, next func(error, bool)) {
		next(nil, match(name, auth))
	}
	n := &Namespace{raw: s.io.Of(socket.ParentNspNameMatchFn(&fn), nil), srv: s}
	s.instrument(n.raw)
	return n
}

// OnConnection registers a handler for each new connection to the main
// namespace "/".
func (s *Server) OnConnection(h func(*Socket)) { s.Of("/").OnConnection(h) }

// Use adds a middleware to the main namespace "/".
func (s *Server) Use(mw Middleware) { s.Of("/").Use(mw) }

// Emit sends an event to every client of the main namespace, cluster-wide.
func (s *Server) Emit(event string, args ...any) error { return s.Of("/").Emit(event, args...) }

// To broadcasts to rooms of the main namespace.
func (s *Server) To(rooms ...string) *Broadcast { return s.Of("/").To(rooms...) }

// In is To.
func (s *Server) In(rooms ...string) *Broadcast { return s.To(rooms...) }

// Except broadcasts to every socket of the main namespace not in any of rooms.
func (s *Server) Except(rooms ...string) *Broadcast { return s.Of("/").Except(rooms...) }

// DisconnectSockets disconnects every socket of the main namespace,
// cluster-wide; with closeConn their connections are closed too.
func (s *Server) DisconnectSockets(closeConn bool) { s.Of("/").DisconnectSockets(closeConn) }

// Name is the namespace's name, such as "/" or "/chat". A Namespace from
// OfDynamic has an internal name of zishang520's, such as "/_0".
func (n *Namespace) Name() string { return n.raw.Name() }

// OnConnection registers a handler for each new connection to the namespace.
// It runs on the socket's handler goroutine, before any event handler.
func (n *Namespace) OnConnection(h func(*Socket)) {
	_ = n.raw.On("connection", func(args ...any) {
		if len(args) == 0 {
			return
		}
		if raw, ok := args[0].(*socket.Socket); ok {
			sock := n.srv.wrap(raw)
			sock.queue.push(func() { h(sock) })
		}
	})
}

// Middleware runs for every incoming connection before it is accepted, on the
// connection's read goroutine. An error rejects the connection: the client
// receives its message (and the Data of a *ConnectError) in a connect_error
// event.
type Middleware func(*Socket) error

// ConnectError rejects a connection with a message and data the client sees.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return e.Message }

// Use adds a middleware; middlewares run in the order they were added.
func (n *Namespace) Use(mw Middleware) {
	n.raw.Use(func(raw *socket.Socket, next func(*socket.ExtendedError)) {
		sock := n.srv.wrap(raw)
		err := mw(sock)
		if err == nil {
			next(nil)
			return
		}
		n.srv.forget(raw)
		var ce *ConnectError
		if errors.As(err, &ce) {
			next(socket.NewExtendedError(ce.Message, toWire(ce.Data)))
			return
		}
		next(socket.NewExtendedError(err.Error(), nil))
	})
}

// Emit sends an event to every client of the namespace, cluster-wide.
func (n *Namespace) Emit(event string, args ...any) error {
	return n.all().Emit(event, args...)
}

// To broadcasts to the sockets in any of rooms.
func (n *Namespace) To(rooms ...string) *Broadcast { return n.all().To(rooms...) }

// In is To.
func (n *Namespace) In(rooms ...string) *Broadcast { return n.To(rooms...) }

// Except broadcasts to every socket not in any of rooms.
func (n *Namespace) Except(rooms ...string) *Broadcast { return n.all().Except(rooms...) }

// Local broadcasts to the sockets of this node only.
func (n *Namespace) Local() *Broadcast { return n.all().Local() }

// Volatile broadcasts without buffering: clients not ready to receive miss it.
func (n *Namespace) Volatile() *Broadcast { return n.all().Volatile() }

func (n *Namespace) all() *Broadcast { return &Broadcast{srv: n.srv, nsp: n.raw} }

// FetchSockets returns every socket of the namespace, cluster-wide.
func (n *Namespace) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return n.all().FetchSockets(ctx)
}

// SocketsJoin makes every socket of the namespace join rooms, cluster-wide.
func (n *Namespace) SocketsJoin(rooms ...string) { n.all().SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the namespace leave rooms, cluster-wide.
func (n *Namespace) SocketsLeave(rooms ...string) { n.all().SocketsLeave(rooms...) }

// DisconnectSockets disconnects every socket of the namespace, cluster-wide;
// with closeConn their connections are closed too.
func (n *Namespace) DisconnectSockets(closeConn bool) { n.all().DisconnectSockets(closeConn) }

// ServerSideEmit sends an event to the other servers of the cluster, where
// OnServerSideEmit handlers receive it.
func (n *Namespace) ServerSideEmit(event string, args ...any) error {
	if err := n.raw.ServerSideEmit(event, toWireArgs(args)...); err != nil {
		return fmt.Errorf("server-side emit %q: %w", event, err)
	}
	return nil
}

// ServerSideEmitWithAck sends an event to the other servers and returns one
// response per server, or an error when some did not answer in time.
func (n *Namespace) ServerSideEmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	type result struct {
		args []any
		err  error
	}
	ch := make(chan result, 1)
	err := n.raw.ServerSideEmitWithAck(event, toWireArgs(args)...)(func(a []any, err error) {
		select {
		case ch <- result{fromWire(a), err}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("server-side emit %q: %w", event, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.args, fmt.Errorf("server-side emit %q: %w", event, r.err)
		}
		return r.args, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("server-side emit %q: %w", event, ctx.Err())
	}
}

// OnServerSideEmit registers a handler for an event sent by another server
// with ServerSideEmit. e.Ack answers a ServerSideEmitWithAck.
func (n *Namespace) OnServerSideEmit(event string, h func(*Event)) {
	_ = n.raw.On(event, func(args ...any) { h(newEvent(event, args)) })
}

// LocalSocketCount is the number of sockets connected to this node in the
// namespace (in all the namespaces of a dynamic one).
func (n *Namespace) LocalSocketCount() int {
	total := 0
	for _, nsp := range targets(n.raw) {
		total += nsp.Sockets().Len()
	}
	return total
}

// Raw is the underlying zishang520 namespace.
func (n *Namespace) Raw() socket.Namespace { return n.raw }

// targets are the namespaces an operation on nsp acts on: nsp itself, or the
// children of a dynamic (parent) namespace. zishang520's parent namespace
// only forwards plain broadcasts to its children: FetchSockets fails, and
// acks, SocketsJoin, SocketsLeave and DisconnectSockets see no socket at all
// (TestNamespaces, "dynamic operations").
func targets(nsp socket.Namespace) []socket.Namespace {
	if p, ok := nsp.(socket.ParentNamespace); ok {
		return p.Children().Keys()
	}
	return []socket.Namespace{nsp}
}
