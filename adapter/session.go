package adapter

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
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
//  1. from before the read until the socket is connected, every packet the
//     namespace delivers with an offset is also held for it, and the socket
//     is kept out of live delivery;
//  2. when socket.io connects the socket (its AddAll from _onconnect, after
//     the missed packets were written), the held packets it wants (after
//     LastOffset, rooms matching) are written to it, in arrival order;
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
// it the socket's connection is closed once it connects: its client
// reconnects and recovers again from the last offset it got, rather than
// silently missing packets.
const handoverMaxHeld = 100_000

// handoverConnectTimeout drops a restore whose socket never connects (a
// middleware that neither accepts nor rejects it).
const handoverConnectTimeout = 2 * time.Minute

// SessionStore is the seam through which connection state recovery plugs
// into the adapter (recovery.Sessions implements it). Its methods are
// called from socket.io's goroutines and must be safe for concurrent use.
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

// PersistedSession is the state a disconnected socket leaves behind.
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
	SID   string
	PID   string
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
// Lock order: deliverMu, then mu. deliverMu serializes the deliveries of
// both workers with the flush of held packets, so no live packet overtakes
// them; mu guards the maps and handovers and is never held while calling
// socket.io (a write error can close a socket, which calls DelAll).
type sessionState struct {
	deliverMu sync.Mutex
	mu        sync.Mutex
	pending   map[*handover]struct{}        // restores reading the log
	bySID     map[socket.SocketId]*handover // restored sockets under handover

	// The newest offset delivered on each path, and the last deliveries
	// with their marks (a ring of markRing, ringN used).
	newest [2]offsetID
	newStr [2]string
	ring   []ringEntry
	ringAt int
}

type ringEntry struct {
	mark DeliveryMark
	opts *socket.BroadcastOptions
}

type handover struct {
	started time.Time
	sid     socket.SocketId
	last    offsetID
	rooms   map[string]struct{} // the session's rooms
	held    []heldPacket
	over    bool // held overflowed
	live    time.Time
	passed  [2]bool // per path: no packet at or before last can come any more
}

type heldPacket struct {
	p      *parser.Packet
	opts   *socket.BroadcastOptions
	offset offsetID
	path   int
}

// offsetID is a parsed "<ms>-<seq>" offset; ok is false for "" or garbage.
type offsetID struct {
	ms, seq uint64
	ok      bool
}

func parseOffsetID(s string) offsetID {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return offsetID{}
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return offsetID{ms: ms, seq: seq, ok: err1 == nil && err2 == nil}
}

// after reports whether o is a valid offset strictly after p.
func (o offsetID) after(p offsetID) bool {
	return o.ok && (o.ms > p.ms || o.ms == p.ms && o.seq > p.seq)
}

// PersistSession hands the session of a socket that disconnected for a
// recoverable reason to Config.Sessions, if any, without blocking the
// disconnection: the write runs on a goroutine of the adapter, bounded by
// RequestTimeout, which Close waits for.
func (a *NamespaceAdapter) PersistSession(s *socket.SessionToPersist) {
	store := a.opts.Sessions
	if store == nil || s == nil {
		return
	}
	ps := PersistedSession{Nsp: a.name, SID: string(s.Sid), PID: string(s.Pid), Data: s.Data, TTL: a.maxDisconnection(), Origin: a.uid}
	if s.Rooms != nil {
		for _, r := range s.Rooms.Keys() {
			ps.Rooms = append(ps.Rooms, string(r))
		}
	}
	ps.Marks = a.marksFor(ps.Rooms)
	persist := func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.RequestTimeout)
		defer cancel()
		if err := store.PersistSession(ctx, ps); err != nil {
			a.warnLimited("persisting a session failed", "sid", ps.SID, "err", err)
		}
	}
	if !a.spawn(persist) {
		persist() // the adapter is closing: still give the session its chance
	}
}

// maxDisconnection is the server's maximum disconnection duration. socket.io
// fills in its default (2 min) only when it picks its own adapter, so an
// unset value is taken to mean that default here too.
func (a *NamespaceAdapter) maxDisconnection() time.Duration {
	if srv := a.nsp.Server(); srv != nil && srv.Opts() != nil {
		if csr := srv.Opts().ConnectionStateRecovery(); csr != nil && csr.MaxDisconnectionDuration() > 0 {
			return time.Duration(csr.MaxDisconnectionDuration()) * time.Millisecond
		}
	}
	return time.Duration(socket.DefaultMaxDisconnectionDuration) * time.Millisecond
}

// RestoreSession asks Config.Sessions, if any, for the session and the
// packets missed since offset, and sets up the handover (see above). Any
// failure gives (nil, nil): socket.io then creates a fresh session.
func (a *NamespaceAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	store := a.opts.Sessions
	if store == nil {
		return nil, nil
	}
	h := &handover{started: time.Now()}
	st := &a.sessions
	st.mu.Lock()
	if st.pending == nil {
		st.pending = map[*handover]struct{}{}
		st.bySID = map[socket.SocketId]*handover{}
	}
	st.pending[h] = struct{}{}
	st.mu.Unlock()

	ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestTimeout)
	rs, err := store.RestoreSession(ctx, a.name, string(pid), offset)
	cancel()

	st.mu.Lock()
	delete(st.pending, h)
	if err != nil || rs == nil {
		st.mu.Unlock()
		return nil, nil
	}
	h.sid = socket.SocketId(rs.SID)
	h.last = parseOffsetID(rs.LastOffset)
	h.rooms = make(map[string]struct{}, len(rs.Rooms))
	for _, r := range rs.Rooms {
		h.rooms[r] = struct{}{}
	}
	if !h.last.ok {
		// Nothing to hand over against; a store that gives no LastOffset
		// gets Node's behaviour.
		st.mu.Unlock()
	} else {
		st.bySID[h.sid] = h
		st.mu.Unlock()
		// A delivery that started before h was registered did not exclude
		// the socket: let it finish before socket.io can connect it.
		st.deliverMu.Lock()
		st.deliverMu.Unlock()
		// Every publication queued after this marker is written to the
		// log after the read ended, so it is after LastOffset: once the
		// marker has run, the outbound path is past the handover.
		a.push(&outItem{local: func(string) { a.passPath(h, pathOut) }})
	}

	rooms := types.NewSet[socket.Room]()
	for _, r := range rs.Rooms {
		rooms.Add(socket.Room(r))
	}
	missed := make([]any, len(rs.MissedPackets))
	for i, p := range rs.MissedPackets {
		missed[i] = p
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{Sid: h.sid, Pid: socket.PrivateSessionId(rs.PID), Rooms: rooms, Data: rs.Data},
		MissedPackets:    missed,
	}, nil
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

// AddAll adds a socket to rooms. For a socket under handover it keeps the
// socket's own room (the handover keeps it out of live delivery through
// it) and, when the call is socket.io's connection of the socket, writes
// the held packets to it first.
func (a *NamespaceAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	st := &a.sessions
	st.mu.Lock()
	h := st.bySID[id]
	st.mu.Unlock()
	if h == nil {
		a.Adapter.AddAll(id, rooms)
		return
	}
	if rooms == nil {
		rooms = types.NewSet[socket.Room]()
	}
	if !rooms.Has(socket.Room(id)) {
		rooms = types.NewSet(append(rooms.Keys(), socket.Room(id))...)
	}
	a.Adapter.AddAll(id, rooms)
	sock, ok := a.nsp.Sockets().Load(id)
	if !ok || !sock.Connected() {
		return // still being constructed: these are the session's rooms
	}

	// Connected: the missed packets are written; the held ones follow,
	// with deliveries stopped so that no live packet overtakes them.
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
			"sid", string(id), "held", handoverMaxHeld)
		sock.Conn().Close(false)
		return
	}
	for _, hp := range send {
		a.Adapter.Broadcast(hp.p, onlyTo(id, hp.opts))
	}
}

// DelAll removes a socket from all its rooms and ends its handover.
func (a *NamespaceAdapter) DelAll(id socket.SocketId) {
	st := &a.sessions
	st.mu.Lock()
	delete(st.bySID, id)
	st.mu.Unlock()
	a.Adapter.DelAll(id)
}

// deliver delivers a broadcast to the local sockets: the live path of both
// workers. It appends the offset (see addOffset) and applies the handovers
// in progress.
func (a *NamespaceAdapter) deliver(p *parser.Packet, opts *socket.BroadcastOptions, offset string, path int) {
	a.addOffset(p, opts, offset)

	st := &a.sessions
	st.deliverMu.Lock()
	defer st.deliverMu.Unlock()
	off := parseOffsetID(offset)
	st.mu.Lock()
	if off.ok && a.csr && a.opts.Sessions != nil && p.Type == parser.EVENT && p.Id == nil && !isVolatile(opts) {
		a.markLocked(off, offset, opts, path)
	}
	if len(st.pending) == 0 && len(st.bySID) == 0 {
		st.mu.Unlock()
		a.Adapter.Broadcast(p, opts)
		return
	}
	now := time.Now()
	for h := range st.pending {
		if off.ok {
			hold(h, p, opts, off, path)
		}
	}
	var direct []socket.SocketId
	excluded := opts
	for sid, h := range st.bySID {
		if excluded == opts {
			excluded = cloneOptions(opts)
		}
		excluded.Except.Add(socket.Room(sid))
		switch {
		case h.live.IsZero():
			if off.ok {
				hold(h, p, opts, off, path)
			}
		case off.ok && !off.after(h.last):
			// Already replayed, or deliberately left out.
		default:
			direct = append(direct, sid)
		}
		if off.after(h.last) {
			h.passed[path] = true
		}
		a.maybeEndLocked(h, now)
	}
	st.mu.Unlock()

	a.Adapter.Broadcast(p, excluded)
	for _, sid := range direct {
		if includes(roomSet(a.Adapter.SocketRooms(sid)), opts) {
			a.Adapter.Broadcast(p, onlyTo(sid, opts))
		}
	}
}

// markLocked records the delivery of the packet at off on path.
func (a *NamespaceAdapter) markLocked(off offsetID, offset string, opts *socket.BroadcastOptions, path int) {
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

func hold(h *handover, p *parser.Packet, opts *socket.BroadcastOptions, off offsetID, path int) {
	if len(h.held) >= handoverMaxHeld {
		h.over = true
		return
	}
	h.held = append(h.held, heldPacket{p: p, opts: opts, offset: off, path: path})
}

// onlyTo returns opts narrowed to the socket id (its own room), keeping the
// flags (volatile, compress).
func onlyTo(id socket.SocketId, opts *socket.BroadcastOptions) *socket.BroadcastOptions {
	o := &socket.BroadcastOptions{Rooms: types.NewSet(socket.Room(id)), Except: types.NewSet[socket.Room]()}
	if opts != nil {
		o.Flags = opts.Flags
	}
	return o
}

func roomSet(s *types.Set[socket.Room]) map[string]struct{} {
	m := map[string]struct{}{}
	if s != nil {
		for _, r := range s.Keys() {
			m[string(r)] = struct{}{}
		}
	}
	return m
}

// includes is Node's shouldIncludePacket: the packet went to every socket
// or to one of rooms, and to none of its except rooms.
func includes(rooms map[string]struct{}, opts *socket.BroadcastOptions) bool {
	if opts == nil {
		return true
	}
	if opts.Rooms != nil && opts.Rooms.Len() > 0 {
		in := false
		for _, r := range opts.Rooms.Keys() {
			if _, ok := rooms[string(r)]; ok {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if opts.Except != nil {
		for _, r := range opts.Except.Keys() {
			if _, ok := rooms[string(r)]; ok {
				return false
			}
		}
	}
	return true
}
