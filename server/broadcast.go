package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Broadcast selects sockets of a namespace, cluster-wide, and acts on them.
// Each method returns a new Broadcast, so a partial selection can be reused;
// a Broadcast is safe for concurrent use.
type Broadcast struct {
	srv    *Server
	nsp    socket.Namespace
	rooms  []string
	except []string
	flags  socket.BroadcastFlags
}

func (b *Broadcast) clone() *Broadcast {
	c := *b
	c.rooms = slices.Clip(b.rooms)
	c.except = slices.Clip(b.except)
	return &c
}

// To narrows the selection to sockets in any of rooms (added to the rooms of
// earlier To calls).
func (b *Broadcast) To(rooms ...string) *Broadcast {
	c := b.clone()
	c.rooms = append(c.rooms, rooms...)
	return c
}

// In is To.
func (b *Broadcast) In(rooms ...string) *Broadcast { return b.To(rooms...) }

// Except leaves out the sockets in any of rooms.
func (b *Broadcast) Except(rooms ...string) *Broadcast {
	c := b.clone()
	c.except = append(c.except, rooms...)
	return c
}

// Local restricts the selection to this node.
func (b *Broadcast) Local() *Broadcast {
	c := b.clone()
	c.flags.Local = true
	return c
}

// Volatile sends without buffering: clients not ready to receive miss it,
// and it is never replayed by connection state recovery.
func (b *Broadcast) Volatile() *Broadcast {
	c := b.clone()
	c.flags.Volatile = true
	return c
}

// Compress sets whether the packets are compressed.
func (b *Broadcast) Compress(on bool) *Broadcast {
	c := b.clone()
	c.flags.Compress = &on
	return c
}

// operators returns one zishang520 operator per target namespace.
func (b *Broadcast) operators(timeout *time.Duration) []*socket.BroadcastOperator {
	nsps := targets(b.nsp)
	ops := make([]*socket.BroadcastOperator, len(nsps))
	for i, nsp := range nsps {
		flags := b.flags
		flags.Timeout = timeout
		ops[i] = socket.NewBroadcastOperator(nsp.Adapter(),
			types.NewSet(toRooms(b.rooms)...), types.NewSet(toRooms(b.except)...), &flags)
	}
	return ops
}

// Emit sends an event to the selected sockets.
func (b *Broadcast) Emit(event string, args ...any) error {
	if err := checkEventName(event); err != nil {
		return err
	}
	wire := toWireArgs(args)
	for _, op := range b.operators(nil) {
		if err := op.Emit(event, wire...); err != nil {
			return fmt.Errorf("broadcast %q: %w", event, err)
		}
	}
	return nil
}

// EmitWithAck sends an event to the selected sockets and returns their
// responses: the arguments of every client's ack, one after the other (one
// value per client when each acks with one value, as in Node). ctx must have
// a deadline: it is the ack timeout. When some clients do not answer in time
// it returns the responses it got and an error wrapping ErrAckTimeout.
func (b *Broadcast) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if err := checkEventName(event); err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, fmt.Errorf("broadcast %q with ack: ctx has no deadline", event)
	}
	type result struct {
		args []any
		err  error
	}
	timeout := max(time.Until(dl), time.Millisecond)
	ops := b.operators(&timeout)
	ch := make(chan result, len(ops))
	wire := toWireArgs(args)
	for _, op := range ops {
		err := op.Emit(event, append(slices.Clip(wire), socket.Ack(func(a []any, err error) {
			ch <- result{fromWire(a), err}
		}))...)
		if err != nil {
			return nil, fmt.Errorf("broadcast %q: %w", event, err)
		}
	}
	var all []any
	var timedOut bool
	for range ops {
		select {
		case r := <-ch:
			all = append(all, r.args...)
			timedOut = timedOut || r.err != nil
		case <-ctx.Done():
			return all, ackContextError("broadcast", event, ctx.Err())
		}
	}
	if timedOut {
		return all, fmt.Errorf("broadcast %q: %w: %w", event, ErrAckTimeout, context.DeadlineExceeded)
	}
	return all, nil
}

// FetchSockets returns the selected sockets, cluster-wide.
func (b *Broadcast) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	type result struct {
		sockets []*socket.RemoteSocket
		err     error
	}
	ops := b.operators(nil)
	ch := make(chan result, len(ops))
	for _, op := range ops {
		op.FetchSockets()(func(s []*socket.RemoteSocket, err error) { ch <- result{s, err} })
	}
	var out []*RemoteSocket
	var errs []error
	for range ops {
		select {
		case r := <-ch:
			if r.err != nil {
				errs = append(errs, r.err)
			}
			for _, s := range r.sockets {
				out = append(out, &RemoteSocket{raw: s})
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch sockets: %w", ctx.Err())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fetch sockets: %w", err)
	}
	return out, nil
}

// SocketsJoin makes the selected sockets join rooms.
func (b *Broadcast) SocketsJoin(rooms ...string) {
	for _, op := range b.operators(nil) {
		op.SocketsJoin(toRooms(rooms)...)
	}
}

// SocketsLeave makes the selected sockets leave rooms.
func (b *Broadcast) SocketsLeave(rooms ...string) {
	for _, op := range b.operators(nil) {
		op.SocketsLeave(toRooms(rooms)...)
	}
}

// DisconnectSockets disconnects the selected sockets; with closeConn their
// connections are closed too.
func (b *Broadcast) DisconnectSockets(closeConn bool) {
	for _, op := range b.operators(nil) {
		op.DisconnectSockets(closeConn)
	}
}

// RemoteSocket is a socket returned by FetchSockets, on this node or another.
type RemoteSocket struct {
	raw *socket.RemoteSocket
}

// ID is the socket's id.
func (r *RemoteSocket) ID() string { return string(r.raw.Id()) }

// Rooms lists the socket's rooms.
func (r *RemoteSocket) Rooms() []string { return fromRoomSet(r.raw.Rooms()) }

// Data is the socket's data (see Socket.SetData).
func (r *RemoteSocket) Data() any { return r.raw.Data() }

// Handshake is the socket's handshake.
func (r *RemoteSocket) Handshake() Handshake { return convertHandshake(r.raw.Handshake()) }

// Emit sends an event to the socket, wherever it is.
func (r *RemoteSocket) Emit(event string, args ...any) error {
	if err := checkEventName(event); err != nil {
		return err
	}
	if err := r.raw.Emit(event, toWireArgs(args)...); err != nil {
		return fmt.Errorf("emit %q: %w", event, err)
	}
	return nil
}

// Join makes the socket join rooms.
func (r *RemoteSocket) Join(rooms ...string) { r.raw.Join(toRooms(rooms)...) }

// Leave makes the socket leave rooms.
func (r *RemoteSocket) Leave(rooms ...string) { r.raw.Leave(toRooms(rooms)...) }

// Disconnect disconnects the socket.
func (r *RemoteSocket) Disconnect(closeConn bool) { r.raw.Disconnect(closeConn) }
