package server

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// socketHooks are the handlers of a socket that most sockets never have,
// apart so that an idle socket pays one pointer for them.
type socketHooks struct {
	outgoing      []func(*Event)
	disconnecting []func(reason string)
	middlewares   []func(*Event) error
	onError       []func(error)
	// closingRooms are the socket's rooms when it began disconnecting,
	// what Rooms returns until its OnDisconnecting handlers have run.
	closingRooms []string
	// outgoingCounted: the socket counts in its namespace's
	// Namespace.outgoing (it has outgoing listeners and is connected).
	outgoingCounted bool
	// outPending counts the outgoing notifications queued and not yet run.
	outPending atomic.Int32
}

// maxPendingOutgoing bounds the outgoing notifications queued for one
// socket's OnAnyOutgoing handlers: past it, a notification is dropped,
// counted and logged rather than let a slow handler grow the queue without
// end under a flood of broadcasts.
const maxPendingOutgoing = 1024

// hooksLocked returns the socket's hooks, making them. Called holding s.mu.
func (s *Socket) hooksLocked() *socketHooks {
	if s.hooks == nil {
		s.hooks = &socketHooks{}
	}
	return s.hooks
}

// OffAny removes the handlers registered with OnAny.
func (s *Socket) OffAny() {
	s.mu.Lock()
	s.anyHandlers = nil
	s.mu.Unlock()
}

// OnAnyOutgoing registers a handler for every event the server sends to
// this client, as Node's socket.onAnyOutgoing: the events of Emit and
// EmitWithAck on this socket, and those of the broadcasts it receives
// (Server, Namespace and Broadcast Emit and EmitWithAck, from this node or
// another), as Node's adapter notifies them. e.Name and e.Args are the
// event and its arguments (with connection state recovery, a broadcast's
// arguments end with its offset, as in Node); e.Ack does nothing. As in
// Node, a volatile event dropped for a busy client is told too: the
// handlers hear of what was emitted, not of what the client received.
//
// The handlers run on the socket's handler goroutine, in order with its
// other handlers, after the event was queued for the client (Node runs
// them just before). At most 1,024 notifications wait for them per socket;
// past that, under a flood of broadcasts to a socket whose handlers are
// slow, a notification is dropped, counted in
// sockstream_hook_events_dropped_total{hook="outgoing"} and logged.
func (s *Socket) OnAnyOutgoing(h func(*Event)) {
	s.mu.Lock()
	hk := s.hooksLocked()
	hk.outgoing = append(slices.Clip(hk.outgoing), h)
	count := !hk.outgoingCounted && s.connected.Load()
	if count {
		hk.outgoingCounted = true
	}
	s.mu.Unlock()
	if count {
		s.nsp.outgoing.Add(1)
	}
}

// OffAnyOutgoing removes the handlers registered with OnAnyOutgoing.
func (s *Socket) OffAnyOutgoing() {
	s.mu.Lock()
	if s.hooks != nil {
		s.hooks.outgoing = nil
	}
	s.mu.Unlock()
	s.dropOutgoing()
}

// dropOutgoing takes the socket out of its namespace's count of sockets
// with outgoing listeners.
func (s *Socket) dropOutgoing() {
	s.mu.Lock()
	counted := s.hooks != nil && s.hooks.outgoingCounted
	if counted {
		s.hooks.outgoingCounted = false
	}
	s.mu.Unlock()
	if counted {
		s.nsp.outgoing.Add(-1)
	}
}

// countOutgoing counts a socket that got outgoing listeners before it was
// connected (in a middleware) once it is.
func (s *Socket) countOutgoing() {
	s.mu.Lock()
	count := s.hooks != nil && len(s.hooks.outgoing) > 0 && !s.hooks.outgoingCounted
	if count {
		s.hooks.outgoingCounted = true
	}
	s.mu.Unlock()
	if count {
		s.nsp.outgoing.Add(1)
	}
}

// notifyOutgoing queues the outgoing listeners for data, an event packet's
// data (name, then arguments). It never runs them inline: the adapter's
// goroutines call it.
func (s *Socket) notifyOutgoing(data []any) {
	s.mu.Lock()
	hk := s.hooks
	var hs []func(*Event)
	if hk != nil {
		hs = hk.outgoing
	}
	s.mu.Unlock()
	if len(hs) == 0 || len(data) == 0 {
		return
	}
	name, ok := data[0].(string)
	if !ok {
		name = fmt.Sprint(data[0])
	}
	if n := hk.outPending.Add(1); n > maxPendingOutgoing {
		hk.outPending.Add(-1)
		s.nsp.srv.hookDropped("outgoing", "sockstream: OnAnyOutgoing handlers too slow: notification dropped",
			"nsp", s.nsp.name, "sid", s.id, "event", name, "pending", maxPendingOutgoing)
		return
	}
	// A deep copy, taken now: the packet is the adapter's (not to be
	// kept), or the application's arguments to Emit, which it may change
	// once Emit has returned; the handlers run later.
	e := &Event{Name: name, Args: copyArgs(data[1:])}
	s.nsp.srv.busy.Add()
	s.queue.push(func() {
		defer s.nsp.srv.busy.Done()
		defer hk.outPending.Add(-1)
		for _, h := range hs {
			h(e)
		}
	})
}

// OnDisconnecting registers a handler called when the socket begins to
// disconnect, with the reason (see OnDisconnect), before the OnDisconnect
// handlers: Node's "disconnecting" event. Rooms, called in it, still lists
// the socket's rooms, for instance to tell them the user left:
//
//	s.OnDisconnecting(func(reason string) {
//		for _, room := range s.Rooms() {
//			if room != s.ID() {
//				_ = s.To(room).Emit("user left", s.ID())
//			}
//		}
//	})
//
// Unlike Node, where it runs while the socket is still in its rooms and
// connected, the handler runs on the socket's handler goroutine after the
// handlers of the events received before the disconnection: by then the
// socket has left its rooms on this node (Rooms returns the rooms it was
// in) and Connected is false.
func (s *Socket) OnDisconnecting(h func(reason string)) {
	s.mu.Lock()
	hk := s.hooksLocked()
	hk.disconnecting = append(slices.Clip(hk.disconnecting), h)
	s.mu.Unlock()
}

// endDisconnecting makes Rooms read the room index again, once the
// OnDisconnecting handlers have run.
func (s *Socket) endDisconnecting() {
	s.mu.Lock()
	if s.hooks != nil {
		s.hooks.closingRooms = nil
	}
	s.mu.Unlock()
}

// Use adds a packet middleware: it runs for each event from the client,
// after the OnAny handlers and before the handlers of its name (Node's
// socket.use, and the same order). It may change e.Name and e.Args. An
// error stops the event, whose handlers do not run (nor is its ack
// answered, unless the middleware does), and is handed to the OnError
// handlers (Node emits "error" on the socket). A panicking middleware
// counts as an error. Middlewares run in the order they were added, on
// the socket's handler goroutine.
func (s *Socket) Use(mw func(e *Event) error) {
	s.mu.Lock()
	hk := s.hooksLocked()
	hk.middlewares = append(slices.Clip(hk.middlewares), mw)
	s.mu.Unlock()
}

// OnError registers a handler for the errors of the socket's packet
// middlewares (Use). Without one, an error is logged at Debug level.
func (s *Socket) OnError(h func(error)) {
	s.mu.Lock()
	hk := s.hooksLocked()
	hk.onError = append(slices.Clip(hk.onError), h)
	s.mu.Unlock()
}

// runPacketMiddlewares runs mws on e; the first error stops them.
func (s *Socket) runPacketMiddlewares(mws []func(*Event) error, e *Event) error {
	for _, mw := range mws {
		if err := s.runPacketMiddleware(mw, e); err != nil {
			return err
		}
	}
	return nil
}

// ErrMiddlewarePanic is wrapped by the error handed to OnError when a
// packet middleware panicked.
var ErrMiddlewarePanic = fmt.Errorf("packet middleware panicked")

func (s *Socket) runPacketMiddleware(mw func(*Event) error, e *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.nsp.srv.log.Error("sockstream: packet middleware panicked", "nsp", s.nsp.name, "sid", s.id, "event", e.Name, "panic", r)
			err = fmt.Errorf("event %q: %w: %v", e.Name, ErrMiddlewarePanic, r)
		}
	}()
	return mw(e)
}

// reportError hands a middleware's error to the OnError handlers.
func (s *Socket) reportError(e *Event, err error) {
	s.mu.Lock()
	var hs []func(error)
	if s.hooks != nil {
		hs = s.hooks.onError
	}
	s.mu.Unlock()
	if len(hs) == 0 {
		s.nsp.srv.log.Debug("sockstream: event refused by a packet middleware, and no OnError handler", "nsp", s.nsp.name, "sid", s.id, "event", e.Name, "err", err)
		return
	}
	for _, h := range hs {
		h(err)
	}
}
