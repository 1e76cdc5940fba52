// Package recovery implements Socket.IO connection state recovery: the
// session a socket leaves behind when it disconnects abnormally, and the
// restore that gives it back, with the broadcasts it missed, when its client
// reconnects in time.
//
// It holds the interfaces (Store, PacketLog), their memory
// implementations, the restore and the adapter seam; the Redis
// implementations live with the rest of the Redis stream format in package
// cluster, wire compatible with @socket.io/redis-streams-adapter 0.3.1: a
// session persisted by a Node node is restored by a Go node and the other
// way around, and offsets are Redis stream entry ids.
//
// # Pieces
//
//   - Store keeps sessions: MemoryStore on a single node; in a cluster,
//     cluster.SessionStore (SET PX / GETDEL, Node's encoding). Take returns
//     a session at most once.
//   - PacketLog is the history of broadcasts: MemoryLog keeps a bounded
//     history in memory; in a cluster, cluster.StreamLog reads the Redis
//     stream the transport writes, in COUNT-bounded XRANGE batches.
//   - Offsets are adapter.Offset values ("<ms>-<seq>", Redis stream entry
//     ids); this package does not parse them itself.
//   - Restore (or a Restorer, with metrics) takes the session and reads the
//     missed packets; it fails with a *RestoreError whose Reason is
//     expired, trimmed, invalid or error, never with a partial restore.
//   - Sessions is the adapter.SessionStore that plugs all of it into the
//     cluster adapter (adapter.Config.Sessions).
//   - LocalTransport runs the cluster adapter on a single node without
//     Redis, feeding a MemoryLog.
//
// # What goes where
//
// On an abnormal disconnection (transport error or close, ping timeout,
// forced close, server shutting down) the adapter persists
// Session{SID, PID, Rooms (the socket's own id included), Data, Nsp,
// Origin, Marks} with the maximum disconnection duration as ttl. On a
// reconnection carrying a pid and an offset it calls Restore; on success
// the socket takes the session's id, joins its rooms, gets its data, and is
// sent MissedPackets, each one's last argument being its offset.
//
// # Which packets were missed
//
// A node delivers its own broadcasts as soon as they are written to the
// log, and the other nodes' when its reader gets them: the two interleave
// out of log order, so the client's last offset alone does not tell which
// packets it was sent. The adapter records, for the last packets sent to
// each socket, what it had delivered of each kind at that moment (Marks,
// see adapter.DeliveryMark); Restore finds the mark of the client's offset
// and replays exactly the packets the client had not been sent. Without a
// mark (a session persisted by Node) it reads after the offset, as Node
// does.
//
// # Handover
//
// While a restore reads the log, broadcasts keep arriving on the live path.
// Restore exposes the one exact point where replay ends:
// Restored.LastOffset, the last log entry as it was when the read began.
// The adapter hands over at it (adapter/session.go):
//
//  1. before calling Restore, start holding back, for this socket, every
//     broadcast of the namespace delivered live from now on;
//  2. call Restore; it reads up to LastOffset and no further, however fast
//     the log grows;
//  3. once socket.io has connected the socket (the missed packets are
//     written by then), write it the held-back packets after LastOffset
//     that select its rooms (Restored.Wants), in arrival order, with live
//     delivery stopped; from then on live delivery reaches it directly,
//     minus the packets at or before LastOffset (Restored.Covers).
//
// Packets without an offset (volatile ones, broadcasts with acks) are not
// replayed and cannot be ordered against the log: they are best effort, as
// in live delivery.
//
// docs/recovery.md states the guarantees, the limits and the knobs.
package recovery
