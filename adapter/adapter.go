package adapter

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// maxBatch bounds how many queued publications go to a BatchPublisher at once.
const maxBatch = 256

// NamespaceAdapter is the cluster adapter of one namespace on one node. It
// embeds zishang520's in-memory adapter for the local room bookkeeping and
// overrides every operation that must reach the other nodes.
//
// Operations that publish (Broadcast, BroadcastWithAck, AddSockets,
// DelSockets, DisconnectSockets, ServerSideEmit, the FETCH_SOCKETS request)
// are queued and carried out by one goroutine, in call order: it publishes a
// message, then applies it to the local sockets, so two operations of a
// namespace reach every node, this one included, in the same order. As in
// Node, the local effect therefore happens shortly after the call returns,
// not during it.
type NamespaceAdapter struct {
	socket.Adapter // zishang520's in-memory adapter: local rooms and sockets

	b         *Builder
	transport Transport
	batcher   BatchPublisher // nil unless the transport implements it
	opts      Config
	log       *slog.Logger
	m         *metrics
	nsp       socket.Namespace
	name      string
	uid       string
	csr       bool // connection state recovery enabled on the server

	ctx    context.Context // cancelled at the end of Close
	cancel context.CancelFunc
	// pubCtx bounds the publications of the outbound worker; cancelled when
	// Close gives up waiting for them.
	pubCtx    context.Context
	pubCancel context.CancelFunc

	out      *fifo[*outItem]
	outMu    sync.RWMutex // guards closing against pushes to out
	closing  bool
	outStop  chan struct{}
	outDone  chan struct{}
	outGoid  atomic.Uint64
	inbound  *fifo[*Message]
	sse      *fifo[*Message]
	ownGoids sync.Map // goroutine ids of the long-lived workers

	mu          sync.Mutex
	alive       map[string]time.Time // peer uid -> last message
	dead        map[string]time.Time // peer uid -> declared dead at
	requests    map[string]*request
	ackRequests map[string]*request

	unsubscribe func()
	subscribed  chan struct{}

	initOnce  sync.Once
	started   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{} // closed when Close has finished

	spawnMu     sync.RWMutex
	spawnClosed bool
	wg          sync.WaitGroup

	lastWarn atomic.Int64 // unix nanos of the last rate-limited warning

	sessions sessionState // connection state recovery handovers (session.go)
}

// outItem is one queued operation: a message to publish (nil for a
// local-only operation) and the local part, given the publication's offset.
type outItem struct {
	msg   *Message
	local func(offset string)
}

var _ socket.Adapter = (*NamespaceAdapter)(nil)

func newNamespaceAdapter(b *Builder, nsp socket.Namespace) *NamespaceAdapter {
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
		ctx:         ctx,
		cancel:      cancel,
		pubCtx:      pubCtx,
		pubCancel:   pubCancel,
		out:         newFifo[*outItem](),
		outStop:     make(chan struct{}),
		outDone:     make(chan struct{}),
		inbound:     newFifo[*Message](),
		sse:         newFifo[*Message](),
		alive:       map[string]time.Time{},
		dead:        map[string]time.Time{},
		requests:    map[string]*request{},
		ackRequests: map[string]*request{},
		subscribed:  make(chan struct{}),
		closed:      make(chan struct{}),
	}
	a.batcher, _ = b.transport.(BatchPublisher)
	a.log = b.log.With("nsp", a.name, "uid", a.uid)
	if srv := nsp.Server(); srv != nil && srv.Opts() != nil {
		a.csr = srv.Opts().ConnectionStateRecovery() != nil
	}
	if a.csr && a.opts.Sessions == nil {
		a.log.Warn("connection state recovery is enabled but Config.Sessions is nil: offsets are sent, sessions are never restored")
	}
	base := socket.MakeAdapter()
	// Whatever calls Proto() on the base must reach the overrides below.
	base.Prototype(a)
	base.Construct(nsp)
	a.Adapter = base
	return a
}

// UID is the uid of this namespace adapter in cluster messages.
func (a *NamespaceAdapter) UID() string { return a.uid }

// Name is the namespace's name.
func (a *NamespaceAdapter) Name() string { return a.name }

// Init subscribes to the namespace's messages, announces the node with
// INITIAL_HEARTBEAT and starts the heartbeat loop. socket.io calls it once,
// right after Builder.New.
func (a *NamespaceAdapter) Init() {
	a.initOnce.Do(func() {
		a.started.Store(true)
		a.startWorker(a.outLoop)
		a.startWorker(a.inboundLoop)
		a.startWorker(a.sseLoop)
		a.startWorker(a.subscribeLoop)
		a.startWorker(a.livenessLoop)
		a.m.peersAlive.WithLabelValues(a.name).Set(0)
	})
}

// startWorker runs f on a goroutine owned by the adapter.
func (a *NamespaceAdapter) startWorker(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		id := goid()
		a.ownGoids.Store(id, struct{}{})
		defer a.ownGoids.Delete(id)
		f()
	}()
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

// spawnUser is spawn for a function that runs user code (an ack callback),
// which may call Close: its goroutine counts as the adapter's own.
func (a *NamespaceAdapter) spawnUser(f func()) bool {
	return a.spawn(func() {
		id := goid()
		a.ownGoids.Store(id, struct{}{})
		defer a.ownGoids.Delete(id)
		f()
	})
}

func (a *NamespaceAdapter) onOwnGoroutine() bool {
	_, ok := a.ownGoids.Load(goid())
	return ok
}

// subscribeLoop subscribes through the transport, retrying until it works or
// the adapter closes, then publishes INITIAL_HEARTBEAT.
func (a *NamespaceAdapter) subscribeLoop() {
	backoff := 50 * time.Millisecond
	for {
		unsub, err := a.transport.Subscribe(a.ctx, a.name, a.uid, a.onMessage)
		if err == nil {
			a.mu.Lock()
			a.unsubscribe = unsub
			a.mu.Unlock()
			close(a.subscribed)
			a.push(&outItem{msg: a.message(InitialHeartbeat, nil)})
			return
		}
		if a.ctx.Err() != nil {
			return
		}
		a.log.Warn("subscribe failed, retrying", "err", err, "in", backoff)
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (a *NamespaceAdapter) message(t MessageType, data any) *Message {
	return &Message{UID: a.uid, Nsp: a.name, Type: t, Data: data}
}

// push queues an operation for the outbound worker. After Close it runs the
// local part at once and publishes nothing.
func (a *NamespaceAdapter) push(it *outItem) {
	a.outMu.RLock()
	if !a.closing {
		a.out.push(it)
		a.outMu.RUnlock()
		return
	}
	a.outMu.RUnlock()
	if it.local != nil {
		it.local("")
	}
}

// outLoop is the outbound worker: it publishes queued messages in order and
// applies each operation locally once its message is published.
func (a *NamespaceAdapter) outLoop() {
	defer close(a.outDone)
	a.outGoid.Store(goid())
	for {
		batch := 1
		if a.batcher != nil {
			batch = maxBatch
		}
		items := a.out.take(batch)
		if len(items) == 0 {
			select {
			case <-a.out.signal:
				continue
			case <-a.outStop:
				if a.out.len() == 0 {
					return
				}
				continue
			}
		}
		a.process(items)
	}
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
				var err error
				if j < len(results) {
					offset, err = results[j].Offset, results[j].Err
				} else {
					err = errors.New("transport returned fewer results than messages")
				}
				j++
				a.published(it.msg, err)
			}
			a.runLocal(it, offset)
		}
		return
	}
	for _, it := range items {
		offset := ""
		if it.msg != nil {
			var err error
			offset, err = a.transport.Publish(a.pubCtx, it.msg)
			a.published(it.msg, err)
		}
		a.runLocal(it, offset)
	}
}

func (a *NamespaceAdapter) runLocal(it *outItem, offset string) {
	if it.local == nil {
		return
	}
	defer a.recoverPanic("local operation")
	it.local(offset)
}

func (a *NamespaceAdapter) published(msg *Message, err error) {
	if err == nil {
		if msg.Type == Broadcast {
			a.m.broadcastsPub.Inc()
		}
		return
	}
	a.m.publishErrors.WithLabelValues(msg.Type.String()).Inc()
	a.warnLimited("publish failed", "type", msg.Type.String(), "err", err)
}

// warnLimited logs at most one warning per second per adapter: a transport
// outage must not turn every broadcast into a log line (the counters have
// the full story).
func (a *NamespaceAdapter) warnLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last < int64(time.Second) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn(msg, args...)
}

func (a *NamespaceAdapter) recoverPanic(where string) {
	if r := recover(); r != nil {
		a.m.malformed.WithLabelValues("panic").Inc()
		a.log.Error("recovered panic in "+where, "panic", r)
	}
}

// ---- socket.Adapter overrides ----

// ServerCount returns the number of nodes serving the namespace, this one
// included: the transport's count, less the peers declared dead that it may
// still count (see the package documentation).
func (a *NamespaceAdapter) ServerCount() int64 {
	s := a.snapshot()
	return int64(1 + s.expected)
}

// Broadcast publishes the packet to the other nodes (unless the local flag is
// set) and then delivers it to the matching local sockets, in call order.
func (a *NamespaceAdapter) Broadcast(packet *parser.Packet, opts *socket.BroadcastOptions) {
	wire := toWirePacket(packet)
	opts = cloneOptions(opts)
	local := fromWirePacket(wire) // own data slice: the offset is appended to it
	it := &outItem{local: func(offset string) {
		a.deliver(local, opts, offset, pathOut)
	}}
	if !isLocal(opts) {
		if isVolatile(opts) && !a.transport.Ready() {
			a.m.volatileDropped.Inc()
		} else {
			it.msg = a.message(Broadcast, &BroadcastData{Packet: wire, Opts: toWireOptions(opts)})
		}
	}
	a.push(it)
}

// addOffset appends the stream offset to an event packet without ack id and
// not volatile, when connection state recovery is on, as Node's
// ClusterAdapter.addOffsetIfNecessary does (on the publishing node and on the
// receiving ones). An empty offset (the message waits in the transport's
// outage buffer, or the publication failed) is not appended.
func (a *NamespaceAdapter) addOffset(p *parser.Packet, opts *socket.BroadcastOptions, offset string) {
	if !a.csr || offset == "" || p.Type != parser.EVENT || p.Id != nil || isVolatile(opts) {
		return
	}
	p.Data = append(packetData(p), offset)
}

// BroadcastWithAck publishes the packet with a request id, delivers it
// locally, and forwards to clientCountCallback the client count of every
// other node and to ack every acknowledgement they relay.
func (a *NamespaceAdapter) BroadcastWithAck(packet *parser.Packet, opts *socket.BroadcastOptions, clientCountCallback func(uint64), ack socket.Ack) {
	wire := toWirePacket(packet)
	opts = cloneOptions(opts)
	local := fromWirePacket(wire)
	localAck := oneResponsePerClient(ack, opts.Flags.ExpectSingleResponse)
	it := &outItem{local: func(string) {
		a.Adapter.BroadcastWithAck(local, opts, clientCountCallback, localAck)
	}}
	if !isLocal(opts) && !a.isClosing() {
		timeout := a.opts.RequestTimeout
		if opts.Flags.Timeout != nil {
			timeout = *opts.Flags.Timeout
		}
		r := a.newRequest(kindBroadcastAck, a.snapshot())
		if r.expected > 0 {
			r.clientCount, r.ack = clientCountCallback, ack
			r.singleResponse = opts.Flags.ExpectSingleResponse
			a.register(r, timeout)
			it.msg = a.message(Broadcast, &BroadcastData{Packet: wire, Opts: toWireOptions(opts), RequestID: r.id})
		} else {
			a.m.requests.WithLabelValues(kindBroadcastAck, outcomeLocal).Inc()
		}
	}
	a.push(it)
}

// oneResponsePerClient adapts the per-client ack that socket.BroadcastOperator
// (zishang520 v3.0.6) gives BroadcastWithAck. The operator does
// responses.Push(args...) and completes when len(responses) equals the
// client count, so a client acknowledging with no argument is never counted
// and one acknowledging with two is counted twice: either way the emit ends
// in a timeout although every client answered. And with ExpectSingleResponse
// (RemoteSocket.Emit with an ack) it hands the user
// TryCast[[]any](responses[0]), nil unless that response is a list. So each
// client contributes exactly one response: its first argument (nil if none),
// as Node's ClusterAdapter does, or, for a single response, its whole
// argument list.
func oneResponsePerClient(ack socket.Ack, single bool) socket.Ack {
	if ack == nil {
		return nil
	}
	return func(args []any, err error) {
		if single {
			ack([]any{args}, err)
			return
		}
		var first any
		if len(args) > 0 {
			first = args[0]
		}
		ack([]any{first}, err)
	}
}

// AddSockets makes the matching sockets of every node join rooms.
func (a *NamespaceAdapter) AddSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	opts = cloneOptions(opts)
	rooms = append([]socket.Room(nil), rooms...)
	it := &outItem{local: func(string) { a.Adapter.AddSockets(opts, rooms) }}
	if !isLocal(opts) {
		it.msg = a.message(SocketsJoin, &SocketsJoinLeaveData{Opts: toWireOptions(opts), Rooms: fromRooms(rooms)})
	}
	a.push(it)
}

// DelSockets makes the matching sockets of every node leave rooms.
func (a *NamespaceAdapter) DelSockets(opts *socket.BroadcastOptions, rooms []socket.Room) {
	opts = cloneOptions(opts)
	rooms = append([]socket.Room(nil), rooms...)
	it := &outItem{local: func(string) { a.Adapter.DelSockets(opts, rooms) }}
	if !isLocal(opts) {
		it.msg = a.message(SocketsLeave, &SocketsJoinLeaveData{Opts: toWireOptions(opts), Rooms: fromRooms(rooms)})
	}
	a.push(it)
}

// DisconnectSockets disconnects the matching sockets of every node; close
// also closes their underlying connections.
func (a *NamespaceAdapter) DisconnectSockets(opts *socket.BroadcastOptions, close bool) {
	opts = cloneOptions(opts)
	it := &outItem{local: func(string) { a.Adapter.DisconnectSockets(opts, close) }}
	if !isLocal(opts) {
		it.msg = a.message(DisconnectSockets, &DisconnectSocketsData{Opts: toWireOptions(opts), Close: close})
	}
	a.push(it)
}

// FetchSockets returns the matching sockets of every node: the local ones
// (*socket.Socket) first, then the others' (as details a
// socket.RemoteSocket wraps). The returned function blocks until every
// expected live node answered or the timeout (the operator's Timeout, else
// RequestTimeout) passed, then calls its callback on the calling goroutine;
// on a timeout the callback gets the sockets that did arrive and a
// *TimeoutError.
func (a *NamespaceAdapter) FetchSockets(opts *socket.BroadcastOptions) func(func([]socket.SocketDetails, error)) {
	return func(callback func([]socket.SocketDetails, error)) {
		opts := cloneOptions(opts)
		if isLocal(opts) || a.isClosing() {
			a.Adapter.FetchSockets(opts)(callback)
			return
		}
		snap := a.snapshot()
		if snap.expected <= 0 {
			a.m.requests.WithLabelValues(kindFetchSockets, outcomeLocal).Inc()
			a.fetchLocalInOrder(opts, callback)
			return
		}
		timeout := a.opts.RequestTimeout
		if opts.Flags.Timeout != nil && *opts.Flags.Timeout > 0 {
			timeout = *opts.Flags.Timeout
		}
		r := a.newRequest(kindFetchSockets, snap)
		r.done = make(chan struct{})
		a.register(r, timeout)
		msg := a.message(FetchSockets, &FetchSocketsData{Opts: toWireOptions(opts), RequestID: r.id})
		localPart := func(string) {
			a.Adapter.FetchSockets(opts)(func(s []socket.SocketDetails, _ error) { a.setLocalSockets(r, s) })
		}
		if a.onOwnGoroutine() {
			// Called from one of our workers (a listener run by it): queueing
			// the local part behind ourselves would stall it.
			localPart("")
			a.push(&outItem{msg: msg})
		} else {
			a.push(&outItem{msg: msg, local: localPart})
		}
		<-r.done
		callback(r.result())
	}
}

// fetchLocalInOrder runs the local fetch after the queued operations, so it
// sees the rooms joined by an earlier SocketsJoin.
func (a *NamespaceAdapter) fetchLocalInOrder(opts *socket.BroadcastOptions, callback func([]socket.SocketDetails, error)) {
	if a.onOwnGoroutine() {
		a.Adapter.FetchSockets(opts)(callback)
		return
	}
	done := make(chan struct{})
	var sockets []socket.SocketDetails
	a.push(&outItem{local: func(string) {
		defer close(done)
		a.Adapter.FetchSockets(opts)(func(s []socket.SocketDetails, _ error) { sockets = s })
	}})
	<-done
	callback(sockets, nil)
}

// ServerSideEmit sends an event to the other nodes' server-side listeners. If
// the last element of packet is a socket.Ack (func([]any, error)), it is
// called once with one response per other node (the first argument its
// listener acknowledged with), when every expected live node answered or
// after RequestTimeout with a *TimeoutError.
func (a *NamespaceAdapter) ServerSideEmit(packet []any) error {
	if len(packet) == 0 {
		return errors.New("adapter: ServerSideEmit needs an event name")
	}
	if a.isClosing() {
		return ErrClosed
	}
	ack, withAck := packet[len(packet)-1].(func([]any, error))
	if !withAck {
		a.push(&outItem{msg: a.message(ServerSideEmit, &ServerSideEmitData{Packet: normalizeArgs(packet)})})
		return nil
	}
	packet = packet[:len(packet)-1]
	if len(packet) == 0 {
		return errors.New("adapter: ServerSideEmit needs an event name")
	}
	r := a.newRequest(kindServerSideEmit, a.snapshot())
	if r.expected <= 0 {
		a.m.requests.WithLabelValues(kindServerSideEmit, outcomeLocal).Inc()
		if !a.spawnUser(func() { ack([]any{}, nil) }) {
			ack([]any{}, nil)
		}
		return nil
	}
	r.ack = ack
	a.register(r, a.opts.RequestTimeout)
	a.push(&outItem{msg: a.message(ServerSideEmit, &ServerSideEmitData{RequestID: r.id, Packet: normalizeArgs(packet)})})
	return nil
}

func (a *NamespaceAdapter) isClosing() bool {
	a.outMu.RLock()
	defer a.outMu.RUnlock()
	return a.closing
}

// Close publishes the queued operations (waiting at most RequestTimeout),
// announces ADAPTER_CLOSE, unsubscribes, completes the pending requests with
// ErrClosed and stops every goroutine of the adapter. socket.io calls it when
// the server or the namespace closes; it is idempotent. Operations after
// Close act on local sockets only.
//
// Called from one of the adapter's own goroutines (socket.io closes an empty
// child namespace from inside the disconnection the adapter carries out),
// Close returns at once and finishes in the background.
func (a *NamespaceAdapter) Close() {
	a.closeOnce.Do(func() {
		a.initOnce.Do(func() {}) // an adapter never initialised starts nothing now
		if a.onOwnGoroutine() {
			go a.shutdown()
			return
		}
		a.shutdown()
	})
}

// Closed is closed once Close has finished.
func (a *NamespaceAdapter) Closed() <-chan struct{} { return a.closed }

func (a *NamespaceAdapter) shutdown() {
	defer close(a.closed)
	a.outMu.Lock()
	a.closing = true
	a.outMu.Unlock()
	close(a.outStop)

	// Let the outbound worker publish what is queued, within RequestTimeout.
	if a.started.Load() {
		timer := time.AfterFunc(a.opts.RequestTimeout, a.pubCancel)
		<-a.outDone
		timer.Stop()
	}
	// The worker may never have started (Init not called): run what is left.
	for _, it := range a.out.take(0) {
		a.runLocal(it, "")
	}

	a.mu.Lock()
	unsub := a.unsubscribe
	a.mu.Unlock()
	if unsub != nil {
		ctx, cancel := context.WithTimeout(a.pubCtx, a.opts.RequestTimeout)
		if _, err := a.transport.Publish(ctx, a.message(AdapterClose, nil)); err != nil {
			a.log.Debug("publishing ADAPTER_CLOSE failed", "err", err)
		}
		cancel()
		unsub()
	}
	a.pubCancel()
	a.cancel()
	a.failPending()

	a.spawnMu.Lock()
	a.spawnClosed = true
	a.spawnMu.Unlock()
	a.wg.Wait()

	a.m.peersAlive.DeleteLabelValues(a.name)
	a.b.forget(a)
}
