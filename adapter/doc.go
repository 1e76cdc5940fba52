// Package adapter is sockstream's cluster adapter: the Go counterpart of
// socket.io-adapter's ClusterAdapter (with its in-memory Adapter's room
// index). It implements Adapter for every namespace of a server, reaches
// the namespace's local sockets through the Namespace the Socket.IO layer
// gives it (see api.go), and turns each operation that must reach the
// other nodes (broadcasts, socketsJoin/Leave, disconnectSockets,
// fetchSockets, serverSideEmit, broadcasts with acks) into Messages, in the
// format Node's adapter writes, carried by a Transport.
//
// The adapter knows nothing of Redis: package cluster is the Redis Streams
// Transport (wire compatible with @socket.io/redis-streams-adapter),
// recovery.LocalTransport the transport of a single node, and
// adapter/adaptertest an in-process one for tests. Package server wires
// them for you.
//
// # What it guarantees
//
//   - Order: the operations of a namespace are published and applied in
//     call order, on this node and on every other.
//   - Liveness: each namespace adapter sends a heartbeat every
//     Config.HeartbeatInterval; a peer silent for Config.HeartbeatTimeout is
//     declared dead, and requests stop waiting for it.
//   - Requests (fetchSockets, serverSideEmit with acks, broadcasts with
//     acks) complete with the answers of the peers alive, or fail with an
//     error wrapping ErrTimeout after Config.RequestTimeout.
//   - Connection state recovery: with Config.Sessions (package recovery),
//     sessions are persisted on abnormal disconnections and restored with
//     the packets missed, handed over to live delivery without loss or
//     duplicates.
//   - Bad input from peers (malformed messages) is logged, counted in
//     sockstream_adapter_malformed_messages_total and skipped.
//
// # Resources
//
// A namespace costs no goroutine: its queued work (publications, other
// nodes' messages, server-side events) runs, in order, on at most
// Config.Workers node-level workers of its Builder; the Builder's own
// liveness goroutines send every namespace's heartbeats straight through
// the transport and check its peers, so liveness never waits behind the
// namespaces' work (see Builder and docs/cluster.md).
//
// Metrics are registered on Config.Registerer only (see docs/metrics.md).
package adapter
