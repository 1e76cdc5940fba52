package adapter_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// fastConfig is a Config with short liveness timings for tests.
func fastConfig() adapter.Config {
	return adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
	}
}

// ---- a test double of the Namespace seam ----

// delivery is one packet written to one socket by testNS.
type delivery struct {
	Socket   string
	Type     int
	Data     []any // a copy of the packet's data
	PacketID *uint64
	InID     bool // the packet came with an ack id (before DeliverWithAck set one)
	Flags    adapter.Flags
	WithAck  bool
}

func (d delivery) event() string {
	if len(d.Data) == 0 {
		return ""
	}
	s, _ := d.Data[0].(string)
	return s
}

// tsock is a socket of testNS. ack is what it acknowledges with (nil: it
// never answers).
type tsock struct {
	data any
	ack  []any
}

type sseCall struct {
	args    []any
	withAck bool
}

// testNS implements adapter.Namespace over fake sockets: it records every
// delivery, disconnection and closed connection, answers acks as told, and
// cleans up through the adapter's room index as the Socket.IO layer does
// (DelAll when a socket goes, inline).
type testNS struct {
	name string
	node string
	a    atomic.Pointer[adapter.NamespaceAdapter]

	mu           sync.Mutex
	socks        map[string]*tsock
	held         []delivery // delivered, not yet flushed
	got          []delivery // flushed: what the sockets were written
	disconnected []string
	closedConns  []string
	sse          []sseCall
	nextAckID    uint64
	// onSSE answers server-side events with an ack (ack != nil); it runs on
	// a goroutine of its own, as the Socket.IO layer queues user handlers.
	onSSE func(args []any, ack func([]any))
}

var _ adapter.Namespace = (*testNS)(nil)

func newTestNS(name, node string) *testNS {
	return &testNS{name: name, node: node, socks: map[string]*tsock{}, nextAckID: 1000}
}

func (n *testNS) adapter() *adapter.NamespaceAdapter { return n.a.Load() }

func (n *testNS) Name() string { return n.name }

func (n *testNS) record(p *adapter.Packet, ids []string, flags adapter.Flags, withAck, inID bool) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var written []string
	for _, id := range ids {
		if _, ok := n.socks[id]; !ok {
			continue
		}
		d := delivery{Socket: id, Type: p.Type, Data: slices.Clone(p.Data), Flags: flags, WithAck: withAck, InID: inID}
		if p.ID != nil {
			v := *p.ID
			d.PacketID = &v
		}
		// Held until Flush, as the Socket.IO layer holds the writes: a
		// delivery the adapter never flushes is never seen by the tests.
		n.held = append(n.held, d)
		written = append(written, id)
	}
	return written
}

func (n *testNS) Deliver(p *adapter.Packet, ids []string, flags adapter.Flags) {
	if p.Nsp != n.name {
		panic(fmt.Sprintf("Deliver: packet nsp %q, want %q", p.Nsp, n.name))
	}
	n.record(p, ids, flags, false, p.ID != nil)
}

func (n *testNS) DeliverWithAck(p *adapter.Packet, ids []string, flags adapter.Flags, ack func(args []any)) int {
	inID := p.ID != nil
	if p.ID == nil {
		n.mu.Lock()
		n.nextAckID++
		id := n.nextAckID
		n.mu.Unlock()
		p.ID = &id
	}
	written := n.record(p, ids, flags, true, inID)
	for _, id := range written {
		n.mu.Lock()
		s := n.socks[id]
		var reply []any
		if s != nil && s.ack != nil {
			reply = slices.Clone(s.ack)
		}
		n.mu.Unlock()
		if reply != nil {
			go ack(reply) // the client answers later, on another goroutine
		}
	}
	return len(written)
}

func (n *testNS) Flush() {
	n.mu.Lock()
	n.got = append(n.got, n.held...)
	n.held = nil
	n.mu.Unlock()
}

func (n *testNS) Disconnect(ids []string, closeConn bool) {
	for _, id := range ids {
		n.mu.Lock()
		_, ok := n.socks[id]
		delete(n.socks, id)
		if ok {
			n.disconnected = append(n.disconnected, id)
			if closeConn {
				n.closedConns = append(n.closedConns, id)
			}
		}
		n.mu.Unlock()
		if ok {
			n.adapter().DelAll(id) // inline, as the contract allows
		}
	}
}

func (n *testNS) Describe(ids []string) []adapter.SocketInfo {
	var out []adapter.SocketInfo
	for _, id := range ids {
		n.mu.Lock()
		s, ok := n.socks[id]
		n.mu.Unlock()
		if !ok {
			continue
		}
		out = append(out, adapter.SocketInfo{
			ID:        id,
			Rooms:     n.adapter().SocketRooms(id),
			Data:      s.data,
			Handshake: adapter.Handshake{Headers: map[string]any{"host": n.node}, Query: map[string]any{}, Address: "127.0.0.1", Issued: 1},
		})
	}
	return out
}

func (n *testNS) ServerSideEmit(args []any, ack func(args []any)) {
	n.mu.Lock()
	n.sse = append(n.sse, sseCall{args: args, withAck: ack != nil})
	h := n.onSSE
	n.mu.Unlock()
	if h != nil && ack != nil {
		go h(args, ack)
	}
}

func (n *testNS) CloseConn(id string) {
	n.mu.Lock()
	_, ok := n.socks[id]
	delete(n.socks, id)
	n.closedConns = append(n.closedConns, id)
	n.mu.Unlock()
	if ok {
		n.adapter().DelAll(id)
	}
}

// connect adds socket id, in its own room and rooms.
func (n *testNS) connect(id string, rooms ...string) {
	n.connectWith(id, &tsock{data: map[string]any{"id": id, "node": n.node}, ack: []any{id}}, rooms...)
}

func (n *testNS) connectWith(id string, s *tsock, rooms ...string) {
	n.mu.Lock()
	n.socks[id] = s
	n.mu.Unlock()
	n.adapter().AddAll(id, append([]string{id}, rooms...))
}

// deliveries returns the deliveries matching pred.
func (n *testNS) deliveries(pred func(delivery) bool) []delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []delivery
	for _, d := range n.got {
		if pred == nil || pred(d) {
			out = append(out, d)
		}
	}
	return out
}

func (n *testNS) sseCalls() []sseCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sse)
}

func (n *testNS) closed() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.closedConns)
}

func (n *testNS) gone() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.disconnected)
}

func isEvent(name string) func(delivery) bool {
	return func(d delivery) bool { return d.event() == name }
}

func isEventFor(sock, name string) func(delivery) bool {
	return func(d delivery) bool { return d.Socket == sock && d.event() == name }
}

// ---- nodes ----

// node is one namespace adapter ("/") of one simulated server.
type node struct {
	t    *testing.T
	name string
	tr   adapter.Transport
	hub  *adaptertest.Transport // nil over Redis
	b    *adapter.Builder
	a    *adapter.NamespaceAdapter
	ns   *testNS
	reg  *prometheus.Registry
}

type nodeOption func(*nodeSetup)

type nodeSetup struct {
	cfg     adapter.Config
	noBatch bool
}

func withNoBatch() nodeOption { return func(s *nodeSetup) { s.noBatch = true } }

// withSessions sets Config.Sessions (which turns the offsets on).
func withSessions(store adapter.SessionStore) nodeOption {
	return func(s *nodeSetup) { s.cfg.Sessions = store }
}

func testLogger(t *testing.T, name string) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// startNode starts a node over tr (which t.Cleanup closes after the
// adapter).
func startNode(t *testing.T, name string, tr adapter.Transport, cfg adapter.Config, opts ...nodeOption) *node {
	t.Helper()
	t.Cleanup(func() { _ = tr.Close() })
	setup := &nodeSetup{cfg: cfg}
	for _, o := range opts {
		o(setup)
	}
	n := &node{t: t, name: name, tr: tr, reg: prometheus.NewRegistry()}
	n.hub, _ = tr.(*adaptertest.Transport)
	cfg = setup.cfg
	cfg.Registerer = n.reg
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, name)
	}
	if setup.noBatch && n.hub != nil {
		tr = adaptertest.NoBatch(n.hub)
	}
	b, err := adapter.New(tr, cfg)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	n.b = b
	n.ns = newTestNS("/", name)
	n.a = n.attach(n.ns)
	t.Cleanup(func() { _ = n.a.Close() })
	return n
}

// attach makes the adapter of ns.
func (n *node) attach(ns *testNS) *adapter.NamespaceAdapter {
	ns.node = n.name
	a := n.b.New(ns)
	ns.a.Store(a)
	return a
}

// close closes the node's adapter (ADAPTER_CLOSE) and transport.
func (n *node) close() {
	_ = n.a.Close()
	_ = n.tr.Close()
}

// backend starts count connected nodes.
type backend func(t *testing.T, count int, cfg adapter.Config, opts ...nodeOption) []*node

// hubCluster starts count nodes on one in-process hub.
func hubCluster(t *testing.T, count int, cfg adapter.Config, opts ...nodeOption) []*node {
	t.Helper()
	hub := adaptertest.NewHub()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i), hub.NewTransport(), cfg, opts...)
	}
	waitPeers(t, nodes)
	return nodes
}

// redisCluster starts count nodes over the Redis Streams transport, on a
// redis-server of their own (on a free port).
func redisCluster(t *testing.T, count int, cfg adapter.Config, opts ...nodeOption) []*node {
	t.Helper()
	srv := redistest.StartStandalone(t)
	nodes := make([]*node, count)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i)
		tr, err := cluster.New(cluster.Options{
			URL:            srv.URL(),
			BlockTime:      200 * time.Millisecond,
			RequestTimeout: 2 * time.Second,
			Logger:         testLogger(t, name),
			Registerer:     prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatalf("cluster.New: %v", err)
		}
		nodes[i] = startNode(t, name, tr, cfg, opts...)
	}
	waitPeers(t, nodes)
	return nodes
}

// backends runs f over the in-process hub and over Redis.
func backends(t *testing.T, f func(t *testing.T, start backend)) {
	for _, b := range []struct {
		name  string
		start backend
	}{{"hub", hubCluster}, {"redis", redisCluster}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b.start)
		})
	}
}

// waitPeers waits until every node's adapter sees the others.
func waitPeers(t *testing.T, nodes []*node) {
	t.Helper()
	eventually(t, 10*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			if n.a.AlivePeers() != len(nodes)-1 || n.a.ServerCount() != len(nodes) {
				return false
			}
		}
		return true
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// all returns the deliveries of every node matching pred.
func all(nodes []*node, pred func(delivery) bool) []delivery {
	var out []delivery
	for _, n := range nodes {
		out = append(out, n.ns.deliveries(pred)...)
	}
	return out
}

// waitDeliveries waits until the nodes made count deliveries matching pred
// and returns them.
func waitDeliveries(t *testing.T, nodes []*node, what string, count int, pred func(delivery) bool) []delivery {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d deliveries of %s", count, what), func() bool {
		return len(all(nodes, pred)) >= count
	})
	return all(nodes, pred)
}

// receivers returns the sorted sockets that got event name, with
// repetitions.
func receivers(nodes []*node, name string) []string {
	var out []string
	for _, d := range all(nodes, isEvent(name)) {
		out = append(out, d.Socket)
	}
	slices.Sort(out)
	return out
}

// sentinel broadcasts event name from n to every socket and waits until
// the total sockets got it: one node's operations reach every node in
// order, so whatever n did before has been applied everywhere by then.
func sentinel(t *testing.T, nodes []*node, n *node, name string, total int) {
	t.Helper()
	if err := n.a.Broadcast(&adapter.Packet{Type: 2, Data: []any{name}}, adapter.Options{}); err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	waitDeliveries(t, nodes, name, total, isEvent(name))
}

// metric returns the value of a counter or gauge of n's registry (summed
// over the series matching labels).
func (n *node) metric(name string, labels map[string]string) float64 {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			match := true
			for k, v := range labels {
				if have[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

func ev(name string, args ...any) *adapter.Packet {
	return &adapter.Packet{Type: 2, Data: append([]any{name}, args...)}
}

func opts(rooms []string, except ...string) adapter.Options {
	return adapter.Options{Rooms: rooms, Except: except}
}

// six connects a: n0 r1, b: n0, c: n1 r1, d: n1 r2, e: n2 r2, f: n2 (with
// three nodes; with two, e and f are on n0).
func six(nodes []*node) {
	at := func(i int) *testNS { return nodes[i%len(nodes)].ns }
	at(0).connect("a", "r1")
	at(0).connect("b")
	at(1).connect("c", "r1")
	at(1).connect("d", "r2")
	at(2).connect("e", "r2")
	at(2).connect("f")
}

var all6 = []string{"a", "b", "c", "d", "e", "f"}

// injectHub is one node on a hub, for messages injected as is.
type injectHub struct {
	hub   *adaptertest.Hub
	nodes []*node
}

func newHubForInject(t *testing.T) *injectHub {
	hub := adaptertest.NewHub()
	n := startNode(t, "n0", hub.NewTransport(), fastConfig())
	eventually(t, 5*time.Second, "subscribed", func() bool { return len(labelsOf(n, "sockstream_adapter_info")) == 1 })
	return &injectHub{hub: hub, nodes: []*node{n}}
}
