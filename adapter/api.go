package adapter

import "context"

// The adapter's seam with the Socket.IO server, in Go terms: the server
// gives each namespace's adapter a Namespace (its sockets on this node), and
// calls the namespace's Adapter for everything that concerns rooms.
//
// Packets are Packet values: Type is the Socket.IO packet type (2 EVENT,
// 3 ACK …), Data the event name and its arguments as Go values (string,
// float64, bool, nil, []any, map[string]any, any JSON-marshalable value, and
// []byte for binary, at any depth outside structs), ID the ack id, if any.
// Selections are Options values: Rooms (any of them; none means every
// socket), Except (none of them), Flags.

// Namespace is one namespace's sockets on this node, as its adapter sees
// them. The Socket.IO server implements it. The adapter calls it from its
// own goroutines; every method must be safe for concurrent use and must not
// block on the network (writes are queued per connection).
//
// The contract that lets the adapter call it without deadlocks: a
// Namespace method never runs user code inline (the Socket.IO layer queues
// user handlers on its own goroutines) and never calls back, on the
// calling goroutine, into the Adapter methods that block or wait for the
// adapter's goroutines (FetchSockets, ServerSideEmitWithAck,
// RestoreSession, SessionResumed, Close) nor into the queueing ones
// (Broadcast, BroadcastWithAck, AddSockets, DelSockets, DisconnectSockets,
// ServerSideEmit). It may call the room index methods (AddAll, Del,
// DelAll, SocketRooms, Rooms) and PersistSession, which never block: a
// socket that disconnects or whose write fails inside Deliver, Disconnect
// or CloseConn may clean up at once.
type Namespace interface {
	// Name is the namespace's name, such as "/" or "/chat".
	Name() string

	// Deliver queues p for the local sockets ids (encoding it once for all
	// of them); the writes may wait for the next Flush. A socket that has
	// gone is skipped. p.Nsp is the namespace's name; p must not be
	// modified, nor kept after the call (the adapter may deliver the same
	// p again, to a recovered socket).
	Deliver(p *Packet, ids []string, flags Flags)

	// DeliverWithAck queues p for the local sockets ids, as Deliver does,
	// each expecting an acknowledgement under p.ID, and returns how many it
	// was queued for.
	// When p.ID is nil (a broadcast with acks relayed from another node:
	// ack ids are per node), DeliverWithAck first sets it to a fresh ack
	// id of the namespace, as Node's adapter takes nsp._ids++; p is the
	// adapter's own copy. ack is called once per socket that answers, with
	// its arguments, on any goroutine; a timeout, if flags.TimeoutMs is
	// set, drops the pending acknowledgements after that long.
	DeliverWithAck(p *Packet, ids []string, flags Flags, ack func(args []any)) int

	// Flush starts the writes that Deliver and DeliverWithAck queued: a
	// connection that got several packets since the last Flush gets them
	// in one write. The adapter calls it once it has delivered what it
	// had at hand (a batch taken from one of its queues, one operation
	// otherwise), before it answers the callers of those operations; a
	// delivery is never left without a Flush after it. Safe to call at any
	// time from any goroutine.
	Flush()

	// Disconnect disconnects the local sockets ids from the namespace;
	// with closeConn their whole connections are closed.
	Disconnect(ids []string, closeConn bool)

	// Describe returns the local sockets ids as FetchSockets reports them
	// (id, handshake in Node's shape, rooms, data); gone ones are skipped.
	Describe(ids []string) []SocketInfo

	// ServerSideEmit hands an event sent by another node with
	// ServerSideEmit to the namespace's server-side handlers: args[0] is
	// the event name. ack is nil when the sender expects no answer;
	// otherwise the first call answers (later ones are ignored).
	ServerSideEmit(args []any, ack func(args []any))

	// CloseConn closes the whole connection of the local socket id, so
	// that its client reconnects (and recovers again).
	CloseConn(id string)
}

// RoomObserver may be implemented by a Namespace to be told of each change
// of its local room index, as Node's adapter emits create-room,
// delete-room, join-room and leave-room: RoomCreated when a room gets its
// first local socket, RoomJoined when a local socket joins a room,
// RoomLeft when one leaves a room (or disconnects), RoomDeleted when a
// room's last local socket left. The room of a socket's own id counts, as
// in Node (a connection creates and joins it). Every change is reported,
// whatever made it (AddAll, Del, DelAll, and the AddSockets and
// DelSockets of this node or another).
//
// The methods are called with the room index locked, on the goroutine
// making the change, so that they come in the order the changes were
// made: they must return at once, must not block, and must not call the
// Adapter (queue the work, as the Socket.IO layer queues user handlers).
type RoomObserver interface {
	RoomCreated(room string)
	RoomDeleted(room string)
	RoomJoined(room, id string)
	RoomLeft(room, id string)
}

// Adapter is one namespace's rooms, on this node and across the cluster.
// NamespaceAdapter implements it; Builder.New makes one per namespace.
//
// The room index methods (AddAll, Del, DelAll, SocketRooms, Rooms) act on
// this node at once. The operations that may reach other nodes (Broadcast,
// BroadcastWithAck, AddSockets, DelSockets, DisconnectSockets,
// ServerSideEmit) are applied in call order on every node, this one
// included. They return once the transport has answered: nil when it took
// the message (written to the stream, or queued in its bounded outage
// buffer), an error wrapping ErrBufferFull, ErrUnavailable or ErrClosed
// when it refused it (the operation is applied on this node anyway, as
// Node's ClusterAdapter does). Local operations (Flags.Local) and volatile
// broadcasts are not waited for and never fail.
type Adapter interface {
	// AddAll adds the local socket id to rooms (its own id's room is one
	// of them by convention of the caller).
	AddAll(id string, rooms []string)
	// Del removes the local socket id from room.
	Del(id, room string)
	// DelAll removes the local socket id from every room.
	DelAll(id string)
	// SocketRooms returns the rooms of the local socket id, nil if unknown.
	SocketRooms(id string) []string
	// Rooms returns the names of the rooms with local sockets.
	Rooms() []string

	// Broadcast sends p to the sockets opts selects, cluster-wide unless
	// opts.Flags.Local.
	Broadcast(p *Packet, opts Options) error
	// BroadcastWithAck sends p (whose ID the caller set) to the sockets
	// opts selects and reports, through clientCount, how many sockets each
	// node (this one included) wrote it to, and through ack every answer.
	// Completion is the caller's: it knows the expected servers from
	// ServerCount. ack gets, per answering client, for one of this node
	// its arguments as DeliverWithAck's ack got them, for one of another
	// node []any{v}, v the first argument that node relays: the client's
	// response is args[0] (nil if args is empty) either way. clientCount
	// and ack are called on the adapter's goroutines, possibly
	// concurrently, and must not block.
	BroadcastWithAck(p *Packet, opts Options, clientCount func(n int), ack func(args []any)) error
	// AddSockets makes the selected sockets join rooms.
	AddSockets(opts Options, rooms []string) error
	// DelSockets makes the selected sockets leave rooms.
	DelSockets(opts Options, rooms []string) error
	// DisconnectSockets disconnects the selected sockets.
	DisconnectSockets(opts Options, closeConn bool) error
	// FetchSockets describes the selected sockets of every node; on a
	// timeout it returns those it got with an error wrapping ErrTimeout.
	FetchSockets(ctx context.Context, opts Options) ([]SocketInfo, error)
	// ServerSideEmit sends an event (args[0] is its name) to the other
	// nodes' server-side handlers.
	ServerSideEmit(args []any) error
	// ServerSideEmitWithAck is ServerSideEmit waiting for one answer per
	// other node (its first argument), until ctx ends or
	// Config.RequestTimeout passes (an error wrapping ErrTimeout, with the
	// answers received).
	ServerSideEmitWithAck(ctx context.Context, args []any) ([]any, error)
	// ServerCount is the number of nodes serving the namespace, this one
	// included.
	ServerCount() int

	// PersistSession keeps the session of a socket that disconnected for
	// a recoverable reason, for s.TTL, without blocking the caller. The
	// caller fills Nsp, SID, PID, Rooms, Data and TTL; the adapter adds
	// what only it knows (Origin, Marks).
	PersistSession(s PersistedSession)
	// RestoreSession takes back the session of pid with the packets missed
	// after offset; (nil, nil) means a fresh session. A non-nil session
	// must be followed by SessionResumed (or DelAll) once the socket is
	// connected and its missed packets are written: until then, live
	// broadcasts for it are held.
	RestoreSession(ctx context.Context, pid, offset string) (*RestoredSession, error)
	// SessionResumed writes the packets held for the restored socket id
	// and hands it over to live delivery.
	SessionResumed(id string)
	// SessionsPersisted waits until the sessions handed to PersistSession
	// so far are stored (or failed), or ctx ends.
	SessionsPersisted(ctx context.Context) error

	// Close publishes what is queued (within RequestTimeout), tells the
	// other nodes, and stops the adapter's goroutines. Operations after
	// Close act on this node only (and return ErrClosed). The server calls
	// it, never from inside a Namespace method.
	Close() error
}
