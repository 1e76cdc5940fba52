package adapter

import (
	"context"
	"fmt"
	"github.com/sockstream/sockstream/internal/inflight"
	"slices"
	"sync"
	"time"
)

// Connection state recovery: the adapter's side.
//
// The SessionStore (package recovery) persists and restores sessions and
// reads the missed packets from its log. What only the adapter can do is
// the handover between the replay and live delivery, so that a socket
// recovering while broadcasts flow gets each packet exactly once, in order.
//
// A restore reads the log up to LastOffset, the end of the log when the
// read began. Meanwhile the live paths keep delivering: the inbound worker
// (other nodes' broadcasts, read from the stream) and the outbound worker
// (this node's own, delivered once published). Each may deliver, after the
// restore, a packet at or before LastOffset (the reader lags behind the
// stream; an own publication was written before the read but not yet
// delivered) which the replay already holds, and each may deliver a packet
// after LastOffset before the restored socket exists or is connected, which
// the socket would miss. So, per restore:
//
//  1. from before the read until the socket is connected and resumed
//     (SessionResumed), every packet the namespace delivers with an offset
//     is also held for it, and the socket is kept out of live delivery
//     (by id: whatever its rooms);
//  2. when the Socket.IO layer has connected the socket and written the
//     missed packets, it calls SessionResumed: the held packets the socket
//     wants (after LastOffset, rooms matching) are written to it, in
//     arrival order;
//  3. from then on it gets live packets directly, minus those at or before
//     LastOffset, until neither path can still bring such a packet: the
//     outbound path once a marker queued after the restore has run (every
//     publication queued later was written after the read), the inbound
//     path once it delivered a packet after LastOffset or handoverLinger
//     passed.

// handoverLinger bounds how long a recovered socket stays under the
// handover filter waiting for the inbound path to pass its LastOffset. A
// stream reader lagging behind by more than this can deliver a replayed
// packet twice; past it the socket costs live delivery nothing.
const handoverLinger = 10 * time.Second

// handoverMaxHeld bounds the packets held for one restoring socket. Beyond
// it the socket's connection is closed when it is resumed: its client
// reconnects and recovers again from the last offset it got, rather than
// silently missing packets.
const handoverMaxHeld = 100_000

// handoverConnectTimeout drops a restore whose socket is never resumed nor
// removed (SessionResumed, DelAll): a middleware that neither accepts nor
// rejects it, a Socket.IO layer that forgets the call.
const handoverConnectTimeout = 2 * time.Minute

// SessionStore is the seam through which connection state recovery plugs
// into the adapter (recovery.Sessions implements it). Its methods are
// called from the Socket.IO layer's goroutines and must be safe for
// concurrent use.
type SessionStore interface {
	// PersistSession stores the session of a socket that disconnected for
	// a recoverable reason, for s.TTL (the server's maximum disconnection
	// duration).
	PersistSession(ctx context.Context, s PersistedSession) error
	// RestoreSession takes the session of pid in namespace nsp and the
	// packets it missed after offset. Any error means a fresh session for
	// the client; implementations report the reason themselves.
	RestoreSession(ctx context.Context, nsp, pid, offset string) (*RestoredSession, error)
}

// PersistedSession is the state a disconnected socket leaves behind. The
// Socket.IO layer fills Nsp, SID, PID, Rooms (the socket's own id
// included), Data and TTL; the adapter adds Origin and Marks.
type PersistedSession struct {
	Nsp string
	SID string
	// PID is the private session id, a secret: never log it.
	PID   string
	Rooms []string
	Data  any
	TTL   time.Duration
	// Origin is the uid of the namespace adapter the socket was on: the
	// packets it published itself reached the socket by the outbound path,
	// the others' by the inbound path.
	Origin string
	// Marks say, for each of the last packets sent to the socket (at most
	// maxMarks, oldest first), what the node had delivered when it sent
	// it. The client's offset is one of them; its mark tells exactly which
	// packets the client had been sent before it (see DeliveryMark).
	Marks []DeliveryMark
}

// DeliveryMark records what a node had delivered to its sockets when it
// delivered the packet at Offset. Each of its two live paths delivers in
// stream order, but the two interleave: the node delivers its own packet
// as soon as it is written, and another node's earlier packet when its
// reader gets it. So a client whose last offset is L may have been sent
// packets after L (by the other path) and not been sent packets before L.
// The mark of L resolves both: the client had been sent exactly the own
// packets up to Own and the others' packets up to Others.
type DeliveryMark struct {
	Offset string
	// Own is the newest of the node's own packets delivered, Offset
	// included; "" when none.
	Own string
	// Others is the newest of the other nodes' packets delivered, Offset
	// included; "" when none.
	Others string
}

// markRing is how many deliveries a namespace adapter remembers for the
// marks of persisted sessions, and maxMarks how many of them, among those
// sent to the socket, a session keeps. A client whose offset is older than
// its session's marks (more than maxMarks packets sent to it were lost in
// flight) is restored by the offset alone, as Node does.
const (
	markRing = 4096
	maxMarks = 64
)

// RestoredSession is a session given back, with the packets it missed.
type RestoredSession struct {
	SID string
	PID string
	// Rooms are the session's rooms, its own id included: the Socket.IO
	// layer gives them back to the socket with AddAll.
	Rooms []string
	Data  any
	// MissedPackets are the missed events' data, each ending with its
	// offset.
	MissedPackets [][]any
	// LastOffset is where the replay ends: the last entry of the log when
	// the read began. Live packets at or before it are not delivered to
	// the restored socket.
	LastOffset string
}

// Paths of live delivery.
const (
	pathOut = iota // this node's own broadcasts, from the outbound worker
	pathIn         // other nodes' broadcasts, from the inbound worker
)

// sessionState is the handover bookkeeping of a namespace adapter.
//
// Lock order: deliverMu, then mu (then the room index's lock, a leaf).
// deliverMu serializes the deliveries of both workers with the flush of
// held packets, so no live packet overtakes them; it is held while calling
// Namespace.Deliver (and CloseConn), which may call back DelAll,
// PersistSession or the other room index methods but nothing that takes
// deliverMu. mu guards the maps and handovers and is never held while
// calling the Namespace (a write error can close a socket, which calls
// DelAll).
type sessionState struct {
	deliverMu sync.Mutex
	mu        sync.Mutex
	// persisting counts the PersistSession writes in flight, for
	// SessionsPersisted.
	persisting inflight.Group
	pending    map[*handover]struct{} // restores reading the log
	bySID      map[string]*handover   // restored sockets under handover

	// maxHeld is handoverMaxHeld, lowered by tests.
	maxHeld int

	// The newest offset delivered on each path, and the last deliveries
	// with their marks (a ring of markRing, ringN used).
	newest [2]offsetID
	newStr [2]string
	ring   []ringEntry
	ringAt int
}

type ringEntry struct {
	mark DeliveryMark
	opts Options
}

type handover struct {
	started time.Time
	sid     string
	last    offsetID
	rooms   map[string]struct{} // the session's rooms
	held    []heldPacket
	over    bool // held overflowed
	live    time.Time
	passed  [2]bool // per path: no packet at or before last can come any more
}

type heldPacket struct {
	p      *Packet
	opts   Options
	offset offsetID
	path   int
}

// offsetID is an Offset as a live packet carries it: ok is false for ""
// (a packet without offset: volatile, with an ack, or no recovery) or
// garbage, which orders before nothing.
type offsetID struct {
	Offset
	ok bool
}

func parseOffsetID(s string) offsetID {
	o, err := ParseOffset(s)
	return offsetID{Offset: o, ok: err == nil}
}

// after reports whether o is a valid offset strictly after p.
func (o offsetID) after(p offsetID) bool {
	return o.ok && o.Compare(p.Offset) > 0
}

// defaultMaxDisconnection is the TTL of a persisted session whose TTL the
// caller left zero: Node's default maxDisconnectionDuration (2 minutes).
const defaultMaxDisconnection = 2 * time.Minute

// PersistSession hands the session of a socket that disconnected for a
// recoverable reason to Config.Sessions, if any, without blocking the
// caller: the write runs on a goroutine of the adapter, bounded by
// RequestTimeout, which Close waits for. The caller fills Nsp (the
// namespace's name if empty), SID, PID, Rooms, Data and TTL (2 minutes if
// zero); the adapter sets Origin and Marks.
func (a *NamespaceAdapter) PersistSession(s PersistedSession) {
	store := a.opts.Sessions
	if store == nil {
		return
	}
	if s.Nsp == "" {
		s.Nsp = a.name
	}
	if s.TTL <= 0 {
		s.TTL = defaultMaxDisconnection
	}
	s.Rooms = slices.Clone(s.Rooms)
	s.Origin = a.uid
	s.Marks = a.marksFor(s.Rooms)
	a.sessions.persisting.Add()
	persist := func() {
		defer a.sessions.persisting.Done()
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.RequestTimeout)
		defer cancel()
		if err := store.PersistSession(ctx, s); err != nil {
			a.warnLimited("persisting a session failed", "sid", s.SID, "err", err)
		}
	}
	if !a.spawn(persist) {
		persist() // the adapter is closing: still give the session its chance
	}
}

// SessionsPersisted waits until every session handed to PersistSession so
// far is stored (or its write failed, which is logged), or ctx ends. A
// server shutting down calls it before it closes the connections: a client
// reconnecting at once to another node must find its session there.
func (a *NamespaceAdapter) SessionsPersisted(ctx context.Context) error {
	if err := a.sessions.persisting.Wait(ctx); err != nil {
		return fmt.Errorf("sessions not yet persisted: %w", err)
	}
	return nil
}

// RestoreSession asks Config.Sessions, if any, for the session of pid and
// the packets missed since offset, and sets up the handover (see above):
// until SessionResumed(SID) or DelAll(SID), live packets for the socket are
// held. Any failure of the store (it reports the reason itself), a nil
// Config.Sessions, or ctx ending gives (nil, nil): a fresh session. The
// read is bounded by RequestTimeout and by Close. The error result is
// always nil here; it is in the seam for implementations that can fail
// otherwise.
func (a *NamespaceAdapter) RestoreSession(ctx context.Context, pid, offset string) (*RestoredSession, error) {
	store := a.opts.Sessions
	if store == nil {
		return nil, nil
	}
	h := &handover{started: time.Now()}
	st := &a.sessions
	st.mu.Lock()
	if st.pending == nil {
		st.pending = map[*handover]struct{}{}
		st.bySID = map[string]*handover{}
	}
	st.pending[h] = struct{}{}
	st.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	stop := context.AfterFunc(a.ctx, cancel)
	rs, err := store.RestoreSession(rctx, a.name, pid, offset)
	stop()
	cancel()

	st.mu.Lock()
	delete(st.pending, h)
	if err != nil || rs == nil {
		st.mu.Unlock()
		return nil, nil
	}
	h.sid = rs.SID
	h.last = parseOffsetID(rs.LastOffset)
	h.rooms = make(map[string]struct{}, len(rs.Rooms))
	for _, r := range rs.Rooms {
		h.rooms[r] = struct{}{}
	}
	if !h.last.ok {
		// Nothing to hand over against; a store that gives no LastOffset
		// gets Node's behaviour.
		st.mu.Unlock()
		return rs, nil
	}
	st.bySID[h.sid] = h
	st.mu.Unlock()
	// A delivery that started before h was registered did not exclude
	// the socket: let it finish before the Socket.IO layer can connect it.
	st.deliverMu.Lock()
	st.deliverMu.Unlock()
	// Every publication queued after this marker is written to the log
	// after the read ended, so it is after LastOffset: once the marker has
	// run, the outbound path is past the handover.
	a.push(&outItem{local: func(string) { a.passPath(h, pathOut) }})
	return rs, nil
}

// passPath marks a path as past the handover of h, ending it when both are.
func (a *NamespaceAdapter) passPath(h *handover, path int) {
	st := &a.sessions
	st.mu.Lock()
	defer st.mu.Unlock()
	h.passed[path] = true
	a.maybeEndLocked(h, time.Now())
}

func (a *NamespaceAdapter) maybeEndLocked(h *handover, now time.Time) {
	st := &a.sessions
	if st.bySID[h.sid] != h {
		return
	}
	switch {
	case h.live.IsZero():
		if now.Sub(h.started) > handoverConnectTimeout {
			delete(st.bySID, h.sid)
		}
	case h.passed[pathOut] && (h.passed[pathIn] || now.Sub(h.live) > handoverLinger):
		delete(st.bySID, h.sid)
	}
}

// SessionResumed is called by the Socket.IO layer once the socket id
// restored by RestoreSession is connected and its missed packets are
// written: the packets held for it meanwhile that it wants (after
// LastOffset, rooms matching) are written to it through Namespace.Deliver,
// in arrival order, with deliveries stopped so that no live packet
// overtakes them; from then on it gets live packets directly. A second
// call, or a call for a socket without handover, does nothing. If more
// than handoverMaxHeld packets had to be held, nothing is written and the
// socket's connection is closed (Namespace.CloseConn), so that its client
// recovers again rather than silently missing packets.
func (a *NamespaceAdapter) SessionResumed(id string) {
	st := &a.sessions
	st.mu.Lock()
	h := st.bySID[id]
	st.mu.Unlock()
	if h == nil {
		return
	}

	st.deliverMu.Lock()
	defer st.deliverMu.Unlock()
	st.mu.Lock()
	if st.bySID[id] != h || !h.live.IsZero() {
		st.mu.Unlock()
		return
	}
	h.live = time.Now()
	held, over := h.held, h.over
	h.held = nil
	var send []heldPacket
	for _, hp := range held {
		if hp.offset.after(h.last) {
			h.passed[hp.path] = true
			if includes(h.rooms, hp.opts) {
				send = append(send, hp)
			}
		}
	}
	if over {
		delete(st.bySID, id)
	} else {
		a.maybeEndLocked(h, h.live)
	}
	st.mu.Unlock()

	if over {
		a.log.Warn("too many packets arrived while a session was being restored: closing the connection so that the client recovers again",
			"sid", id, "held", handoverMaxHeld)
		a.nsp.CloseConn(id)
		return
	}
	ids := []string{id}
	for _, hp := range send {
		a.nsp.Deliver(hp.p, ids, hp.opts.Flags)
	}
	a.nsp.Flush()
}

// endHandover ends the handover of socket id, if any (DelAll).
func (a *NamespaceAdapter) endHandover(id string) {
	st := &a.sessions
	st.mu.Lock()
	delete(st.bySID, id)
	st.mu.Unlock()
}

// deliver delivers a broadcast to the local sockets: the live path of both
// workers. It appends the offset (see addOffset) and applies the handovers
// in progress.
func (a *NamespaceAdapter) deliver(p *Packet, opts Options, offset string, path int) {
	a.addOffset(p, opts, offset)

	st := &a.sessions
	st.deliverMu.Lock()
	defer st.deliverMu.Unlock()
	off := parseOffsetID(offset)
	st.mu.Lock()
	if off.ok && a.csr && p.Type == packetEvent && p.ID == nil && !opts.Flags.Volatile {
		a.markLocked(off, offset, opts, path)
	}
	if len(st.pending) == 0 && len(st.bySID) == 0 {
		st.mu.Unlock()
		if ids := a.index.selectIDs(opts); len(ids) > 0 {
			a.nsp.Deliver(p, ids, opts.Flags)
		}
		return
	}
	now := time.Now()
	for h := range st.pending {
		if off.ok {
			st.hold(h, p, opts, off, path)
		}
	}
	// The sockets under handover that do not get p now: held for later,
	// already replayed, or deliberately left out.
	var skip map[string]struct{}
	for sid, h := range st.bySID {
		direct := false
		switch {
		case h.live.IsZero():
			if off.ok {
				st.hold(h, p, opts, off, path)
			}
		case off.ok && !off.after(h.last):
			// Already replayed, or deliberately left out.
		default:
			direct = true // live: it gets p now, if selected
		}
		if !direct {
			if skip == nil {
				skip = map[string]struct{}{}
			}
			skip[sid] = struct{}{}
		}
		if off.after(h.last) {
			h.passed[path] = true
		}
		a.maybeEndLocked(h, now)
	}
	st.mu.Unlock()

	ids := a.index.selectIDs(opts)
	if skip != nil {
		ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := skip[id]; return ok })
	}
	if len(ids) > 0 {
		a.nsp.Deliver(p, ids, opts.Flags)
	}
}

// markLocked records the delivery of the packet at off on path.
func (a *NamespaceAdapter) markLocked(off offsetID, offset string, opts Options, path int) {
	st := &a.sessions
	if off.after(st.newest[path]) || !st.newest[path].ok {
		st.newest[path], st.newStr[path] = off, offset
	}
	e := ringEntry{mark: DeliveryMark{Offset: offset, Own: st.newStr[pathOut], Others: st.newStr[pathIn]}, opts: opts}
	if len(st.ring) < markRing {
		st.ring = append(st.ring, e)
		return
	}
	st.ring[st.ringAt] = e
	st.ringAt = (st.ringAt + 1) % markRing
}

// marksFor returns the marks of the last packets sent to a socket in rooms,
// oldest first.
func (a *NamespaceAdapter) marksFor(rooms []string) []DeliveryMark {
	in := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		in[r] = struct{}{}
	}
	st := &a.sessions
	st.mu.Lock()
	defer st.mu.Unlock()
	var marks []DeliveryMark
	n := len(st.ring)
	for i := 0; i < n && len(marks) < maxMarks; i++ {
		// Newest first: the ring's next write position is its oldest.
		e := st.ring[((st.ringAt-1-i)%n+n)%n]
		if includes(in, e.opts) {
			marks = append(marks, e.mark)
		}
	}
	slices.Reverse(marks)
	return marks
}

func (st *sessionState) hold(h *handover, p *Packet, opts Options, off offsetID, path int) {
	limit := handoverMaxHeld
	if st.maxHeld > 0 {
		limit = st.maxHeld
	}
	if len(h.held) >= limit {
		h.over = true
		return
	}
	h.held = append(h.held, heldPacket{p: p, opts: opts, offset: off, path: path})
}

// includes is Node's shouldIncludePacket: the packet went to every socket
// or to one of rooms, and to none of its except rooms.
func includes(rooms map[string]struct{}, opts Options) bool {
	if len(opts.Rooms) > 0 {
		in := false
		for _, r := range opts.Rooms {
			if _, ok := rooms[r]; ok {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, r := range opts.Except {
		if _, ok := rooms[r]; ok {
			return false
		}
	}
	return true
}

// Replayable reports whether the broadcast is one connection state
// recovery replays from the log: an EVENT without ack id, not part of a
// broadcast with acks. Volatile ones are replayable by this rule, but live
// delivery gives them no offset, so the restore skips them (the logs flag
// them, Options.Flags.Volatile).
func (d *BroadcastData) Replayable() bool {
	return d != nil && d.RequestID == "" && d.Packet.ID == nil && d.Packet.Type == packetEvent
}
