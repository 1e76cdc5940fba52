package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// Socket is one client connected to one namespace. The server hands the same
// *Socket to the middlewares, the OnConnection handlers and the event
// handlers of a connection, so it can be used as a map key.
//
// Handlers registered with On, OnAny and OnDisconnect run one at a time, in
// the order the events arrived, after the OnConnection handlers, on a
// goroutine of the socket's own that exists only while there is work: a
// handler may block, for instance on EmitWithAck to the same client,
// without holding up the connection (acknowledgements are handled as they
// are read).
type Socket struct {
	nsp    *Namespace
	client *client

	id        string
	pid       string // private session id (connection state recovery)
	recovered bool
	// ctxDone (guarded by mu): the socket's Context is cancelled, or is
	// made cancelled.
	ctxDone   bool
	connected atomic.Bool // beside the flags: an idle socket is mostly this struct
	// auth is the client's CONNECT payload, nil when it sent none (the
	// rest of the handshake is the session's: see Handshake).
	auth map[string]any

	queue handlerQueue

	mu   sync.Mutex
	data any
	// ctx is made by the first Context call: most sockets never need one.
	ctx          *socketContext
	handlers     handlerSet
	anyHandlers  []func(*Event)
	onDisconnect []func(reason string)
	acks         map[uint64]*pendingAck
	// hooks are the handlers few sockets have (OnAnyOutgoing,
	// OnDisconnecting, Use, OnError), made on first use.
	hooks *socketHooks
}

// pendingAck is an acknowledgement the server waits for.
type pendingAck struct {
	fn    func(args []any)
	timer *time.Timer // nil without a timeout
}

func newSocket(n *Namespace, c *client, auth map[string]any) *Socket {
	if len(auth) == 0 {
		auth = nil // an empty map is made when asked for (Handshake)
	}
	s := &Socket{
		nsp:    n,
		client: c,
		id:     randomID(),
		auth:   auth,
	}
	if n.srv.cfg.Recovery.Enabled {
		s.pid = randomID()
	}
	s.queue.srv = n.srv
	return s
}

// randomID returns 20 base64url characters (15 random bytes), the length
// of Node's socket ids and private session ids.
func randomID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// runMiddleware runs mw, a panic counting as a refusal.
func (s *Socket) runMiddleware(mw Middleware) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.nsp.srv.log.Error("sockstream: middleware panicked", "nsp", s.nsp.name, "panic", r)
			err = errors.New("server error")
		}
	}()
	return mw(s)
}

// onEvent queues an event from the client for the socket's handlers.
func (s *Socket) onEvent(p *siocodec.Packet, size int64) {
	args, _ := p.Data.([]any)
	if len(args) == 0 {
		s.client.pending.Add(-size)
		return
	}
	name, ok := args[0].(string)
	if !ok {
		name = fmt.Sprint(args[0]) // socket.io-parser allows numeric names
	}
	e := &Event{Name: name, Args: args[1:]}
	if p.ID != nil {
		id := *p.ID
		e.ack = func(reply []any) {
			if !s.connected.Load() {
				return
			}
			if err := s.client.write(siocodec.Ack, s.nsp.name, &id, reply); err != nil {
				s.nsp.srv.log.Warn("ack not sent", "nsp", s.nsp.name, "sid", s.id, "err", err)
			}
		}
	}
	s.queue.push(func() {
		defer s.client.pending.Add(-size)
		s.dispatch(e)
	})
}

// dispatch runs an event's handlers, as Node's Socket.onevent does: the
// OnAny handlers, then the packet middlewares (Use), then, unless one of
// them refused the event, the handlers of its name (which a middleware may
// have changed).
func (s *Socket) dispatch(e *Event) {
	s.mu.Lock()
	anys := s.anyHandlers
	var mws []func(*Event) error
	if s.hooks != nil {
		mws = s.hooks.middlewares
	}
	s.mu.Unlock()
	for _, h := range anys {
		h(e)
	}
	if len(mws) > 0 {
		if err := s.runPacketMiddlewares(mws, e); err != nil {
			s.reportError(e, err)
			return
		}
	}
	s.mu.Lock()
	hs := s.handlers.get(e.Name)
	s.mu.Unlock()
	for _, h := range hs {
		if h.once != 0 && !s.takeOnce(e.Name, h.once) {
			continue // a Once handler that already ran
		}
		h.fn(e)
	}
}

// onAck resolves an acknowledgement the server waited for, on the reading
// goroutine: a handler blocked on EmitWithAck is released without waiting
// for the socket's handler queue.
func (s *Socket) onAck(p *siocodec.Packet) {
	if p.ID == nil {
		return
	}
	s.mu.Lock()
	a := s.acks[*p.ID]
	delete(s.acks, *p.ID)
	s.mu.Unlock()
	if a == nil {
		return
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	args, _ := p.Data.([]any)
	a.fn(args)
}

// addAck registers fn for the ack id; with a timeout the registration is
// dropped after that long.
func (s *Socket) addAck(id uint64, fn func([]any), timeout time.Duration) {
	a := &pendingAck{fn: fn}
	s.mu.Lock()
	if s.acks == nil {
		s.acks = map[uint64]*pendingAck{}
	}
	s.acks[id] = a
	if timeout > 0 {
		a.timer = time.AfterFunc(timeout, func() { s.dropAck(id) })
	}
	s.mu.Unlock()
}

func (s *Socket) dropAck(id uint64) {
	s.mu.Lock()
	a := s.acks[id]
	delete(s.acks, id)
	s.mu.Unlock()
	if a != nil && a.timer != nil {
		a.timer.Stop()
	}
}

// onclose disconnects the socket for reason, once: it leaves its rooms
// and its namespace, its session is kept for recovery when the reason
// allows it, and its disconnect handlers are queued behind its pending
// event handlers.
func (s *Socket) onclose(reason string) {
	if !s.connected.CompareAndSwap(true, false) {
		return
	}
	n := s.nsp
	persist := n.srv.cfg.Recovery.Enabled && recoverable[reason]
	s.mu.Lock()
	data := s.data
	var disconnecting []func(string)
	if s.hooks != nil {
		disconnecting = s.hooks.disconnecting
	}
	s.mu.Unlock()
	var rooms []string
	if persist || len(disconnecting) > 0 {
		rooms = n.adapter.SocketRooms(s.id)
	}
	if len(disconnecting) > 0 {
		// Rooms reads them until the OnDisconnecting handlers have run.
		s.mu.Lock()
		s.hooks.closingRooms = slices.Clip(rooms)
		if s.hooks.closingRooms == nil {
			s.hooks.closingRooms = []string{}
		}
		s.mu.Unlock()
	}
	if persist {
		n.adapter.PersistSession(adapter.PersistedSession{
			Nsp:   n.name,
			SID:   s.id,
			PID:   s.pid,
			Rooms: slices.Clone(rooms),
			Data:  data,
			TTL:   n.srv.cfg.Recovery.MaxDisconnection,
		})
	}
	n.adapter.DelAll(s.id)
	n.mu.Lock()
	if n.sockets[s.id] == s {
		delete(n.sockets, s.id)
	}
	n.leaveLocked() // until its disconnect handlers have run (n.left)
	n.mu.Unlock()
	s.client.unregister(s)
	s.mu.Lock()
	acks := s.acks
	s.acks = nil
	s.mu.Unlock()
	for _, a := range acks {
		if a.timer != nil {
			a.timer.Stop()
		}
	}
	n.srv.metrics.socketDisconnected(n.name, n.metrics(), reason)
	s.dropOutgoing()
	// Cancelled now, not after the disconnect handlers: a handler
	// ahead of them in the queue may wait on it (EmitWithAck).
	s.cancelContext()
	if len(disconnecting) > 0 {
		n.srv.busy.Add()
		s.queue.push(func() {
			defer n.srv.busy.Done()
			defer s.endDisconnecting()
			for _, h := range disconnecting {
				h(reason)
			}
		})
	}
	n.srv.busy.Add()
	s.queue.push(func() {
		defer n.srv.busy.Done()
		// After the handlers (deferred: even if one panics), this
		// socket's and those of every other socket that left: the
		// namespace is removed only then (Node closes the adapter before
		// its disconnect listeners, but its cluster adapters still
		// publish after close): what they broadcast reaches the other
		// nodes.
		defer n.left()
		s.mu.Lock()
		hs := s.onDisconnect
		s.mu.Unlock()
		for _, h := range hs {
			h(reason)
		}
	})
}

// recoverable are the reasons after which a session is kept for
// connection state recovery (Node's RECOVERABLE_DISCONNECT_REASONS).
var recoverable = map[string]bool{
	"transport error":      true,
	"transport close":      true,
	"forced close":         true,
	"ping timeout":         true,
	"server shutting down": true,
	"forced server close":  true,
	"slow consumer":        true,
}

// disconnect is a disconnection decided by the server: the client is told
// (DISCONNECT), then the socket closes with "server namespace disconnect".
func (s *Socket) disconnect(tell bool) {
	if !s.connected.Load() {
		return
	}
	if tell {
		_ = s.client.write(siocodec.Disconnect, s.nsp.name, nil, nil)
	}
	s.onclose("server namespace disconnect")
}

// ID is the socket's public id, unique in the cluster.
func (s *Socket) ID() string { return s.id }

// Namespace is the name of the socket's namespace, such as "/".
func (s *Socket) Namespace() string { return s.nsp.name }

// Recovered reports whether the connection state (id, rooms, data, missed
// packets) was restored from a previous connection.
func (s *Socket) Recovered() bool { return s.recovered }

// Connected reports whether the socket is still connected. It is false from
// the moment the socket starts disconnecting, so that the disconnect
// handlers see it false.
func (s *Socket) Connected() bool { return s.connected.Load() }

// Context is cancelled when the socket disconnects (before its disconnect
// handlers run), or, in a middleware, when its connection is refused. Use it to
// stop work started for the client.
func (s *Socket) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.ctx = &socketContext{ctx, cancel}
		if s.ctxDone {
			cancel()
		}
	}
	return s.ctx.ctx
}

// socketContext is a socket's Context and its cancel function.
type socketContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// cancelContext cancels the socket's Context, now or when it is made.
func (s *Socket) cancelContext() {
	s.mu.Lock()
	s.ctxDone = true
	ctx := s.ctx
	s.mu.Unlock()
	if ctx != nil {
		ctx.cancel()
	}
}

// Transport is the transport the client currently uses; it changes from
// Polling to WebSocket when the client upgrades.
func (s *Socket) Transport() Transport { return Transport(s.client.sess.Transport()) }

// Data is what SetData stored, restored with the session on recovery and
// visible to other nodes through FetchSockets.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData attaches data to the socket. Keep it JSON-serializable: it crosses
// the cluster.
func (s *Socket) SetData(v any) { s.setData(v) }

func (s *Socket) setData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Join adds the socket to rooms, at once on this node.
func (s *Socket) Join(rooms ...string) {
	if len(rooms) > 0 {
		s.nsp.adapter.AddAll(s.id, rooms)
	}
}

// Leave removes the socket from a room.
func (s *Socket) Leave(room string) { s.nsp.adapter.Del(s.id, room) }

// Rooms lists the rooms the socket is in, its own id's room included. In
// an OnDisconnecting handler it lists the rooms the socket was in when it
// began disconnecting (it has already left them: broadcasts no longer reach
// it); after that, none.
func (s *Socket) Rooms() []string {
	s.mu.Lock()
	if s.hooks != nil && s.hooks.closingRooms != nil {
		rooms := slices.Clone(s.hooks.closingRooms)
		s.mu.Unlock()
		return rooms
	}
	s.mu.Unlock()
	return s.nsp.adapter.SocketRooms(s.id)
}

// Emit sends an event to this client. Arguments are JSON values; []byte
// values travel as binary, at any depth outside structs. Volatile and
// Compress emit with Node's flags.
func (s *Socket) Emit(event string, args ...any) error {
	return s.emitWith(event, args, emitFlags{})
}

// emitWith is Emit with flags.
func (s *Socket) emitWith(event string, args []any, f emitFlags) error {
	if err := checkEventName(event); err != nil {
		return err
	}
	if err := s.emit(event, args, nil, f); err != nil {
		return fmt.Errorf("emit %q: %w", event, err)
	}
	s.nsp.metrics().emits.Inc()
	return nil
}

// emit writes an EVENT to the client. With connection state recovery it
// goes through the adapter, as Node does, so that it gets an offset and
// can be replayed (not a volatile one); otherwise it is written at once.
// A volatile event the client's transport cannot take at once is dropped
// and counted, without error.
func (s *Socket) emit(event string, args []any, id *uint64, f emitFlags) error {
	if !s.connected.Load() {
		return ErrDisconnected
	}
	data := make([]any, 0, 1+len(args))
	data = append(data, event)
	data = append(data, args...)
	if s.nsp.srv.cfg.Recovery.Enabled {
		// The outgoing listeners hear of it when the adapter delivers it;
		// the adapter drops a volatile one for a busy client (Deliver).
		return s.nsp.adapter.Broadcast(&adapter.Packet{Type: int(siocodec.Event), Data: data, ID: id},
			adapter.Options{Rooms: []string{s.id}, Except: []string{}, Flags: f.adapterFlags()})
	}
	// A volatile event dropped for a busy client is still told to the
	// outgoing listeners, as Node's Socket.emit and its adapter (the path
	// with recovery) tell them of every event they pass on.
	if err := s.client.writeFlagged(s.nsp.name, id, data, f); err != nil {
		return err
	}
	s.notifyOutgoing(data)
	return nil
}

// EmitWithAck sends an event and waits for the client's acknowledgement, for
// ctx to end, or for the socket to disconnect (ErrDisconnected). Give ctx a
// deadline: it also bounds how long the server keeps the pending ack; an ack
// that does not come in time is an error wrapping both ErrAckTimeout and
// context.DeadlineExceeded. It may be called from the socket's own handlers.
func (s *Socket) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	return s.emitWithAck(ctx, event, args, emitFlags{})
}

// emitWithAck is EmitWithAck with flags.
func (s *Socket) emitWithAck(ctx context.Context, event string, args []any, f emitFlags) ([]any, error) {
	if err := checkEventName(event); err != nil {
		return nil, err
	}
	if !s.connected.Load() {
		return nil, fmt.Errorf("emit %q: %w", event, ErrDisconnected)
	}
	ch := make(chan []any, 1)
	id := s.nsp.nextAckID()
	s.addAck(id, func(a []any) {
		select {
		case ch <- a:
		default:
		}
	}, 0)
	defer s.dropAck(id)
	if err := s.emit(event, args, &id, f); err != nil {
		return nil, fmt.Errorf("emit %q: %w", event, err)
	}
	s.nsp.metrics().emits.Inc()
	select {
	case a := <-ch:
		if a == nil {
			a = []any{}
		}
		return a, nil
	case <-ctx.Done():
		return nil, ackContextError("emit", event, ctx.Err())
	case <-s.Context().Done():
		select {
		case a := <-ch:
			return a, nil
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
	if siocodec.Reserved(event) {
		return fmt.Errorf("emit %q: %w", event, ErrReservedEvent)
	}
	return nil
}

// ErrAckTimeout is wrapped by the error of every method that waits for
// acknowledgements when they do not come in time: Socket.EmitWithAck,
// Broadcast.EmitWithAck (and the Server's and Namespace's through it),
// Namespace.ServerSideEmitWithAck. Node's equivalent is the "operation has
// timed out" error of timeout(ms); here the deadline is the context's.
var ErrAckTimeout = errors.New("acknowledgement timed out")

// ErrDisconnected is wrapped by the error of EmitWithAck when the socket is,
// or becomes, disconnected before the acknowledgement.
var ErrDisconnected = errors.New("socket disconnected")

// ErrReservedEvent is wrapped by the error of an emit of a name the protocol
// reserves: connect, connect_error, disconnect, disconnecting, newListener,
// removeListener.
var ErrReservedEvent = errors.New("reserved event name")

// On registers a handler for an event from the client. On("disconnect", h)
// is a disconnect handler (see OnDisconnect) and On("disconnecting", h) a
// disconnecting handler (see OnDisconnecting), each receiving the reason as
// its only argument; the other reserved names never fire.
func (s *Socket) On(event string, h func(*Event)) {
	switch event {
	case "disconnect":
		s.OnDisconnect(func(reason string) { h(&Event{Name: event, Args: []any{reason}}) })
		return
	case "disconnecting":
		s.OnDisconnecting(func(reason string) { h(&Event{Name: event, Args: []any{reason}}) })
		return
	}
	s.mu.Lock()
	s.handlers.add(event, handler{fn: h})
	s.mu.Unlock()
}

// Once registers a handler for the next event named event from the client
// only: it is removed before it runs (Node's socket.once).
func (s *Socket) Once(event string, h func(*Event)) {
	switch event {
	case "disconnect", "disconnecting":
		s.On(event, h) // these fire once anyway
		return
	}
	s.mu.Lock()
	s.handlers.add(event, handler{fn: h, once: onceIDs.Add(1)})
	s.mu.Unlock()
}

// Off removes every handler registered for event with On or Once (Node's
// socket.removeAllListeners(event): Go funcs cannot be compared, so there
// is no removing one handler of several). Off("disconnect") removes the
// disconnect handlers, Off("disconnecting") the disconnecting ones.
func (s *Socket) Off(event string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch event {
	case "disconnect":
		s.onDisconnect = nil
	case "disconnecting":
		if s.hooks != nil {
			s.hooks.disconnecting = nil
		}
	default:
		s.handlers.remove(event)
	}
}

// onceIDs tell Once handlers apart, so that one that ran can be removed.
var onceIDs atomic.Uint64

// takeOnce removes the Once handler id of event and reports whether it
// was still registered.
func (s *Socket) takeOnce(event string, id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers.removeOnce(event, id)
}

// handlerSet is a socket's event handlers, sorted by event name, each
// event's in the order registered: one slice of a handful of entries for
// each of thousands of sockets, not a map nor a slice per event. It is
// never changed in place (add and the removals make a new array, of the
// exact size an idle socket keeps), so a slice from get stays valid after
// the socket's lock is released.
type handlerSet []handler

// handler is one handler of an event; once, if not 0, identifies a Once
// handler.
type handler struct {
	event string
	fn    func(*Event)
	once  uint64
}

// span returns the range of event's handlers: hs[i:j], empty at the place
// they would be.
func (hs handlerSet) span(event string) (i, j int) {
	i, _ = slices.BinarySearchFunc(hs, event, func(h handler, e string) int { return strings.Compare(h.event, e) })
	j = i + sort.Search(len(hs)-i, func(k int) bool { return hs[i+k].event != event })
	return i, j
}

// get returns the handlers of event.
func (hs handlerSet) get(event string) []handler {
	i, j := hs.span(event)
	if i == j {
		return nil
	}
	return hs[i:j:j]
}

// add registers h for event, after the others of that event.
func (hs *handlerSet) add(event string, h handler) {
	old := *hs
	_, j := old.span(event)
	h.event = event
	out := make(handlerSet, len(old)+1)
	copy(out, old[:j])
	out[j] = h
	copy(out[j+1:], old[j:])
	*hs = out
}

// without returns hs less hs[i:j], in a new array (nil when empty).
func (hs handlerSet) without(i, j int) handlerSet {
	if len(hs) == j-i {
		return nil
	}
	out := make(handlerSet, 0, len(hs)-(j-i))
	return append(append(out, hs[:i]...), hs[j:]...)
}

// remove drops every handler of event.
func (hs *handlerSet) remove(event string) {
	if i, j := hs.span(event); i < j {
		*hs = hs.without(i, j)
	}
}

// removeOnce drops the Once handler id of event; false if it is not there.
func (hs *handlerSet) removeOnce(event string, id uint64) bool {
	i, j := hs.span(event)
	for k := i; k < j; k++ {
		if (*hs)[k].once == id {
			*hs = hs.without(k, k+1)
			return true
		}
	}
	return false
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
// "transport error", "ping timeout", "server shutting down", "forced close",
// "slow consumer"…
func (s *Socket) OnDisconnect(h func(reason string)) {
	s.mu.Lock()
	s.onDisconnect = append(slices.Clip(s.onDisconnect), h)
	s.mu.Unlock()
}

// Disconnect disconnects the socket from its namespace; with closeConn the
// whole underlying connection (every namespace of that client) is closed.
func (s *Socket) Disconnect(closeConn bool) {
	if closeConn {
		s.client.disconnectAll()
		return
	}
	s.disconnect(true)
}

// To broadcasts to the sockets in any of rooms, except this one.
func (s *Socket) To(rooms ...string) *Broadcast { return s.Broadcast().To(rooms...) }

// In is To.
func (s *Socket) In(rooms ...string) *Broadcast { return s.To(rooms...) }

// Except broadcasts to every socket of the namespace not in any of rooms,
// except this one.
func (s *Socket) Except(rooms ...string) *Broadcast { return s.Broadcast().Except(rooms...) }

// Broadcast broadcasts to every socket of the namespace but this one.
func (s *Socket) Broadcast() *Broadcast {
	return &Broadcast{nsp: s.nsp, sel: adapter.Selection{}.Except(s.id)}
}
