package server

import (
	"context"

	"github.com/sockstream/sockstream/adapter"
)

// SocketEmitter is a Socket with flags for what it emits: Node's
// socket.volatile and socket.compress(bool). Socket.Volatile and
// Socket.Compress return one; its methods return a copy with one more flag,
// so that they chain (s.Volatile().Compress(false).Emit(...)) and a value can
// be kept and reused. The zero value is not usable. It is safe for
// concurrent use, as the Socket is.
type SocketEmitter struct {
	s *Socket
	f emitFlags
}

// emitFlags are the flags of an emit to one socket.
type emitFlags struct {
	// volatile: dropped when the client's transport is busy (see
	// Socket.Volatile).
	volatile bool
	// noCompress: never sent compressed (Compress(false)).
	noCompress bool
}

// adapterFlags are f as the adapter carries them (with connection state
// recovery, an emit to a socket goes through the adapter, as in Node).
func (f emitFlags) adapterFlags() adapter.Flags {
	af := adapter.Flags{Volatile: f.volatile}
	if f.noCompress {
		off := false
		af.Compress = &off
	}
	return af
}

// Volatile is Node's socket.volatile: the events emitted through the
// result are dropped, rather than queued, when the client's transport is
// not writable at that moment (over WebSocket, something queued or being
// written; over polling, no GET waiting), as Node drops volatile packets.
// Each drop is counted in sockstream_volatile_dropped_total and logged at
// Debug; Emit returns nil then. A volatile event is never replayed by
// connection state recovery. Use it for what the next event replaces
// (positions, typing indicators).
func (s *Socket) Volatile() SocketEmitter { return SocketEmitter{s: s, f: emitFlags{volatile: true}} }

// Compress is Node's socket.compress(bool): with false, the events emitted
// through the result go uncompressed even when the client negotiated
// WebSocket per-message deflate (Config.PerMessageDeflate); with true, the
// default, those of at least Config.PerMessageDeflateThreshold bytes are
// compressed when the client negotiated it. Polling responses are
// compressed by size whatever the flag (Config.HTTPCompressionThreshold).
func (s *Socket) Compress(on bool) SocketEmitter {
	return SocketEmitter{s: s, f: emitFlags{noCompress: !on}}
}

// Volatile adds the volatile flag (see Socket.Volatile).
func (e SocketEmitter) Volatile() SocketEmitter {
	e.f.volatile = true
	return e
}

// Compress sets the compress flag (see Socket.Compress).
func (e SocketEmitter) Compress(on bool) SocketEmitter {
	e.f.noCompress = !on
	return e
}

// Emit sends an event to the socket's client with the flags, as
// Socket.Emit does. A volatile event dropped because the client was busy
// is not an error: Emit returns nil (the drop is counted).
func (e SocketEmitter) Emit(event string, args ...any) error {
	return e.s.emitWith(event, args, e.f)
}

// EmitWithAck sends an event with the flags and waits for the client's
// acknowledgement, as Socket.EmitWithAck does. A volatile event that is
// dropped is never acknowledged: the call ends with ctx, as in Node.
func (e SocketEmitter) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	return e.s.emitWithAck(ctx, event, args, e.f)
}

// Send emits a "message" event with args, with the flags.
func (e SocketEmitter) Send(args ...any) error { return e.Emit("message", args...) }

// Broadcast broadcasts to every socket of the namespace but this one, with
// the flags (Node's socket.volatile.broadcast, socket.compress(false).broadcast).
func (e SocketEmitter) Broadcast() *Broadcast { return e.flagged(e.s.Broadcast()) }

// To broadcasts to the sockets in any of rooms, except this one, with the
// flags.
func (e SocketEmitter) To(rooms ...string) *Broadcast { return e.flagged(e.s.To(rooms...)) }

// In is To.
func (e SocketEmitter) In(rooms ...string) *Broadcast { return e.To(rooms...) }

// Except broadcasts to every socket of the namespace not in any of rooms,
// except this one, with the flags.
func (e SocketEmitter) Except(rooms ...string) *Broadcast { return e.flagged(e.s.Except(rooms...)) }

// flagged is b with e's flags.
func (e SocketEmitter) flagged(b *Broadcast) *Broadcast {
	if e.f.volatile {
		b = b.Volatile()
	}
	if e.f.noCompress {
		b = b.Compress(false)
	}
	return b
}
