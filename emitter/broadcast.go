package emitter

import (
	"context"
	"fmt"
	"slices"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// Broadcast selects sockets of one namespace across the cluster: those in
// any of its rooms (every socket when it has none) and in none of its
// excepted rooms. Its methods return a new Broadcast and leave the
// receiver as it was, so a Broadcast can be kept and shared between
// goroutines.
type Broadcast struct {
	e   *Emitter
	nsp string
	sel adapter.Selection
}

func (b *Broadcast) clone() *Broadcast {
	if b == nil {
		return &Broadcast{}
	}
	c := *b
	return &c
}

// To adds rooms: the sockets in any of the rooms are selected.
func (b *Broadcast) To(rooms ...string) *Broadcast {
	c := b.clone()
	c.sel = c.sel.To(rooms...)
	return c
}

// In is To.
func (b *Broadcast) In(rooms ...string) *Broadcast { return b.To(rooms...) }

// Except leaves out the sockets in any of rooms.
func (b *Broadcast) Except(rooms ...string) *Broadcast {
	c := b.clone()
	c.sel = c.sel.Except(rooms...)
	return c
}

// Volatile marks the events as volatile: a node drops one for a client
// that cannot take it at once, and connection state recovery neither gives
// it an offset nor replays it.
func (b *Broadcast) Volatile() *Broadcast {
	c := b.clone()
	c.sel = c.sel.WithFlags(func(f *adapter.Flags) { f.Volatile = true })
	return c
}

// Compress sets whether the nodes compress the events' packets.
func (b *Broadcast) Compress(on bool) *Broadcast {
	c := b.clone()
	c.sel = c.sel.WithFlags(func(f *adapter.Flags) { f.Compress = &on })
	return c
}

// opts is the selection as the wire carries it.
func (b *Broadcast) opts() adapter.Options { return b.sel.Options() }

// Emit sends the event with args to the selected sockets: one stream entry
// (BROADCAST) that every node, Go or Node, delivers to its own sockets.
// Arguments are what the server's Emit takes: JSON-encodable values, and
// []byte anywhere in them for binary (the entry is then MessagePack, as
// Node writes it). With connection state recovery on, the nodes give the
// packet its stream offset, and a client that was disconnected gets it on
// recovery, like any broadcast of a node.
//
// It returns once Redis answered. nil means the entry was written: every
// node reading the stream delivers it (unless MaxLen trimming overtakes
// a node that lags that far). An error means it was not written, except one
// wrapping ErrUnknownOutcome (connection lost or timeout with the command
// sent). Bad input fails before anything is sent: ErrReservedEvent,
// ErrTooLarge, cluster.ErrInvalidMessage for arguments that cannot be
// encoded (a func: the emitter cannot wait for acknowledgements).
func (b *Broadcast) Emit(ctx context.Context, event string, args ...any) error {
	if siocodec.Reserved(event) {
		return fmt.Errorf("emitter: emit %q: %w", event, ErrReservedEvent)
	}
	if b == nil {
		return errNotNew
	}
	data := make([]any, 0, 1+len(args))
	data = append(data, event)
	data = append(data, args...)
	_, err := b.e.publish(ctx, &adapter.Message{
		UID:  adapter.EmitterUID,
		Nsp:  b.nsp,
		Type: adapter.Broadcast,
		Data: &adapter.BroadcastData{
			Packet: adapter.Packet{Type: int(siocodec.Event), Data: data},
			Opts:   b.opts(),
		},
	})
	if err != nil {
		return fmt.Errorf("emitter: emit %q: %w", event, err)
	}
	return nil
}

// SocketsJoin makes the selected sockets join rooms, on every node. It
// returns as Emit does; with no rooms it sends nothing.
func (b *Broadcast) SocketsJoin(ctx context.Context, rooms ...string) error {
	return b.joinLeave(ctx, adapter.SocketsJoin, rooms)
}

// SocketsLeave makes the selected sockets leave rooms, on every node. It
// returns as Emit does; with no rooms it sends nothing.
func (b *Broadcast) SocketsLeave(ctx context.Context, rooms ...string) error {
	return b.joinLeave(ctx, adapter.SocketsLeave, rooms)
}

func (b *Broadcast) joinLeave(ctx context.Context, t adapter.MessageType, rooms []string) error {
	if b == nil {
		return errNotNew
	}
	if len(rooms) == 0 {
		return nil
	}
	_, err := b.e.publish(ctx, &adapter.Message{
		UID:  adapter.EmitterUID,
		Nsp:  b.nsp,
		Type: t,
		Data: &adapter.SocketsJoinLeaveData{Opts: b.opts(), Rooms: slices.Clone(rooms)},
	})
	if err != nil {
		return fmt.Errorf("emitter: %s: %w", t, err)
	}
	return nil
}

// DisconnectSockets disconnects the selected sockets, on every node; with
// closeConn, their underlying connections are closed too (the client's
// other namespaces with them). It returns as Emit does.
func (b *Broadcast) DisconnectSockets(ctx context.Context, closeConn bool) error {
	if b == nil {
		return errNotNew
	}
	_, err := b.e.publish(ctx, &adapter.Message{
		UID:  adapter.EmitterUID,
		Nsp:  b.nsp,
		Type: adapter.DisconnectSockets,
		Data: &adapter.DisconnectSocketsData{Opts: b.opts(), Close: closeConn},
	})
	if err != nil {
		return fmt.Errorf("emitter: %s: %w", adapter.DisconnectSockets, err)
	}
	return nil
}

// ServerSideEmit sends the event with args to the server-side listeners of
// the namespace on every node (Namespace.OnServerSideEmit on a Go node,
// io.of(nsp).on(event) on a Node node), as Node's emitter does; the rooms
// of b play no part. It travels over pub/sub, as the nodes' own: it is not
// stored, and a node that is not subscribed at that moment never gets it.
// Acknowledgements cannot be asked for. Errors are those of Emit.
func (b *Broadcast) ServerSideEmit(ctx context.Context, event string, args ...any) error {
	if siocodec.Reserved(event) {
		return fmt.Errorf("emitter: server-side emit %q: %w", event, ErrReservedEvent)
	}
	if b == nil {
		return errNotNew
	}
	packet := make([]any, 0, 1+len(args))
	packet = append(packet, event)
	packet = append(packet, args...)
	err := b.e.publishEphemeral(ctx, &adapter.Message{
		UID:  adapter.EmitterUID,
		Nsp:  b.nsp,
		Type: adapter.ServerSideEmit,
		Data: &adapter.ServerSideEmitData{Packet: packet},
	})
	if err != nil {
		return fmt.Errorf("emitter: server-side emit %q: %w", event, err)
	}
	return nil
}
