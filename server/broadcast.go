package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
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
func (b *Broadcast) operators() []*socket.BroadcastOperator {
	nsps := targets(b.nsp)
	ops := make([]*socket.BroadcastOperator, len(nsps))
	for i, nsp := range nsps {
		flags := b.flags
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
	for _, op := range b.operators() {
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
//
// It drives the adapter's BroadcastWithAck itself rather than through
// zishang520's BroadcastOperator: the operator's timeout timer reads the
// packet id the adapter writes without synchronization (a data race on every
// timed-out broadcast, reported by -race), and a caller's deadline racing
// that timer lost the responses already received (TestBroadcastWithAck).
func (b *Broadcast) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if err := checkEventName(event); err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, fmt.Errorf("broadcast %q with ack: ctx has no deadline", event)
	}
	timeout := max(time.Until(dl), time.Millisecond)
	flags := b.flags
	flags.Timeout = &timeout
	c := &ackCollector{done: make(chan struct{}), expectedServers: -1}
	wire := toWireArgs(args)
	type sent struct {
		nsp    socket.Namespace
		packet *parser.Packet
	}
	var sends []sent
	var servers int64
	for _, nsp := range targets(b.nsp) {
		p := &parser.Packet{Type: parser.EVENT, Data: append([]any{event}, wire...)}
		nsp.Adapter().BroadcastWithAck(p, &socket.BroadcastOptions{
			Rooms:  types.NewSet(toRooms(b.rooms)...),
			Except: types.NewSet(toRooms(b.except)...),
			Flags:  &flags,
		}, c.clientCount, c.response)
		servers += nsp.Adapter().ServerCount()
		sends = append(sends, sent{nsp, p})
	}
	c.setExpectedServers(servers)

	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		err = ackContextError("broadcast", event, ctx.Err())
	}
	all, complete := c.result()
	if !complete {
		// Drop the pending acks, so that late answers find nothing and the
		// sockets do not keep the callbacks.
		for _, s := range sends {
			if s.packet.Id == nil {
				continue
			}
			id := *s.packet.Id
			s.nsp.Sockets().Range(func(_ socket.SocketId, sock *socket.Socket) bool {
				sock.Acks().Delete(id)
				return true
			})
		}
		return all, err
	}
	return all, nil
}

// ackCollector gathers the answers of a broadcast with ack: it is complete
// when every server has said how many clients it reached and that many
// clients answered.
type ackCollector struct {
	mu              sync.Mutex
	responses       []any
	answered        uint64
	expectedClients uint64
	servers         int64
	expectedServers int64 // -1 until known
	closed          bool
	done            chan struct{}
}

func (c *ackCollector) clientCount(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expectedClients += n
	c.servers++
	c.check()
}

func (c *ackCollector) response(args []any, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.responses = append(c.responses, fromWire(args)...)
	c.answered++
	c.check()
}

func (c *ackCollector) setExpectedServers(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expectedServers = n
	c.check()
}

// check closes done when complete; c.mu is held.
func (c *ackCollector) check() {
	if !c.closed && c.expectedServers >= 0 && c.servers >= c.expectedServers && c.answered >= c.expectedClients {
		c.closed = true
		close(c.done)
	}
}

// result returns the responses so far and whether they are complete, and
// stops collecting.
func (c *ackCollector) result() ([]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	complete := c.closed
	c.closed = true
	return c.responses, complete
}

// FetchSockets returns the selected sockets, cluster-wide.
func (b *Broadcast) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	type result struct {
		sockets []*socket.RemoteSocket
		err     error
	}
	ops := b.operators()
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
	for _, op := range b.operators() {
		op.SocketsJoin(toRooms(rooms)...)
	}
}

// SocketsLeave makes the selected sockets leave rooms.
func (b *Broadcast) SocketsLeave(rooms ...string) {
	for _, op := range b.operators() {
		op.SocketsLeave(toRooms(rooms)...)
	}
}

// DisconnectSockets disconnects the selected sockets; with closeConn their
// connections are closed too.
func (b *Broadcast) DisconnectSockets(closeConn bool) {
	for _, op := range b.operators() {
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
