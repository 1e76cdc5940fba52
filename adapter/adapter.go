package adapter

import (
	"context"
	"errors"
	"fmt"
	"github.com/sockstream/sockstream/internal/lograte"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// maxBatch bounds how many queued publications go to a BatchPublisher at once.
const maxBatch = 256

// NamespaceAdapter is the cluster adapter of one namespace on one node. It
// keeps the namespace's local room index (as Node's in-memory adapter does),
// reaches the local sockets through the Namespace the Socket.IO layer gave
// Builder.New, and turns every operation that must reach the other nodes
// into a Message.
//
// Operations that publish (Broadcast, BroadcastWithAck, AddSockets,
// DelSockets, DisconnectSockets, ServerSideEmit, the FETCH_SOCKETS request)
// are queued and carried out one at a time, in call order, by the
// Builder's node-level workers (scheduler.go): a message is published, then
// applied to the local sockets, so two operations of a namespace reach
// every node, this one included, in the same order. The messages of other
// nodes and their server-side events have queues of their own, served the
// same way; a namespace with nothing queued holds no goroutine. The
// caller waits until its message was handed to the transport and the
// transport answered (what its answer means: Transport.Publish); callers that wait at the same time are published
// together, in one PublishBatch. Local-only operations (Flags.Local) and
// volatile broadcasts are queued the same way but not waited for.
//
// It runs from Builder.New to Close: New subscribes (in the background,
// retrying until the transport accepts), announces the node and joins the
// Builder's heartbeats; Close undoes all of it.
type NamespaceAdapter struct {
	b         *Builder
	transport Transport
	batcher   BatchPublisher // nil unless the transport implements it
	opts      Config
	log       *slog.Logger
	m         *metrics
	nsp       Namespace
	name      string
	uid       string
	// csr: connection state recovery is on (Config.Sessions is set): the
	// offsets are appended to the packets that qualify (see addOffset).
	csr bool

	index *roomIndex // the local rooms

	ctx    context.Context // cancelled at the end of Close
	cancel context.CancelFunc
	// pubCtx bounds the publications of the outbound worker; cancelled when
	// Close gives up waiting for them.
	pubCtx    context.Context
	pubCancel context.CancelFunc

	out     *fifo[*outItem]
	outMu   sync.RWMutex // guards closing against pushes to out
	closing bool
	inbound *fifo[*Message]
	sse     *fifo[*Message]

	// The work of the namespace, run by the Builder's workers: publishing
	// out, applying inbound, handing sse over, subscribing.
	outTask, inTask, sseTask, subTask *task

	mu          sync.Mutex
	alive       map[string]time.Time // peer uid -> last message
	dead        map[string]time.Time // peer uid -> declared dead at
	requests    map[string]*request
	ackRequests map[string]*request

	unsubscribe func()
	subscribed  chan struct{}
	// subStopped: Close has begun; a subscription made meanwhile is undone.
	subStopped bool
	subTimer   *time.Timer   // the next subscription attempt, after a failure
	subBackoff time.Duration // the wait before the next attempt

	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished

	spawnMu     sync.RWMutex
	spawnClosed bool
	wg          sync.WaitGroup

	lastWarn lograte.OncePerSecond // of warnLimited

	sessions sessionState // connection state recovery handovers (session.go)
}

// outItem is one queued operation: a message to publish (nil for a
// local-only operation) and the local part, given the publication's offset.
type outItem struct {
	msg   *Message
	local func(offset string)
	// err is the publication's outcome (nil when published or queued by
	// the transport), set by the outbound worker before it runs local.
	err error
	// done, when not nil, receives err once the message was handed to the
	// transport and the local part applied: the caller waits on it.
	done chan error
}

var _ Adapter = (*NamespaceAdapter)(nil)

func newNamespaceAdapter(b *Builder, nsp Namespace) *NamespaceAdapter {
	ctx, cancel := context.WithCancel(context.Background())
	pubCtx, pubCancel := context.WithCancel(context.Background())
	a := &NamespaceAdapter{
		b:           b,
		transport:   b.transport,
		opts:        b.opts,
		m:           b.metrics,
		nsp:         nsp,
		name:        nsp.Name(),
		uid:         randomID(),
		csr:         b.opts.Sessions != nil,
		index:       newRoomIndex(),
		ctx:         ctx,
		cancel:      cancel,
		pubCtx:      pubCtx,
		pubCancel:   pubCancel,
		out:         newFifo[*outItem](),
		inbound:     newFifo[*Message](),
		sse:         newFifo[*Message](),
		alive:       map[string]time.Time{},
		dead:        map[string]time.Time{},
		requests:    map[string]*request{},
		ackRequests: map[string]*request{},
		subscribed:  make(chan struct{}),
		closed:      make(chan struct{}),
	}
	a.index.obs, _ = nsp.(RoomObserver)
	a.batcher, _ = b.transport.(BatchPublisher)
	a.log = b.log.With("nsp", a.name, "uid", a.uid)
	a.outTask = newTask(b.sched, a.outStep)
	a.inTask = newTask(b.sched, func() bool { return a.drainStep(a.inbound, a.apply, a.nsp.Flush) })
	a.sseTask = newTask(b.sched, func() bool { return a.drainStep(a.sse, a.serverSideEmit, nil) })
	a.subTask = newTask(b.sched, a.subscribeStep)
	a.out.notify = a.outTask.wake
	a.inbound.notify = a.inTask.wake
	a.sse.notify = a.sseTask.wake
	return a
}

// UID is the uid of this namespace adapter in cluster messages.
func (a *NamespaceAdapter) UID() string { return a.uid }

// Name is the namespace's name.
func (a *NamespaceAdapter) Name() string { return a.name }

// start subscribes to the namespace's messages (in the background, on a
// worker); once subscribed, the adapter announces the node with
// INITIAL_HEARTBEAT and joins the Builder's heartbeats. Builder.New calls
// it.
func (a *NamespaceAdapter) start() {
	a.m.peersAlive.WithLabelValues(a.name).Set(0)
	a.subTask.wake()
}

// spawn runs f on a new goroutine tracked by Close; it refuses (and returns
// false) once Close has stopped accepting work.
func (a *NamespaceAdapter) spawn(f func()) bool {
	a.spawnMu.RLock()
	defer a.spawnMu.RUnlock()
	if a.spawnClosed {
		return false
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
	return true
}

// subscribeStep subscribes through the transport (a run of subTask). On
// failure it schedules another attempt, with backoff, on a timer (no
// goroutine waits meanwhile); on success it publishes INITIAL_HEARTBEAT
// and joins the Builder's heartbeats and liveness checks.
func (a *NamespaceAdapter) subscribeStep() bool {
	if a.ctx.Err() != nil {
		return false
	}
	unsub, err := a.transport.Subscribe(a.ctx, a.name, a.uid, a.onMessage)
	if err != nil {
		if a.ctx.Err() != nil {
			return false
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.subStopped {
			return false
		}
		a.subBackoff = min(max(2*a.subBackoff, 50*time.Millisecond), 5*time.Second)
		a.log.Warn("subscribe failed, retrying", "err", err, "in", a.subBackoff)
		a.subTimer = time.AfterFunc(a.subBackoff, func() {
			// Under a.mu: Close either sees the timer or stops it.
			a.mu.Lock()
			defer a.mu.Unlock()
			if !a.subStopped {
				a.subTask.wake()
			}
		})
		return false
	}
	a.mu.Lock()
	if a.subStopped {
		a.mu.Unlock()
		unsub()
		return false
	}
	a.unsubscribe = unsub
	// Under a.mu, with unsubscribe: Close, which reads it there, undoes
	// both. Reported from the subscription to the close: the span in which
	// the adapter tracks peers.
	a.m.peers.add(a)
	a.b.live(a)
	a.mu.Unlock()
	close(a.subscribed)
	a.push(&outItem{msg: a.message(InitialHeartbeat, nil)})
	return false
}

func (a *NamespaceAdapter) message(t MessageType, data any) *Message {
	return &Message{UID: a.uid, Nsp: a.name, Type: t, Data: data}
}

// push queues an operation for the outbound worker and reports true. After
// Close it runs the local part at once, publishes nothing and reports false.
func (a *NamespaceAdapter) push(it *outItem) bool {
	a.outMu.RLock()
	if !a.closing {
		a.out.push(it)
		a.outMu.RUnlock()
		return true
	}
	a.outMu.RUnlock()
	a.runLocalNow(it)
	return false
}

// pushOp is push for an operation of the Adapter interface. An operation
// with a message to publish waits for the transport's verdict: nil once
// the transport took the message, else the error (see publishError);
// ErrClosed when the adapter is closed (the local part was then applied,
// nothing published). A local-only operation, or a volatile broadcast, is
// not waited for and returns nil, even after Close.
func (a *NamespaceAdapter) pushOp(it *outItem, wait bool) error {
	if it.msg == nil || !wait {
		a.push(it)
		return nil
	}
	it.done = make(chan error, 1)
	if !a.push(it) {
		return ErrClosed
	}
	return <-it.done
}

// outStep is a run of the outbound task: it publishes one batch of queued
// messages, in order, and applies each operation locally once its message
// is published.
func (a *NamespaceAdapter) outStep() bool {
	batch := 1
	if a.batcher != nil {
		batch = maxBatch
	}
	if items := a.out.take(batch); len(items) > 0 {
		a.process(items)
	}
	return a.out.len() > 0
}

func (a *NamespaceAdapter) process(items []*outItem) {
	if a.batcher != nil && len(items) > 1 {
		var msgs []*Message
		for _, it := range items {
			if it.msg != nil {
				msgs = append(msgs, it.msg)
			}
		}
		var results []PublishResult
		if len(msgs) > 0 {
			results = a.batcher.PublishBatch(a.pubCtx, msgs)
		}
		j := 0
		for _, it := range items {
			offset := ""
			if it.msg != nil {
				r := batchResult(results, j)
				j++
				offset = r.Offset
				a.published(it, r.Err)
			}
			a.runLocal(it, offset)
		}
		a.finish(items)
		return
	}
	for _, it := range items {
		offset := ""
		if it.msg != nil {
			var err error
			offset, err = a.transport.Publish(a.pubCtx, it.msg)
			a.published(it, err)
		}
		a.runLocal(it, offset)
	}
	a.finish(items)
}

// finish starts the writes of the local parts of items (one write per
// connection for the whole batch: Namespace.Flush), then answers their
// callers, if they wait.
func (a *NamespaceAdapter) finish(items []*outItem) {
	a.nsp.Flush()
	for _, it := range items {
		if it.done != nil {
			it.done <- it.err
		}
	}
}

// runLocalNow applies the local part of it alone, now, and flushes.
func (a *NamespaceAdapter) runLocalNow(it *outItem) {
	a.runLocal(it, "")
	a.nsp.Flush()
}

func (a *NamespaceAdapter) runLocal(it *outItem, offset string) {
	if it.local == nil {
		return
	}
	defer a.recoverPanic("local operation")
	it.local(offset)
}

// published records the transport's verdict on it.msg: counted, and
// it.err set to what the caller gets.
func (a *NamespaceAdapter) published(it *outItem, err error) {
	msg := it.msg
	if err == nil {
		if msg.Type == Broadcast {
			a.m.broadcastsPub.Inc()
		}
		return
	}
	it.err = a.publishError(msg.Type, err)
	a.m.publishErrors.WithLabelValues(msg.Type.String()).Inc()
	a.warnLimited("publish failed", "type", msg.Type.String(), "err", err)
}

// publishError is the error a caller gets for a message the transport did
// not take: it wraps the transport's error (ErrBufferFull, ErrUnavailable,
// ErrClosed...) and, when Close cut the publication short, ErrClosed.
func (a *NamespaceAdapter) publishError(t MessageType, err error) error {
	if !errors.Is(err, ErrClosed) && a.pubCtx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("adapter: %s not published: %w: %w", t, ErrClosed, err)
	}
	return fmt.Errorf("adapter: %s not published: %w", t, err)
}

// warnLimited logs at most one warning per second per adapter: a transport
// outage must not turn every broadcast into a log line (the counters have
// the full story).
func (a *NamespaceAdapter) warnLimited(msg string, args ...any) {
	if a.lastWarn.Allow() {
		a.log.Warn(msg, args...)
	}
}

func (a *NamespaceAdapter) recoverPanic(where string) {
	if r := recover(); r != nil {
		a.m.malformed.WithLabelValues("panic").Inc()
		a.log.Error("recovered panic in "+where, "panic", r)
	}
}

// ---- the room index (this node, at once) ----

// AddAll adds the local socket id to rooms.
func (a *NamespaceAdapter) AddAll(id string, rooms []string) { a.index.addAll(id, rooms) }

// Del removes the local socket id from room.
func (a *NamespaceAdapter) Del(id, room string) { a.index.del(id, room) }

// DelAll removes the local socket id from every room, and ends its
// handover if it was being restored (session.go).
func (a *NamespaceAdapter) DelAll(id string) {
	a.endHandover(id)
	a.index.delAll(id)
}

// SocketRooms returns the rooms of the local socket id (sorted), nil if
// the socket is unknown.
func (a *NamespaceAdapter) SocketRooms(id string) []string { return a.index.socketRooms(id) }

// Rooms returns the names of the rooms with local sockets (sorted).
func (a *NamespaceAdapter) Rooms() []string { return a.index.roomNames() }

// ---- cluster operations ----

// ServerCount returns the number of nodes serving the namespace, this one
// included: the transport's count, less the peers declared dead that it may
// still count (see the package documentation). 1 once closed.
func (a *NamespaceAdapter) ServerCount() int {
	if a.isClosing() {
		return 1
	}
	return 1 + a.snapshot(a.ctx).expected
}

// Broadcast publishes the packet to the other nodes (unless opts.Flags.Local)
// and then delivers it to the matching local sockets, in call order.
//
// It returns once the transport answered: nil when it took the packet
// (written to the stream, or queued in its bounded outage buffer, see
// Transport.Publish), else an error wrapping the transport's
// (ErrBufferFull, ErrUnavailable, ...): the other nodes will not get the
// packet. As in Node, the local sockets get it either way. After Close it
// returns ErrClosed (the packet then reaches the local sockets only).
//
// A local-only packet (opts.Flags.Local) is queued, not waited for, and
// never fails. A volatile one is not waited for either, and returns nil
// (ErrClosed after Close): it is not published while the transport is not
// Ready (counted in volatile_dropped_total), and a publication that fails
// is only counted.
func (a *NamespaceAdapter) Broadcast(p *Packet, opts Options) error {
	if p == nil {
		return errors.New("adapter: Broadcast of a nil packet")
	}
	opts = cloneOptions(opts)
	wire := wirePacket(p, true)
	local := localPacket(wire, a.name) // own data slice: the offset is appended to it
	it := &outItem{local: func(offset string) {
		a.deliver(local, opts, offset, pathOut)
	}}
	if opts.Flags.Local {
		return a.pushOp(it, false)
	}
	if opts.Flags.Volatile {
		if a.isClosing() {
			a.runLocalNow(it)
			return ErrClosed
		}
		if a.transport.Ready() {
			it.msg = a.message(Broadcast, &BroadcastData{Packet: wire, Opts: opts})
		} else {
			a.m.volatileDropped.Inc()
		}
		return a.pushOp(it, false)
	}
	it.msg = a.message(Broadcast, &BroadcastData{Packet: wire, Opts: opts})
	return a.pushOp(it, true)
}

// addOffset appends the stream offset to an event packet without ack id and
// not volatile, when connection state recovery is on (Config.Sessions is
// set), as Node's ClusterAdapter.addOffsetIfNecessary does (on the
// publishing node and on the receiving ones). An empty offset (the message
// waits in the transport's outage buffer, or the publication failed) is not
// appended.
func (a *NamespaceAdapter) addOffset(p *Packet, opts Options, offset string) {
	if !a.csr || offset == "" || p.Type != packetEvent || p.ID != nil || opts.Flags.Volatile {
		return
	}
	p.Data = append(p.Data, offset)
}

// BroadcastWithAck publishes the packet with a request id (the ack id the
// caller set is not published: every node uses ack ids of its own), then
// writes it to the matching local sockets with Namespace.DeliverWithAck and
// reports their number through clientCount. Every other node's client
// count and acknowledgements come back through clientCount and ack.
//
// What ack receives, once per client that answers:
//
//   - for a client of this node, the arguments it acknowledged with, as
//     the Namespace passes them (possibly an empty list);
//   - for a client of another node, []any{packet}, packet being the one
//     value that node relayed: the client's first argument (nil when it
//     gave none), as a Node node relays it.
//
// So, as in Node, a client's response is args[0] (nil when args is empty).
// clientCount is called once for this node, once for every other node
// that answers, and with 0 for every node that is declared dead before
// answering. Both are called on the adapter's goroutines (remote answers
// on the transport's reader goroutine, local acknowledgements on whatever
// goroutine the Namespace calls them), possibly concurrently: they must be
// safe for concurrent use and must not block. Remote answers are taken
// until the flags' timeout (else RequestTimeout) passes.
//
// It returns as Broadcast does, once the transport answered: an error
// means no other node got the packet (the local sockets did, and their
// acknowledgements still come through ack); no remote answer follows.
func (a *NamespaceAdapter) BroadcastWithAck(p *Packet, opts Options, clientCount func(n int), ack func(args []any)) error {
	if p == nil {
		return errors.New("adapter: BroadcastWithAck of a nil packet")
	}
	if clientCount == nil {
		clientCount = func(int) {}
	}
	if ack == nil {
		ack = func([]any) {}
	}
	opts = cloneOptions(opts)
	wire := wirePacket(p, false)
	local := localPacket(wire, a.name)
	if p.ID != nil {
		id := *p.ID
		local.ID = &id
	}
	var r *request
	it := &outItem{}
	it.local = func(string) {
		if it.err != nil && r != nil {
			// No other node got it: no answer will come.
			a.abort(r, outcomePublishError, it.err)
		}
		n := a.nsp.DeliverWithAck(local, a.index.selectIDs(opts), opts.Flags, ack)
		clientCount(n)
	}
	if opts.Flags.Local {
		return a.pushOp(it, false)
	}
	if a.isClosing() {
		a.runLocalNow(it)
		return ErrClosed
	}
	timeout := a.opts.RequestTimeout
	if opts.Flags.TimeoutMs != nil {
		timeout = time.Duration(*opts.Flags.TimeoutMs) * time.Millisecond
	}
	snap := a.snapshot(a.ctx)
	if snap.unavailable != nil {
		a.m.requests.WithLabelValues(kindBroadcastAck, outcomePublishError).Inc()
		a.push(it)
		return fmt.Errorf("adapter: %s with ack not published: %w", Broadcast, snap.unavailable)
	}
	r = a.newRequest(kindBroadcastAck, snap)
	if r.expected <= 0 {
		a.m.requests.WithLabelValues(kindBroadcastAck, outcomeLocal).Inc()
		r = nil
		return a.pushOp(it, false)
	}
	r.clientCount, r.ack = clientCount, ack
	a.register(r, timeout)
	it.msg = a.message(Broadcast, &BroadcastData{Packet: wire, Opts: opts, RequestID: r.id})
	err := a.pushOp(it, true)
	if errors.Is(err, ErrClosed) && it.err == nil {
		// Refused by push: Close completes the registered request.
		a.abort(r, outcomeClosed, ErrClosed)
	}
	return err
}

// AddSockets makes the matching sockets of every node join rooms. It
// returns as Broadcast does: nil once the transport took the message, an
// error when it refused it (this node's sockets joined anyway), ErrClosed
// after Close; with the Local flag it is not waited for and never fails.
func (a *NamespaceAdapter) AddSockets(opts Options, rooms []string) error {
	opts = cloneOptions(opts)
	rooms = cloneRooms(rooms)
	it := &outItem{local: func(string) {
		for _, id := range a.index.selectIDs(opts) {
			a.index.addAll(id, rooms)
		}
	}}
	return a.pushCluster(it, opts, func() *Message {
		return a.message(SocketsJoin, &SocketsJoinLeaveData{Opts: opts, Rooms: rooms})
	})
}

// pushCluster carries out a room operation: on this node only with the
// Local flag (never failing, not waited for), else published (msg makes
// the message) and applied here, returning the transport's verdict as
// Broadcast does; after Close, applied here only, with ErrClosed.
func (a *NamespaceAdapter) pushCluster(it *outItem, opts Options, msg func() *Message) error {
	if opts.Flags.Local {
		return a.pushOp(it, false)
	}
	if a.isClosing() {
		a.runLocalNow(it)
		return ErrClosed
	}
	it.msg = msg()
	return a.pushOp(it, true)
}

// DelSockets makes the matching sockets of every node leave rooms; it
// returns as AddSockets does.
func (a *NamespaceAdapter) DelSockets(opts Options, rooms []string) error {
	opts = cloneOptions(opts)
	rooms = cloneRooms(rooms)
	it := &outItem{local: func(string) { a.delSockets(opts, rooms) }}
	return a.pushCluster(it, opts, func() *Message {
		return a.message(SocketsLeave, &SocketsJoinLeaveData{Opts: opts, Rooms: rooms})
	})
}

func (a *NamespaceAdapter) delSockets(opts Options, rooms []string) {
	for _, id := range a.index.selectIDs(opts) {
		for _, r := range rooms {
			a.index.del(id, r)
		}
	}
}

func cloneRooms(rooms []string) []string {
	if rooms == nil {
		return []string{}
	}
	return slices.Clone(rooms)
}

// DisconnectSockets disconnects the matching sockets of every node;
// closeConn also closes their underlying connections. It returns as
// AddSockets does.
func (a *NamespaceAdapter) DisconnectSockets(opts Options, closeConn bool) error {
	opts = cloneOptions(opts)
	it := &outItem{local: func(string) { a.disconnect(opts, closeConn) }}
	return a.pushCluster(it, opts, func() *Message {
		return a.message(DisconnectSockets, &DisconnectSocketsData{Opts: opts, Close: closeConn})
	})
}

func (a *NamespaceAdapter) disconnect(opts Options, closeConn bool) {
	if ids := a.index.selectIDs(opts); len(ids) > 0 {
		a.nsp.Disconnect(ids, closeConn)
	}
}

// describe returns the local sockets opts selects, as Namespace.Describe
// gives them; never nil.
func (a *NamespaceAdapter) describe(opts Options) []SocketInfo {
	var infos []SocketInfo
	if ids := a.index.selectIDs(opts); len(ids) > 0 {
		infos = a.nsp.Describe(ids)
	}
	if infos == nil {
		infos = []SocketInfo{}
	}
	return infos
}

// FetchSockets returns the matching sockets of every node: this node's
// first (from Namespace.Describe, after the operations queued before the
// call, so a preceding AddSockets is seen), then the others'. It waits
// until every expected live node answered, the flags' timeout (else
// RequestTimeout) passed, or ctx ended; in the last two cases it returns
// the sockets that did arrive with a *TimeoutError (wrapping ErrTimeout,
// and ctx's error when ctx ended). When the transport cannot send the
// request (Redis unreachable: ErrUnavailable), it returns at once with
// this node's sockets and that error. ctx also bounds the transport's
// server count. With the Local flag it describes this node's sockets at
// once. After Close: this node's sockets and ErrClosed.
func (a *NamespaceAdapter) FetchSockets(ctx context.Context, opts Options) ([]SocketInfo, error) {
	opts = cloneOptions(opts)
	if opts.Flags.Local {
		return a.describe(opts), nil
	}
	if a.isClosing() {
		return a.describe(opts), ErrClosed
	}
	snap := a.snapshot(ctx)
	if snap.unavailable != nil {
		a.m.requests.WithLabelValues(kindFetchSockets, outcomePublishError).Inc()
		infos, err := a.fetchLocalInOrder(ctx, opts)
		return infos, errors.Join(fmt.Errorf("adapter: %s not sent: %w", FetchSockets, snap.unavailable), err)
	}
	if snap.expected <= 0 {
		a.m.requests.WithLabelValues(kindFetchSockets, outcomeLocal).Inc()
		return a.fetchLocalInOrder(ctx, opts)
	}
	timeout := a.opts.RequestTimeout
	if opts.Flags.TimeoutMs != nil && *opts.Flags.TimeoutMs > 0 {
		timeout = time.Duration(*opts.Flags.TimeoutMs) * time.Millisecond
	}
	r := a.newRequest(kindFetchSockets, snap)
	r.done = make(chan struct{})
	a.register(r, timeout)
	it := &outItem{msg: a.message(FetchSockets, &FetchSocketsData{Opts: opts, RequestID: r.id})}
	it.local = func(string) {
		if it.err != nil {
			a.failRequest(r, a.describe(opts), it.err)
			return
		}
		a.setLocalSockets(r, a.describe(opts))
	}
	if !a.push(it) {
		a.abort(r, outcomeClosed, ErrClosed)
	}
	a.wait(ctx, r)
	return r.result()
}

// fetchLocalInOrder describes the local sockets after the queued
// operations, so it sees the rooms joined by an earlier SocketsJoin.
func (a *NamespaceAdapter) fetchLocalInOrder(ctx context.Context, opts Options) ([]SocketInfo, error) {
	done := make(chan []SocketInfo, 1)
	if !a.push(&outItem{local: func(string) { done <- a.describe(opts) }}) {
		return <-done, ErrClosed
	}
	select {
	case infos := <-done:
		return infos, nil
	case <-ctx.Done():
		return []SocketInfo{}, fmt.Errorf("%w: %w", &TimeoutError{Kind: kindFetchSockets}, ctx.Err())
	}
}

// ServerSideEmit sends an event (args[0], a string, is its name) to the
// other nodes' server-side handlers. It returns once the transport
// answered: nil when it sent the event, an error when it could not
// (ErrUnavailable while Redis is unreachable: server-side events are not
// buffered), ErrClosed after Close.
func (a *NamespaceAdapter) ServerSideEmit(args []any) error {
	if err := checkEventName(args); err != nil {
		return err
	}
	if a.isClosing() {
		return ErrClosed
	}
	return a.pushOp(&outItem{msg: a.message(ServerSideEmit, &ServerSideEmitData{Packet: normalizeArgs(args)})}, true)
}

func checkEventName(args []any) error {
	if len(args) == 0 {
		return errors.New("adapter: ServerSideEmit needs an event name")
	}
	if _, ok := args[0].(string); !ok {
		return fmt.Errorf("adapter: ServerSideEmit: the event name is a %T, not a string", args[0])
	}
	return nil
}

// ServerSideEmitWithAck is ServerSideEmit waiting for one answer per other
// node: the first argument its handler acknowledged with (nil if none), in
// arrival order. It returns when every expected live node answered
// (at once, with an empty list, when there is none), or when
// RequestTimeout passes or ctx ends, with the answers received and a
// *TimeoutError (wrapping ErrTimeout, and ctx's error when ctx ended).
// When the transport cannot send the event it returns at once, with no
// answer and its error (see ServerSideEmit). ctx also bounds the
// transport's server count. After Close: nil, ErrClosed.
func (a *NamespaceAdapter) ServerSideEmitWithAck(ctx context.Context, args []any) ([]any, error) {
	if err := checkEventName(args); err != nil {
		return nil, err
	}
	if a.isClosing() {
		return nil, ErrClosed
	}
	snap := a.snapshot(ctx)
	if snap.unavailable != nil {
		a.m.requests.WithLabelValues(kindServerSideEmit, outcomePublishError).Inc()
		return []any{}, fmt.Errorf("adapter: %s not sent: %w", ServerSideEmit, snap.unavailable)
	}
	r := a.newRequest(kindServerSideEmit, snap)
	if r.expected <= 0 {
		a.m.requests.WithLabelValues(kindServerSideEmit, outcomeLocal).Inc()
		return []any{}, nil
	}
	r.done = make(chan struct{})
	a.register(r, a.opts.RequestTimeout)
	it := &outItem{msg: a.message(ServerSideEmit, &ServerSideEmitData{RequestID: r.id, Packet: normalizeArgs(args)})}
	it.local = func(string) {
		if it.err != nil {
			a.abort(r, outcomePublishError, it.err)
		}
	}
	if !a.push(it) {
		a.abort(r, outcomeClosed, ErrClosed)
	}
	a.wait(ctx, r)
	responses := r.responses
	if responses == nil {
		responses = []any{}
	}
	return responses, r.err
}

func (a *NamespaceAdapter) isClosing() bool {
	a.outMu.RLock()
	defer a.outMu.RUnlock()
	return a.closing
}

// Close publishes the queued operations (waiting at most RequestTimeout),
// announces ADAPTER_CLOSE, unsubscribes, completes the pending requests with
// ErrClosed and stops every goroutine of the adapter. The server calls it
// when it shuts down (never from inside a Namespace method: it waits for
// the adapter's goroutines). It is idempotent; every call returns once the
// first has finished. Operations after Close act on this node only and
// return ErrClosed.
func (a *NamespaceAdapter) Close() error {
	a.closeOnce.Do(a.shutdown)
	<-a.closed
	return nil
}

// Closed is closed once Close has finished.
func (a *NamespaceAdapter) Closed() <-chan struct{} { return a.closed }

func (a *NamespaceAdapter) shutdown() {
	defer close(a.closed)
	a.outMu.Lock()
	a.closing = true
	a.outMu.Unlock()

	// Let the outbound task publish what is queued, within RequestTimeout
	// (nothing more can be queued: push refuses once closing). Stopping
	// the task ends it after the batch it runs; what was queued behind
	// that batch is published (or fails, once RequestTimeout has cancelled
	// publishing) and applied here, so that every caller gets its answer.
	timer := time.AfterFunc(a.opts.RequestTimeout, a.pubCancel)
	a.outTask.stop()
	for a.out.len() > 0 {
		a.outStep()
	}
	timer.Stop()

	a.mu.Lock()
	unsub := a.unsubscribe
	a.subStopped = true
	if a.subTimer != nil {
		a.subTimer.Stop()
	}
	a.mu.Unlock()
	if unsub != nil {
		a.b.unlive(a)
		ctx, cancel := context.WithTimeout(a.pubCtx, a.opts.RequestTimeout)
		if _, err := a.transport.Publish(ctx, a.message(AdapterClose, nil)); err != nil {
			a.log.Debug("publishing ADAPTER_CLOSE failed", "err", err)
		}
		cancel()
		unsub()
		a.m.peers.remove(a)
	}
	a.pubCancel()
	a.cancel()
	// A Subscribe in flight ends with the context (and is undone: see
	// subscribeStep); the inbound runs stop at their next message.
	a.subTask.stop()
	a.inTask.stop()
	a.sseTask.stop()
	a.inbound.discard()
	a.sse.discard()
	a.failPending()

	a.spawnMu.Lock()
	a.spawnClosed = true
	a.spawnMu.Unlock()
	a.wg.Wait()

	a.b.forget(a)
}
