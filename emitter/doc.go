// Package emitter lets a Go program that serves no clients act on a
// Socket.IO cluster through its Redis: broadcast to namespaces and rooms
// (with except), make sockets join or leave rooms, disconnect them, and
// emit server-side events. It is the Redis Streams counterpart of Node's
// @socket.io/redis-emitter (which exists only for the pub/sub adapter),
// and every node of the cluster carries out what it writes: sockstream
// nodes and Node nodes running @socket.io/redis-streams-adapter 0.3.1.
//
//	e, err := emitter.New(emitter.Options{URL: "redis://localhost:6379"})
//	if err != nil { ... }
//	defer e.Close()
//	err = e.Of("/chat").To("room1").Except("muted").Emit(ctx, "news", "hello", []byte{1, 2})
//	err = e.In("room1").SocketsJoin(ctx, "room2")
//	err = e.In("room2").DisconnectSockets(ctx, false)
//
// # What it writes
//
// Broadcasts, joins, leaves and disconnections are stream entries written
// exactly as a node writes its own (package cluster's Codec, the same
// XADD <stream> MAXLEN ~ <MaxLen> * uid nsp type data), to the stream of the
// namespace (Emitter.StreamKey). Server-side emits are published on the
// namespace's pub/sub channel, as the nodes publish theirs. So StreamName,
// StreamCount, MaxLen and ChannelPrefix must be the nodes' own.
//
// # Not a node
//
// Every message carries the uid "emitter" (adapter.EmitterUID), the one
// socket.io-adapter reserves for emitters. The emitter sends no heartbeat
// and subscribes to no channel, so no node counts it: Node 0.3 nodes count
// servers with PUBSUB NUMSUB of the namespace's channel, Go nodes with the
// same count and their heartbeat table (which ignores the emitter's uid,
// as Node's heartbeat adapter does). Requests of the nodes (fetchSockets,
// serverSideEmit and broadcasts with acks) never wait for it. For the same
// reason it cannot make requests itself: no fetchSockets, no acks.
//
// # Delivery and recovery
//
// A method returns once Redis answered: nil means the entry is in the
// stream, in order after everything written to that stream before it, and
// every node reading the stream applies it. A node gives an emitted
// broadcast its entry id as offset when connection state recovery is on
// (unless it is volatile), and a client that was disconnected gets it when
// it recovers, from any node: nothing tells an emitter's broadcast from a
// node's. There is no outage buffer: while Redis is unreachable, methods
// fail (an error wrapping ErrUnknownOutcome when the command may have been
// sent), and retrying is the caller's choice.
package emitter
