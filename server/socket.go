package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Socket is one client connected to one namespace. The server hands the same
// *Socket to the middlewares, the OnConnection handlers and the event
// handlers of a connection, so it can be used as a map key.
//
// Handlers registered with On, OnAny and OnDisconnect run one at a time, in
// the order the events arrived, after the OnConnection handlers, on a
// goroutine of the socket's own: a handler may block, for instance on
// EmitWithAck to the same client, without holding up the connection.
type Socket struct {
	raw *socket.Socket
	srv *Server

	ctx    context.Context
	cancel context.CancelFunc
	queue  handlerQueue

	// emitMu serializes emits: zishang520 passes an emit's timeout through a
	// field of the socket (Timeout then Emit), which concurrent emits would
	// race on.
	emitMu sync.Mutex

	mu           sync.Mutex
	handlers     map[string][]func(*Event)
	anyHandlers  []func(*Event)
	onDisconnect []func(reason string)
	counted      bool // counted in the connected-sockets gauge
	// disconnecting is set by the first "disconnecting" event, with the
	// reason the disconnect handlers get.
	disconnecting bool
	reason        string
	fireOnce      sync.Once
}

// wrap returns the *Socket of raw, creating it on first use (in a middleware
// or at connection).
func (s *Server) wrap(raw *socket.Socket) *Socket {
	if v, ok := s.sockets.Load(raw); ok {
		return v.(*Socket)
	}
	s.wrapMu.Lock()
	defer s.wrapMu.Unlock()
	if v, ok := s.sockets.Load(raw); ok {
		return v.(*Socket)
	}
	sock := &Socket{raw: raw, srv: s, handlers: map[string][]func(*Event){}}
	sock.queue.srv = s
	sock.ctx, sock.cancel = context.WithCancel(context.Background())
	s.sockets.Store(raw, sock)
	if cs := s.connState(raw.Conn()); cs != nil {
		cs.add(raw)
	}
	raw.OnAny(sock.onEvent)
	_ = raw.On("disconnecting", sock.onDisconnecting)
	_ = raw.On("disconnect", sock.onDisconnected)
	return sock
}

// forget drops the server's reference to raw's *Socket.
func (s *Server) forget(raw *socket.Socket) {
	v, ok := s.sockets.LoadAndDelete(raw)
	if !ok {
		return
	}
	v.(*Socket).cancel()
	if cs := s.connState(raw.Conn()); cs != nil {
		cs.remove(raw)
	}
}

// onEvent receives every event from the client. zishang520 calls it in
// arrival order, before it checks whether the socket is still connected: an
// event sent just before the client left still reaches its handlers
// (TestEmitThenDisconnect; Node 4.8 drops it over WebSocket).
func (s *Socket) onEvent(args ...any) {
	if len(args) == 0 {
		return
	}
	name, ok := args[0].(string)
	if !ok {
		return
	}
	e := newEvent(name, args[1:])
	s.queue.push(func() { s.dispatch(e) })
}

func (s *Socket) dispatch(e *Event) {
	s.mu.Lock()
	anys, hs := s.anyHandlers, s.handlers[e.Name]
	s.mu.Unlock()
	for _, h := range anys {
		h(e)
	}
	for _, h := range hs {
		h(e)
	}
}

// onDisconnecting runs when zishang520 starts closing the socket, on
// whatever goroutine closes it. The disconnect handlers are queued behind
// the packets zishang520 has not processed yet, so that they run after the
// handlers of the events that came before the disconnection.
//
// zishang520's _onclose is not atomic: two closes racing (a ping timeout or
// a transport close against Shutdown's) both emit "disconnecting", and the
// task queue of the socket drops what is enqueued after the other close shut
// it. Each call therefore enqueues the (once-only) disconnection, before its
// own close shuts the queue, so that at least one of them runs; without it
// Shutdown waited forever for handlers that never ran (TestMaxPayload).
func (s *Socket) onDisconnecting(args ...any) {
	s.mu.Lock()
	first := !s.disconnecting
	s.disconnecting = true
	counted := s.counted
	s.counted = false
	if first {
		reason := ""
		if len(args) > 0 {
			reason = fmt.Sprint(args[0])
		}
		s.reason = s.srv.disconnectReason(s.raw, reason)
		s.srv.busy.add()
	}
	reason := s.reason
	s.mu.Unlock()
	if counted {
		s.srv.metrics.socketDisconnected(s.Namespace(), reason)
	}
	s.raw.Enqueue(func() {
		s.fireOnce.Do(func() {
			s.queue.push(func() {
				defer s.srv.busy.done()
				s.mu.Lock()
				hs := s.onDisconnect
				s.mu.Unlock()
				for _, h := range hs {
					h(reason)
				}
			})
		})
	})
}

func (s *Socket) onDisconnected(...any) { s.srv.forget(s.raw) }

// connected marks the socket connected, for the metrics.
func (s *Socket) connected() {
	s.mu.Lock()
	s.counted = true
	s.mu.Unlock()
	s.srv.metrics.socketConnected(s.Namespace())
}

// ID is the socket's public id, unique in the cluster.
func (s *Socket) ID() string { return string(s.raw.Id()) }

// Namespace is the name of the socket's namespace, such as "/".
func (s *Socket) Namespace() string { return s.raw.Nsp().Name() }

// Recovered reports whether the connection state (id, rooms, data, missed
// packets) was restored from a previous connection.
func (s *Socket) Recovered() bool { return s.raw.Recovered() }

// Connected reports whether the socket is still connected. It is false from
// the moment the socket starts disconnecting, so that the disconnect
// handlers, which may run before zishang520 has finished closing the socket,
// see it false.
func (s *Socket) Connected() bool {
	s.mu.Lock()
	leaving := s.disconnecting
	s.mu.Unlock()
	return !leaving && s.raw.Connected()
}

// Context is cancelled when the socket disconnects (or, in a middleware, when
// its connection is refused). Use it to stop work started for the client.
func (s *Socket) Context() context.Context { return s.ctx }

// Transport is the transport the client currently uses; it changes from
// Polling to WebSocket when the client upgrades.
func (s *Socket) Transport() Transport { return Transport(s.raw.Conn().Transport().Name()) }

// Data is what SetData stored, restored with the session on recovery and
// visible to other nodes through FetchSockets.
func (s *Socket) Data() any { return s.raw.Data() }

// SetData attaches data to the socket. Keep it JSON-serializable: it crosses
// the cluster.
func (s *Socket) SetData(v any) { s.raw.SetData(v) }

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) { s.raw.Join(toRooms(rooms)...) }

// Leave removes the socket from a room.
func (s *Socket) Leave(room string) { s.raw.Leave(socket.Room(room)) }

// Rooms lists the rooms the socket is in, its own id's room included.
func (s *Socket) Rooms() []string { return fromRoomSet(s.raw.Rooms()) }

// Handshake describes the request that opened the connection.
func (s *Socket) Handshake() Handshake { return convertHandshake(s.raw.Handshake()) }

// Emit sends an event to this client. Arguments are JSON values; []byte
// values travel as binary, at any depth outside structs.
func (s *Socket) Emit(event string, args ...any) error {
	if err := checkEventName(event); err != nil {
		return err
	}
	wire := toWireArgs(args)
	s.emitMu.Lock()
	err := s.raw.Emit(event, wire...)
	s.emitMu.Unlock()
	if err != nil {
		return fmt.Errorf("emit %q: %w", event, err)
	}
	s.srv.metrics.emitted(s.Namespace())
	return nil
}

// EmitWithAck sends an event and waits for the client's acknowledgement, for
// ctx to end, or for the socket to disconnect (ErrDisconnected). Give ctx a
// deadline: it also bounds how long the server keeps the pending ack; an ack
// that does not come in time is an error wrapping both ErrAckTimeout and
// context.DeadlineExceeded. It may be called from the socket's own handlers.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if err := checkEventName(event); err != nil {
		return nil, err
	}
	if !s.raw.Connected() {
		return nil, fmt.Errorf("emit %q: %w", event, ErrDisconnected)
	}
	type result struct {
		args []any
		err  error
	}
	ch := make(chan result, 1)
	wire := append(toWireArgs(args), socket.Ack(func(a []any, err error) {
		select {
		case ch <- result{a, err}:
		default: // a late ack racing zishang520's timeout
		}
	}))
	s.emitMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		s.raw.Timeout(max(time.Until(dl), time.Millisecond))
	}
	err := s.raw.Emit(event, wire...)
	s.emitMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("emit %q: %w", event, err)
	}
	s.srv.metrics.emitted(s.Namespace())
	finish := func(r result) ([]any, error) {
		if r.err != nil {
			return nil, fmt.Errorf("emit %q: %w: %w", event, ErrAckTimeout, context.DeadlineExceeded)
		}
		return fromWire(r.args), nil
	}
	select {
	case r := <-ch:
		return finish(r)
	case <-ctx.Done():
		return nil, ackContextError("emit", event, ctx.Err())
	case <-s.ctx.Done():
		select {
		case r := <-ch:
			return finish(r)
		default:
			return nil, fmt.Errorf("emit %q: %w", event, ErrDisconnected)
		}
	}
}

func ackContextError(op, event string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %q: %w: %w", op, event, ErrAckTimeout, err)
	}
	return fmt.Errorf("%s %q: %w", op, event, err)
}

func checkEventName(event string) error {
	if socket.SOCKET_RESERVED_EVENTS.Has(event) {
		return fmt.Errorf("emit %q: %w", event, ErrReservedEvent)
	}
	return nil
}

// ErrAckTimeout is wrapped by errors of acknowledgements that did not come in
// time.
var ErrAckTimeout = errors.New("acknowledgement timed out")

// ErrDisconnected is wrapped by the error of EmitWithAck when the socket is,
// or becomes, disconnected before the acknowledgement.
var ErrDisconnected = errors.New("socket disconnected")

// ErrReservedEvent is wrapped by the error of an emit of a name the protocol
// reserves: connect, connect_error, disconnect, disconnecting, newListener,
// removeListener.
var ErrReservedEvent = errors.New("reserved event name")

// On registers a handler for an event from the client. On("disconnect", h)
// is a disconnect handler (see OnDisconnect) receiving the reason as its
// only argument; the other reserved names never fire.
func (s *Socket) On(event string, h func(*Event)) {
	if event == "disconnect" {
		s.OnDisconnect(func(reason string) { h(&Event{Name: event, Args: []any{reason}}) })
		return
	}
	s.mu.Lock()
	s.handlers[event] = append(slices.Clip(s.handlers[event]), h)
	s.mu.Unlock()
}

// OnAny registers a handler for every event from the client. It runs before
// the handlers registered with On for the same event, and shares their
// Event: the first Ack wins.
func (s *Socket) OnAny(h func(*Event)) {
	s.mu.Lock()
	s.anyHandlers = append(slices.Clip(s.anyHandlers), h)
	s.mu.Unlock()
}

// OnDisconnect registers a handler called once the socket is disconnected,
// after the handlers of the events received before, with the reason: "client
// namespace disconnect", "server namespace disconnect", "transport close",
// "transport error", "ping timeout", "server shutting down", "forced close"…
func (s *Socket) OnDisconnect(h func(reason string)) {
	s.mu.Lock()
	s.onDisconnect = append(slices.Clip(s.onDisconnect), h)
	s.mu.Unlock()
}

// Disconnect disconnects the socket from its namespace; with closeConn the
// whole underlying connection (every namespace of that client) is closed.
func (s *Socket) Disconnect(closeConn bool) { s.raw.Disconnect(closeConn) }

// To broadcasts to the sockets in any of rooms, except this one.
func (s *Socket) To(rooms ...string) *Broadcast { return s.Broadcast().To(rooms...) }

// In is To.
func (s *Socket) In(rooms ...string) *Broadcast { return s.To(rooms...) }

// Except broadcasts to every socket of the namespace not in any of rooms,
// except this one.
func (s *Socket) Except(rooms ...string) *Broadcast { return s.Broadcast().Except(rooms...) }

// Broadcast broadcasts to every socket of the namespace but this one.
func (s *Socket) Broadcast() *Broadcast {
	return &Broadcast{srv: s.srv, nsp: s.raw.Nsp(), except: []string{s.ID()}}
}

// Raw is the underlying zishang520 socket.
func (s *Socket) Raw() *socket.Socket { return s.raw }

// Handshake describes the HTTP request that opened a connection.
type Handshake struct {
	Headers http.Header
	Query   url.Values
	// Auth is the client's auth payload; {} (never nil) when it sent none.
	Auth    map[string]any
	Address string
	Secure  bool
	URL     string
	Time    time.Time
}

func convertHandshake(h *socket.Handshake) Handshake {
	if h == nil {
		return Handshake{Auth: map[string]any{}}
	}
	auth := h.Auth
	if auth == nil {
		auth = map[string]any{}
	}
	return Handshake{
		Headers: h.Headers.Header(),
		Query:   h.Query.Query(),
		Auth:    auth,
		Address: h.Address,
		Secure:  h.Secure,
		URL:     h.Url,
		Time:    time.UnixMilli(h.Issued),
	}
}

func toRooms(rooms []string) []socket.Room {
	r := make([]socket.Room, len(rooms))
	for i, v := range rooms {
		r[i] = socket.Room(v)
	}
	return r
}

func fromRoomSet(set *types.Set[socket.Room]) []string {
	if set == nil {
		return nil
	}
	keys := set.Keys()
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out
}
