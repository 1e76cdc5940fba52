// Package recovery implements Socket.IO connection state recovery: the
// session a socket leaves behind when it disconnects abnormally, and the
// restore that gives it back, with the broadcasts it missed, when its client
// reconnects in time.
//
// It is wire compatible with @socket.io/redis-streams-adapter 0.3.1: a
// session persisted by a Node node is restored by a Go node and the other
// way around, and offsets are Redis stream entry ids.
//
// # Pieces
//
//   - Store keeps sessions: RedisStore (SET PX / GETDEL, Node's encoding) in
//     a cluster, MemoryStore on a single node. Take returns a session at
//     most once.
//   - PacketLog is the history of broadcasts: MemoryLog on a single node;
//     the Redis stream (package cluster) in a cluster.
//   - Restore (or a Restorer, with metrics) takes the session and reads the
//     missed packets; it fails with a *RestoreError whose Reason is
//     expired, trimmed, invalid or error, never with a partial restore.
//
// # What goes where
//
// On an abnormal disconnection (transport error or close, ping timeout,
// forced close, server shutting down) the adapter persists
// Session{SID, PID, Rooms (the socket's own id included), Data, Nsp} with
// the maximum disconnection duration as ttl. On a reconnection carrying a
// pid and an offset it calls Restore; on success the socket takes the
// session's id, joins its rooms, gets its data, and is sent
// MissedPackets, each one's last argument being its offset.
//
// # Handover
//
// While a restore reads the log, broadcasts keep arriving on the live path
// (the stream reader, or local publications). Node's package orders
// nothing between the two, so a client reconnecting during traffic
// sometimes misses, or gets twice, the packets published right at its
// reconnection. Restore exposes the one exact point where replay ends:
// Restored.LastOffset, the last log entry as it was when the read began.
// The adapter hands over at it:
//
//  1. before calling Restore, start holding back, for this socket, every
//     broadcast of the namespace delivered live from now on (they are in
//     the log, or will be, at an offset after whatever the live path had
//     delivered before);
//  2. call Restore; it reads up to LastOffset and no further, however fast
//     the log grows;
//  3. with live delivery for the namespace paused, join the socket to its
//     rooms, send MissedPackets, then the held-back packets for which
//     Restored.Wants is true (those at or before LastOffset were already
//     in the replay or deliberately left out: Restored.Covers), in arrival
//     order; then resume live delivery, which now reaches the socket
//     directly.
//
// Packets without an offset (volatile ones, broadcasts with acks) are not
// in the log and cannot be ordered against it: they are best effort, as in
// live delivery.
package recovery
