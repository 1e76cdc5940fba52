package recovery

import (
	"context"
	"errors"
)

// ErrOffsetNotFound is returned (wrapped) by PacketLog.ReadAfter when the
// offset is not, or is no longer, an entry of the log: trimmed by the
// log's bound, or never written there. A restore from it cannot be
// complete, so it must not be attempted.
var ErrOffsetNotFound = errors.New("recovery: offset not found in the packet log")

// Packet is one broadcast as a PacketLog holds it.
type Packet struct {
	// Offset is the packet's position in the log, "<ms>-<seq>".
	Offset string
	// Nsp is the namespace the packet was broadcast to.
	Nsp string
	// UID is the publisher's namespace adapter uid ("" when unknown): with
	// a session's delivery marks it tells which live path of the node the
	// session came from delivered the packet.
	UID string
	// Data is the event name followed by its arguments, without the offset
	// (the restore appends it). It is shared with the log: read it, never
	// modify it.
	Data []any
	// Opts select the sockets the broadcast was for.
	Opts PacketOptions
}

// PacketOptions are the parts of a broadcast's options that decide which
// sockets a missed packet belongs to.
type PacketOptions struct {
	// Rooms: the packet went to the sockets in any of these rooms, or to
	// every socket of the namespace when empty.
	Rooms []string
	// Except: sockets in any of these rooms did not get it.
	Except []string
	// Volatile packets may be dropped and live delivery gives them no
	// offset; the restore skips them.
	Volatile bool
}

// PacketLog is the history of broadcasts a restore reads the missed packets
// from: MemoryLog on a single node, the Redis stream in a cluster (see
// package cluster).
//
// # Contract of ReadAfter
//
// ReadAfter(ctx, nsp, offset, visit) calls visit, in log order, for every
// BROADCAST packet of namespace nsp written after the entry at offset, and
// returns end, the offset of the last entry of the log when the read began
// (whatever its namespace or type; offset itself when nothing follows it).
// Implementations must:
//
//   - fail with an error wrapping ErrOffsetNotFound, before calling visit,
//     when offset is not an entry of the log (checked by exact match: an
//     offset past the end or between two entries is not found either), and
//     with adapter.ErrInvalidOffset when it is not "<ms>-<seq>";
//   - stop at end: entries appended during the read are not visited, so a
//     read terminates even while the log grows faster than it is read, and
//     the caller knows exactly which offsets it has seen (see "Handover" in
//     the package documentation);
//   - read in bounded batches (never the whole tail in one reply) and check
//     ctx between them;
//   - never return a partial read as a success: if entries between offset
//     and end are trimmed while the read is under way, fail with
//     ErrOffsetNotFound even if visit was already called;
//   - return the error of visit, or of ctx, as soon as it occurs;
//   - visit only packets of nsp, skip other message types and entries
//     without a namespace, and deliver volatile packets flagged
//     (Opts.Volatile) rather than filtering them, so the policy stays in
//     Restore;
//   - not hold locks, or Redis connections the live path needs, while visit
//     runs.
//
// ReadAfter must be safe for concurrent use, with itself and with writes.
type PacketLog interface {
	ReadAfter(ctx context.Context, nsp, offset string, visit func(Packet) error) (end string, err error)
}
