package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/eio"
)

// Namespace is a Socket.IO namespace: a channel with its own handlers,
// middlewares, rooms and sockets over the clients' shared connections. A
// Namespace from OfDynamic stands for every namespace it serves: its
// broadcasts and socket operations reach all of them.
type Namespace struct {
	srv  *Server
	name string

	// adapter is the namespace's rooms, here and across the cluster; nil
	// for the parent of dynamic namespaces (its children have one each).
	adapter adapter.Adapter

	// match is set on a dynamic parent: the names it serves.
	match func(name string, auth map[string]any) bool

	mu          sync.Mutex
	sockets     map[string]*Socket // connected sockets by id
	middlewares []Middleware
	onConnect   []func(*Socket)
	serverSide  map[string][]func(*Event)
	children    []*Namespace // of a dynamic parent
	// parent is the dynamic namespace that created this one; nil for the
	// others.
	parent *Namespace
	// joining counts the connections to this child under way (lookup to
	// release), leaving the sockets gone from sockets whose disconnect
	// handlers have not run yet, removed says it was dropped as empty
	// (cleanup.go) and queued that it waits in the server's removal queue;
	// guarded by mu, used only with Config.CleanupEmptyChildNamespaces.
	joining int
	leaving int
	removed bool
	queued  bool

	// m are the namespace's series, from its first connection on
	// (metrics).
	m atomic.Pointer[nspMetrics]

	ackIDs atomic.Uint64 // ack ids of emits and broadcasts with acks
	// outgoing counts the connected sockets with OnAnyOutgoing handlers:
	// deliveries look for them only when there are some.
	outgoing atomic.Int32
	// batch holds the writes of the adapter's deliveries until its Flush
	// (local.go).
	batch eio.Batch
	// sse runs the server-side emit handlers, in order, off the adapter's
	// goroutines.
	sse handlerQueue
	// The room handlers (rooms.go): rooms is guarded by mu; roomWatch is
	// set once there is one, roomQueue runs them, roomPending counts what
	// waits for them.
	rooms       roomHandlers
	roomWatch   atomic.Bool
	roomQueue   handlerQueue
	roomPending atomic.Int32
}

func (s *Server) newNamespace(name string) *Namespace {
	n := &Namespace{srv: s, name: name, sockets: map[string]*Socket{}, serverSide: map[string][]func(*Event){}}
	n.sse.srv = s
	n.roomQueue.srv = s
	return n
}

// Of returns the namespace named name ("/" is the main one), creating it.
func (s *Server) Of(name string) *Namespace {
	if name == "" || name[0] != '/' {
		name = "/" + name
	}
	s.nspMu.Lock()
	if n, ok := s.nsps[name]; ok {
		s.nspMu.Unlock()
		return n
	}
	n := s.newNamespace(name)
	n.adapter = s.newAdapter((*local)(n))
	s.nsps[name] = n
	s.nspMu.Unlock()
	s.newNamespaceCreated(n)
	return n
}

// OnNewNamespace registers a handler called with each namespace created
// from now on (Node's io.on("new_namespace")): by Of, and a dynamic
// namespace's child when its first client asks for it, before that client
// connects. It runs on the goroutine that creates the namespace (for a
// dynamic child, the client's reading goroutine, as OfDynamic's match
// function): keep it short. Register handlers and middlewares on the
// namespace there, for its first socket already.
func (s *Server) OnNewNamespace(h func(*Namespace)) {
	s.nspMu.Lock()
	s.onNewNsp = append(s.onNewNsp, h)
	s.nspMu.Unlock()
}

// newNamespaceCreated runs the OnNewNamespace handlers for n, a panic
// logged.
func (s *Server) newNamespaceCreated(n *Namespace) {
	s.nspMu.Lock()
	hs := s.onNewNsp
	s.nspMu.Unlock()
	for _, h := range hs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("sockstream: OnNewNamespace handler panicked", "nsp", n.name, "panic", r)
				}
			}()
			h(n)
		}()
	}
}

// OfDynamic serves every namespace whose name match accepts: a client may
// connect to any such name, and the namespace is created on first use; a
// client asking for a name that no namespace serves gets a connect_error
// "Invalid namespace". Register the handlers and middlewares on the returned
// Namespace before clients connect: a namespace created earlier keeps the
// ones it was created with (as in Node). Socket.Namespace tells which
// namespace a socket is in. With Config.CleanupEmptyChildNamespaces a
// child is removed once empty and created afresh when a client comes back.
func (s *Server) OfDynamic(match func(name string, auth map[string]any) bool) *Namespace {
	s.nspMu.Lock()
	defer s.nspMu.Unlock()
	n := s.newNamespace(fmt.Sprintf("/_%d", len(s.parents)))
	n.match = match
	s.parents = append(s.parents, n)
	return n
}

// lookup returns the namespace a client asks for, creating a dynamic one
// when a parent matches; nil when none serves the name. The caller calls
// release on the namespace returned once it is done with it: until then a
// child namespace is not removed as empty (CleanupEmptyChildNamespaces).
func (s *Server) lookup(name string, auth map[string]any) *Namespace {
	s.nspMu.Lock()
	n, ok := s.nsps[name]
	if ok {
		// Under nspMu, which removal holds too: n is not being removed.
		n.reserve()
	}
	parents := slices.Clone(s.parents)
	s.nspMu.Unlock()
	if ok {
		return n
	}
	for _, p := range parents {
		if !p.matches(name, auth) {
			continue
		}
		s.nspMu.Lock()
		if n, ok := s.nsps[name]; ok { // created meanwhile
			n.reserve()
			s.nspMu.Unlock()
			return n
		}
		child := p.child(name)
		child.adapter = s.newAdapter((*local)(child))
		child.reserve()
		s.nsps[name] = child
		s.nspMu.Unlock()
		s.newNamespaceCreated(child)
		return child
	}
	return nil
}

// matches runs the parent's match function, a panic counting as no.
func (n *Namespace) matches(name string, auth map[string]any) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			n.srv.log.Error("sockstream: OfDynamic match panicked", "nsp", name, "panic", r)
			ok = false
		}
	}()
	return n.match(name, auth)
}

// child creates a namespace of a dynamic parent, with the parent's
// middlewares and handlers as they are now.
func (n *Namespace) child(name string) *Namespace {
	c := n.srv.newNamespace(name)
	c.parent = n
	n.mu.Lock()
	c.middlewares = slices.Clone(n.middlewares)
	c.onConnect = slices.Clone(n.onConnect)
	for ev, hs := range n.serverSide {
		c.serverSide[ev] = slices.Clone(hs)
	}
	c.rooms = n.rooms.clone()
	c.roomWatch.Store(n.roomWatch.Load())
	n.children = append(n.children, c)
	n.mu.Unlock()
	return c
}

// targets are the namespaces an operation on n acts on: n itself, or the
// children of a dynamic parent.
func (n *Namespace) targets() []*Namespace {
	if n.match == nil {
		return []*Namespace{n}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// A child removed as empty (Config.CleanupEmptyChildNamespaces) leaves
	// children in the same step; one removed while the caller goes
	// through the list answers adapter.ErrClosed, which Namespace.gone
	// filters.
	return slices.Clone(n.children)
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
// OfDynamic has an internal name, such as "/_0".
func (n *Namespace) Name() string { return n.name }

// OnConnection registers a handler for each new connection to the namespace.
// It runs on the socket's handler goroutine, before any event handler.
func (n *Namespace) OnConnection(h func(*Socket)) {
	n.mu.Lock()
	n.onConnect = append(n.onConnect, h)
	n.mu.Unlock()
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
	n.mu.Lock()
	n.middlewares = append(n.middlewares, mw)
	n.mu.Unlock()
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

func (n *Namespace) all() *Broadcast { return &Broadcast{nsp: n} }

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
	var errs []error
	for _, t := range n.targets() {
		if err := n.gone(t, t.adapter.ServerSideEmit(append([]any{event}, args...))); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server-side emit %q: %w", event, err)
	}
	return nil
}

// ServerSideEmitWithAck sends an event to the other servers and returns one
// response per server. When some do not answer in time (by ctx's deadline,
// or the cluster's RequestTimeout, whichever is first) it returns the
// responses it got and an error wrapping ErrAckTimeout, as every method
// that waits for acknowledgements does.
func (n *Namespace) ServerSideEmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	var all []any
	for _, t := range n.targets() {
		res, err := t.adapter.ServerSideEmitWithAck(ctx, append([]any{event}, args...))
		all = append(all, res...)
		if err = n.gone(t, err); err != nil {
			if errors.Is(err, adapter.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				return all, fmt.Errorf("server-side emit %q: %w: %w", event, ErrAckTimeout, err)
			}
			return all, fmt.Errorf("server-side emit %q: %w", event, err)
		}
	}
	return all, nil
}

// OnServerSideEmit registers a handler for an event sent by another server
// with ServerSideEmit. e.Ack answers a ServerSideEmitWithAck.
func (n *Namespace) OnServerSideEmit(event string, h func(*Event)) {
	n.mu.Lock()
	n.serverSide[event] = append(n.serverSide[event], h)
	n.mu.Unlock()
}

// LocalSocketCount is the number of sockets connected to this node in the
// namespace (in all the namespaces of a dynamic one).
func (n *Namespace) LocalSocketCount() int {
	total := 0
	for _, t := range n.targets() {
		t.mu.Lock()
		total += len(t.sockets)
		t.mu.Unlock()
	}
	return total
}

// socket returns the connected socket id of the namespace, or nil.
func (n *Namespace) socket(id string) *Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sockets[id]
}

func (n *Namespace) nextAckID() uint64 { return n.ackIDs.Add(1) - 1 }

// metrics returns n's series, looked up at the first call: the first
// connection's, while it holds n against removal (joining), so that they
// are not created again once forget has deleted them.
func (n *Namespace) metrics() *nspMetrics {
	if m := n.m.Load(); m != nil {
		return m
	}
	n.m.CompareAndSwap(nil, n.srv.metrics.of(n.name))
	return n.m.Load()
}
