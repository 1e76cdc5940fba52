package server

import (
	"fmt"
	"strings"
)

// The actions the Admin UI sends, as instrument() handles them on
// Socket.IO v4: each selects sockets by namespace and, optionally, a room
// (a socket's id for one socket) and goes through the cluster API, so that
// it reaches the sockets on every node.
//
//	emit(nsp, filter, event, ...args)
//	join(nsp, room, filter)
//	leave(nsp, room, filter)
//	_disconnect(nsp, close, filter)

// registerActions adds the action handlers to an admin socket. In
// read-only mode the UI is offered none and an action sent anyway is
// refused: logged, and answered with an error when the sender asked for
// an acknowledgement (the UI never does).
func (a *admin) registerActions(s *Socket) {
	for name, act := range map[string]func([]any) error{
		"emit":        a.actEmit,
		"join":        a.actJoin,
		"leave":       a.actLeave,
		"_disconnect": a.actDisconnect,
	} {
		s.On(name, func(e *Event) {
			if a.cfg.ReadOnly {
				a.log.Info("admin: action refused: read-only", "action", name, "sid", s.ID())
				e.Ack(map[string]any{"error": "read-only"})
				return
			}
			if err := act(e.Args); err != nil {
				a.log.Info("admin: action refused", "action", name, "sid", s.ID(), "err", err)
				e.Ack(map[string]any{"error": err.Error()})
				return
			}
			a.log.Info("admin: action", "action", name, "args", e.Args, "sid", s.ID())
			e.Ack()
		})
	}
}

// target is the selection of an action: the namespace nsp, narrowed to the
// room filter when one is given. The caller calls release once the action
// is done (see namespaceFor).
func (a *admin) target(nsp any, filter any) (b *Broadcast, release func(), err error) {
	name, ok := nsp.(string)
	if !ok || !strings.HasPrefix(name, "/") {
		return nil, nil, fmt.Errorf("namespace %v is not a name such as \"/\"", nsp)
	}
	room, ok := filter.(string)
	if !ok && filter != nil {
		return nil, nil, fmt.Errorf("filter %v is not a room name", filter)
	}
	n := a.srv.namespaceFor(name)
	if room == "" {
		return n.all(), n.release, nil
	}
	return n.In(room), n.release, nil
}

// namespaceFor is the namespace an admin action names: the one this node
// has, a dynamic one a parent serves, or else a new one, as Node's
// io.of(nsp), so that the action reaches the nodes that have it. The
// caller calls release on it after the action: a dynamic child made for
// the action alone is then removed with CleanupEmptyChildNamespaces.
func (s *Server) namespaceFor(name string) *Namespace {
	if n := s.lookup(name, map[string]any{}); n != nil {
		return n
	}
	return s.Of(name)
}

func arg(args []any, i int) any {
	if i < len(args) {
		return args[i]
	}
	return nil
}

func roomArg(args []any, i int) (string, error) {
	room, ok := arg(args, i).(string)
	if !ok || room == "" {
		return "", fmt.Errorf("room %v is not a room name", arg(args, i))
	}
	return room, nil
}

func (a *admin) actEmit(args []any) error {
	b, release, err := a.target(arg(args, 0), arg(args, 1))
	if err != nil {
		return err
	}
	defer release()
	event, ok := arg(args, 2).(string)
	if !ok {
		return fmt.Errorf("event %v is not an event name", arg(args, 2))
	}
	var rest []any
	if len(args) > 3 {
		rest = args[3:]
	}
	return b.Emit(event, rest...)
}

func (a *admin) actJoin(args []any) error {
	return a.actRoom(args, (*Broadcast).SocketsJoin)
}

func (a *admin) actLeave(args []any) error {
	return a.actRoom(args, (*Broadcast).SocketsLeave)
}

// actRoom carries out join or leave: args are the namespace, the room and
// the selection (a socket id or a room, none for all).
func (a *admin) actRoom(args []any, do func(b *Broadcast, rooms ...string)) error {
	room, err := roomArg(args, 1)
	if err != nil {
		return err
	}
	b, release, err := a.target(arg(args, 0), arg(args, 2))
	if err != nil {
		return err
	}
	defer release()
	do(b, room)
	return nil
}

func (a *admin) actDisconnect(args []any) error {
	closeConn, ok := arg(args, 1).(bool)
	if !ok && arg(args, 1) != nil {
		return fmt.Errorf("close %v is not a boolean", arg(args, 1))
	}
	b, release, err := a.target(arg(args, 0), arg(args, 2))
	if err != nil {
		return err
	}
	defer release()
	b.DisconnectSockets(closeConn)
	return nil
}
