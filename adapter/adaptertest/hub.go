// Package adaptertest provides an in-process adapter.Transport: a Hub that
// several transports (one per simulated node) connect to. It obeys the
// contract of adapter.Transport the way the Redis Streams transport does:
//
//   - a node never receives its own publications; every other node with a
//     subscription to the namespace receives them, in publication order
//     (one global order, like a single stream);
//   - durable messages get a stream-like offset "<ms>-<seq>", increasing
//     across the hub; ephemeral ones (Message.Ephemeral) get "";
//   - PublishResponse reaches only the subscription with that uid;
//   - ServerCount counts the nodes subscribed to the namespace (as PUBSUB
//     NUMSUB counts subscribed connections);
//   - every message is encoded to MessagePack and decoded again for each
//     subscriber, so handlers see what a real transport's codec produces
//     (map[string]any, []byte for binary, typed Data pointers) and never
//     share memory with the publisher.
//
// Suspend simulates a hung node (still counted, nothing in or out) and
// Inject delivers a raw message, for malformed-message tests.
package adaptertest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sockstream/sockstream/adapter"
)

// Hub connects in-process transports.
type Hub struct {
	mu     sync.Mutex
	nodes  map[*Transport]struct{}
	lastMs int64
	seq    int64
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{nodes: map[*Transport]struct{}{}}
}

// Transport is one node's connection to a Hub. It implements
// adapter.Transport and adapter.BatchPublisher.
type Transport struct {
	hub *Hub

	mu     sync.Mutex
	subs   map[int]*subscription
	nextID int
	closed bool

	inMu   sync.Mutex
	inbox  []delivery
	signal chan struct{}
	done   chan struct{}
	exited chan struct{}

	suspended atomic.Bool
	notReady  atomic.Bool

	published atomic.Int64
}

type subscription struct {
	nsp, uid string
	h        adapter.Handler
}

// delivery is one message waiting in a node's inbox: either encoded (from
// Publish / PublishResponse) or raw (from Inject).
type delivery struct {
	enc   *encoded
	raw   *adapter.Message
	toUID string // "" for a namespace-wide message
}

type encoded struct {
	UID    string
	Nsp    string
	Type   adapter.MessageType
	Data   []byte
	Offset string
}

var (
	_ adapter.Transport      = (*Transport)(nil)
	_ adapter.BatchPublisher = (*Transport)(nil)
)

// NewTransport connects a new node to the hub.
func (h *Hub) NewTransport() *Transport {
	t := &Transport{
		hub:    h,
		subs:   map[int]*subscription{},
		signal: make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	h.mu.Lock()
	h.nodes[t] = struct{}{}
	h.mu.Unlock()
	go t.readLoop()
	return t
}

// nextOffset returns a stream-like id; h.mu must be held.
func (h *Hub) nextOffset() string {
	ms := time.Now().UnixMilli()
	if ms > h.lastMs {
		h.lastMs, h.seq = ms, 0
	} else {
		h.seq++
	}
	return strconv.FormatInt(h.lastMs, 10) + "-" + strconv.FormatInt(h.seq, 10)
}

// Inject delivers msg, as is (no encoding), to every node subscribed to
// msg.Nsp, as if another node had published it.
func (h *Hub) Inject(msg *adapter.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := range h.nodes {
		n.enqueue(delivery{raw: msg})
	}
}

func encode(msg *adapter.Message) (*encoded, error) {
	e := &encoded{UID: msg.UID, Nsp: msg.Nsp, Type: msg.Type}
	if msg.Data != nil {
		b, err := msgpack.Marshal(msg.Data)
		if err != nil {
			return nil, fmt.Errorf("adaptertest: encoding %s: %w", msg.Type, err)
		}
		e.Data = b
	}
	return e, nil
}

func decode(e *encoded) (*adapter.Message, error) {
	msg := &adapter.Message{UID: e.UID, Nsp: e.Nsp, Type: e.Type, Offset: e.Offset}
	if e.Data == nil {
		return msg, nil
	}
	var data any
	switch e.Type {
	case adapter.Broadcast:
		data = &adapter.BroadcastData{}
	case adapter.SocketsJoin, adapter.SocketsLeave:
		data = &adapter.SocketsJoinLeaveData{}
	case adapter.DisconnectSockets:
		data = &adapter.DisconnectSocketsData{}
	case adapter.FetchSockets:
		data = &adapter.FetchSocketsData{}
	case adapter.FetchSocketsResponse:
		data = &adapter.FetchSocketsResponseData{}
	case adapter.ServerSideEmit:
		data = &adapter.ServerSideEmitData{}
	case adapter.ServerSideEmitResponse, adapter.BroadcastAck:
		data = &adapter.ResponsePacketData{}
	case adapter.BroadcastClientCount:
		data = &adapter.BroadcastClientCountData{}
	default:
		var v any
		if err := msgpack.Unmarshal(e.Data, &v); err != nil {
			return nil, err
		}
		msg.Data = v
		return msg, nil
	}
	if err := msgpack.Unmarshal(e.Data, data); err != nil {
		return nil, err
	}
	msg.Data = data
	return msg, nil
}

// Publish implements adapter.Transport.
func (t *Transport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	res := t.PublishBatch(ctx, []*adapter.Message{msg})
	return res[0].Offset, res[0].Err
}

// PublishBatch implements adapter.BatchPublisher.
func (t *Transport) PublishBatch(ctx context.Context, msgs []*adapter.Message) []adapter.PublishResult {
	out := make([]adapter.PublishResult, len(msgs))
	encs := make([]*encoded, len(msgs))
	for i, msg := range msgs {
		if err := ctx.Err(); err != nil {
			out[i].Err = err
			continue
		}
		e, err := encode(msg)
		if err != nil {
			out[i].Err = err
			continue
		}
		encs[i] = e
	}
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[t]; !ok {
		for i := range out {
			if out[i].Err == nil {
				out[i].Err = adapter.ErrClosed
			}
		}
		return out
	}
	for i, e := range encs {
		if e == nil {
			continue
		}
		if !msgs[i].Ephemeral() {
			e.Offset = h.nextOffset()
			out[i].Offset = e.Offset
		}
		t.published.Add(1)
		if t.suspended.Load() {
			continue
		}
		for n := range h.nodes {
			if n != t {
				n.enqueue(delivery{enc: e})
			}
		}
	}
	return out
}

// PublishResponse implements adapter.Transport.
func (t *Transport) PublishResponse(ctx context.Context, toUID string, msg *adapter.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e, err := encode(msg)
	if err != nil {
		return err
	}
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[t]; !ok {
		return adapter.ErrClosed
	}
	t.published.Add(1)
	if t.suspended.Load() {
		return nil
	}
	for n := range h.nodes {
		if n.hasUID(toUID) {
			n.enqueue(delivery{enc: e, toUID: toUID})
		}
	}
	return nil
}

func (t *Transport) hasUID(uid string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.subs {
		if s.uid == uid {
			return true
		}
	}
	return false
}

func (t *Transport) hasNsp(nsp string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.subs {
		if s.nsp == nsp {
			return true
		}
	}
	return false
}

// Subscribe implements adapter.Transport.
func (t *Transport) Subscribe(_ context.Context, nsp, uid string, h adapter.Handler) (func(), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, adapter.ErrClosed
	}
	id := t.nextID
	t.nextID++
	t.subs[id] = &subscription{nsp: nsp, uid: uid, h: h}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.subs, id)
			t.mu.Unlock()
		})
	}, nil
}

// ServerCount implements adapter.Transport: the nodes of the hub subscribed
// to nsp, suspended ones included.
func (t *Transport) ServerCount(ctx context.Context, nsp string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[t]; !ok {
		return 0, adapter.ErrClosed
	}
	n := 0
	for node := range h.nodes {
		if node.hasNsp(nsp) {
			n++
		}
	}
	return n, nil
}

// Ready implements adapter.Transport.
func (t *Transport) Ready() bool { return !t.notReady.Load() && !t.isClosed() }

// SetReady changes what Ready reports (messages still flow).
func (t *Transport) SetReady(ready bool) { t.notReady.Store(!ready) }

// Suspend makes the node hang: it stays counted by ServerCount, but what it
// publishes is dropped and nothing reaches it, until Resume.
func (t *Transport) Suspend() { t.suspended.Store(true) }

// Resume undoes Suspend.
func (t *Transport) Resume() { t.suspended.Store(false) }

// Published returns how many messages and responses the node published.
func (t *Transport) Published() int64 { return t.published.Load() }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close implements adapter.Transport: the node leaves the hub (like a
// crashed process whose connection the server notices at once) and its
// reader goroutine stops.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.hub.mu.Lock()
	delete(t.hub.nodes, t)
	t.hub.mu.Unlock()
	close(t.done)
	<-t.exited
	return nil
}

func (t *Transport) enqueue(d delivery) {
	if t.suspended.Load() {
		return
	}
	t.inMu.Lock()
	t.inbox = append(t.inbox, d)
	t.inMu.Unlock()
	select {
	case t.signal <- struct{}{}:
	default:
	}
}

func (t *Transport) readLoop() {
	defer close(t.exited)
	for {
		t.inMu.Lock()
		batch := t.inbox
		t.inbox = nil
		t.inMu.Unlock()
		if len(batch) == 0 {
			select {
			case <-t.signal:
				continue
			case <-t.done:
				return
			}
		}
		for _, d := range batch {
			select {
			case <-t.done:
				return
			default:
			}
			t.dispatch(d)
		}
	}
}

func (t *Transport) dispatch(d delivery) {
	nsp, uid := "", d.toUID
	if d.raw != nil {
		nsp = d.raw.Nsp
	} else {
		nsp = d.enc.Nsp
	}
	t.mu.Lock()
	var targets []*subscription
	for _, s := range t.subs {
		if (uid == "" && s.nsp == nsp) || (uid != "" && s.uid == uid) {
			targets = append(targets, s)
		}
	}
	t.mu.Unlock()
	for _, s := range targets {
		msg := d.raw
		if msg == nil {
			var err error
			if msg, err = decode(d.enc); err != nil {
				// A real transport logs and skips what it cannot decode.
				continue
			}
		}
		s.h(msg)
	}
}

// NoBatch returns t without its PublishBatch method, so that an adapter
// publishes one message at a time, as with a transport that cannot batch.
func NoBatch(t *Transport) adapter.Transport { return noBatch{t} }

type noBatch struct{ adapter.Transport }
