package adapter_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// liveNode is one node of the liveness tests: a Redis Streams transport
// reaching Redis at url (possibly wrapped) and its Builder.
type liveNode struct {
	name string
	tr   adapter.Transport
	b    *adapter.Builder
	nss  map[string]*testNS
}

// startLiveNode starts a node; trTimeout is the transport's
// RequestTimeout (how long a Publish waits for Redis); wrap, if not nil,
// gives the transport the Builder uses.
func startLiveNode(t *testing.T, name, url string, trTimeout time.Duration, cfg adapter.Config, wrap func(*cluster.Transport) adapter.Transport) *liveNode {
	t.Helper()
	n := &liveNode{name: name, nss: map[string]*testNS{}}
	tr, err := cluster.New(cluster.Options{
		URL:            url,
		BlockTime:      200 * time.Millisecond,
		RequestTimeout: trTimeout,
		Logger:         testLogger(t, name),
		Registerer:     prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	n.tr = tr
	if wrap != nil {
		n.tr = wrap(tr)
	}
	cfg.Logger = testLogger(t, name)
	cfg.Registerer = prometheus.NewRegistry()
	if n.b, err = adapter.New(n.tr, cfg); err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	return n
}

// add creates the adapter of namespace nsp (closed by t.Cleanup, before
// the transport).
func (n *liveNode) add(t *testing.T, nsp string) *testNS {
	ns := newTestNS(nsp, n.name)
	n.addNS(t, ns, ns)
	return ns
}

// addNS creates the adapter of the Namespace nsp, whose testNS is ns.
func (n *liveNode) addNS(t *testing.T, nsp adapter.Namespace, ns *testNS) {
	ns.a.Store(n.b.New(nsp))
	n.nss[ns.name] = ns
	t.Cleanup(func() { _ = ns.adapter().Close() })
}

// lastSeen returns when peer last heard from the adapter uid, and whether
// it counts it alive.
func lastSeen(peer *adapter.NamespaceAdapter, uid string) (time.Time, bool) {
	for _, p := range peer.Peers() {
		if p.UID == uid {
			return p.LastSeen, true
		}
	}
	return time.Time{}, false
}

// heardThroughout polls until peer has heard from uid after since+span
// (span being more than a heartbeat timeout), failing as soon as peer
// stops counting uid alive: uid's heartbeats reached it all along.
func heardThroughout(t *testing.T, peer *adapter.NamespaceAdapter, uid string, since time.Time, span time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(span + 30*time.Second)
	for {
		seen, ok := lastSeen(peer, uid)
		if !ok {
			t.Fatalf("%s: the peer declared the node dead (its heartbeats stopped)", what)
		}
		if seen.After(since.Add(span)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no heartbeat heard since %v", what, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdTransport is the Redis Streams transport with the publications that
// hold selects waiting for gate first: Redis answering slowly for those
// namespaces (the other publications, the heartbeats among them, go on).
type holdTransport struct {
	*cluster.Transport
	hold  func(*adapter.Message) bool
	watch func(*adapter.Message) bool // recorded, not held; may be nil
	gate  chan struct{}               // nil: held until the caller's ctx ends
	held  atomic.Int32                // publications waiting for gate

	mu     sync.Mutex
	events []string // "publish TYPE" and "released TYPE", for the messages hold or watch selects
}

func (h *holdTransport) record(what string, m *adapter.Message) {
	h.mu.Lock()
	h.events = append(h.events, what+" "+m.Type.String())
	h.mu.Unlock()
}

func (h *holdTransport) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// wait holds msgs if one of them is to be held, and returns ctx's error if
// it ended meanwhile (nothing is published then: Redis did not answer in
// time).
func (h *holdTransport) wait(ctx context.Context, msgs []*adapter.Message) error {
	held := false
	for _, m := range msgs {
		if h.hold(m) {
			h.record("publish", m)
			held = true
		} else if h.watch != nil && h.watch(m) {
			h.record("publish", m)
		}
	}
	if !held {
		return nil
	}
	h.held.Add(1)
	defer h.held.Add(-1)
	select {
	case <-h.gate:
	case <-ctx.Done():
	}
	for _, m := range msgs {
		if h.hold(m) {
			h.record("released", m)
		}
	}
	return ctx.Err()
}

func (h *holdTransport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	if err := h.wait(ctx, []*adapter.Message{msg}); err != nil {
		return "", err
	}
	return h.Transport.Publish(ctx, msg)
}

func (h *holdTransport) PublishBatch(ctx context.Context, msgs []*adapter.Message) []adapter.PublishResult {
	if err := h.wait(ctx, msgs); err != nil {
		out := make([]adapter.PublishResult, len(msgs))
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	return h.Transport.PublishBatch(ctx, msgs)
}

// TestHeartbeatsNotBehindSlowNamespaces: every worker of node A is held
// by the work of other namespaces (their Publish, which Redis answers
// slowly, or their local delivery), yet A's heartbeats in an unrelated
// namespace keep reaching its peer, which never declares A dead.
// Heartbeats used to be queued on each namespace's outbound queue,
// served by the same workers.
func TestHeartbeatsNotBehindSlowNamespaces(t *testing.T) {
	t.Parallel()
	for _, slowPart := range []string{"publish", "local"} {
		t.Run(slowPart, func(t *testing.T) {
			t.Parallel()
			testHeartbeatsNotBehind(t, slowPart)
		})
	}
}

func testHeartbeatsNotBehind(t *testing.T, slowPart string) {
	srv := redistest.StartStandalone(t)
	cfg := adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		RequestTimeout:    10 * time.Second,
	}
	acfg := cfg
	acfg.Workers = 2
	gate := make(chan struct{})
	a := startLiveNode(t, "node-a", srv.URL(), 5*time.Second, acfg, func(tr *cluster.Transport) adapter.Transport {
		if slowPart != "publish" {
			return tr
		}
		return &holdTransport{Transport: tr, gate: gate, hold: func(m *adapter.Message) bool {
			return m.Type == adapter.Broadcast && strings.HasPrefix(m.Nsp, "/slow")
		}}
	})
	b := startLiveNode(t, "node-b", srv.URL(), 5*time.Second, cfg, nil)
	var slow []*testNS
	var entered []chan struct{}
	for _, nsp := range []string{"/slow1", "/slow2"} {
		if slowPart == "local" {
			g := &gateNS{testNS: newTestNS(nsp, a.name), entered: make(chan struct{}), gate: gate}
			a.addNS(t, g, g.testNS)
			entered = append(entered, g.entered)
			slow = append(slow, g.testNS)
		} else {
			slow = append(slow, a.add(t, nsp))
		}
		slow[len(slow)-1].connect("s" + nsp)
	}
	ax, bx := a.add(t, "/x"), b.add(t, "/x")
	eventually(t, 30*time.Second, "/x: the nodes see each other", func() bool {
		return ax.adapter().AlivePeers() == 1 && bx.adapter().AlivePeers() == 1
	})
	for _, ns := range slow {
		select {
		case <-adapter.Subscribed(ns.adapter()):
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not subscribed", ns.name)
		}
	}

	var wg sync.WaitGroup
	// Cleanups run last registered first: the gate opens and the
	// broadcasts return before the adapters close.
	t.Cleanup(func() {
		close(gate)
		wg.Wait()
	})
	for _, ns := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ns.adapter().Broadcast(ev("held"), adapter.Options{}); err != nil {
				t.Errorf("%s: Broadcast: %v", ns.name, err)
			}
		}()
	}
	// Both workers are held.
	if slowPart == "publish" {
		h := a.tr.(*holdTransport)
		eventually(t, 30*time.Second, "both broadcasts held in Publish", func() bool { return h.held.Load() == 2 })
	} else {
		for _, e := range entered {
			select {
			case <-e:
			case <-time.After(30 * time.Second):
				t.Fatal("a broadcast's local delivery never began")
			}
		}
	}
	since := time.Now()
	heardThroughout(t, bx.adapter(), ax.adapter().UID(), since, 2*cfg.HeartbeatTimeout, "/x on node-b")
	if n := a.b.Workers(); n != 2 {
		t.Errorf("%d workers, want the 2 held", n)
	}
}

// TestPeerLossCallbacksOffTicker: when node A declares a silent peer dead
// while a broadcast with acks waits for it, the caller's clientCount gets
// 0 for that peer. That callback blocks here; A's heartbeats must go on
// (another peer keeps counting A alive), which they could not when the
// liveness ticker ran it.
func TestPeerLossCallbacksOffTicker(t *testing.T) {
	t.Parallel()
	srv := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, srv.Addr())
	cfg := adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		RequestTimeout:    time.Minute, // the request waits for the peer's loss, not its own timeout
	}
	a := startLiveNode(t, "node-a", srv.URL(), 5*time.Second, cfg, nil)
	b := startLiveNode(t, "node-b", "redis://"+p.Addr(), 5*time.Second, cfg, nil) // silenced by the proxy
	c := startLiveNode(t, "node-c", srv.URL(), 5*time.Second, cfg, nil)
	na, nb, nc := a.add(t, "/"), b.add(t, "/"), c.add(t, "/")
	na.connectWith("a", &tsock{}) // counted, never acknowledges
	nb.connect("b")
	nc.connect("c")
	eventually(t, 30*time.Second, "the nodes see each other", func() bool {
		for _, ns := range []*testNS{na, nb, nc} {
			if ns.adapter().AlivePeers() != 2 || ns.adapter().ServerCount() != 3 {
				return false
			}
		}
		return true
	})

	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	// Cleanups run last registered first: the gate opens, then node-b is
	// heard again, then the adapters close.
	t.Cleanup(p.Restore)
	t.Cleanup(func() { close(gate) })

	// node-b hangs: still counted by Redis, silent.
	p.Blackhole()
	var mu sync.Mutex
	var counts []int
	err := na.adapter().BroadcastWithAck(ev("q"), adapter.Options{}, func(n int) {
		mu.Lock()
		counts = append(counts, n)
		mu.Unlock()
		if n == 0 {
			// node-b's count, given up on: slow user code.
			once.Do(func() { close(entered) })
			<-gate
		}
	}, func([]any) {})
	if err != nil {
		t.Fatalf("BroadcastWithAck: %v", err)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("node-b never given up on (client counts %v)", counts)
	}
	since := time.Now()
	heardThroughout(t, nc.adapter(), na.adapter().UID(), since, 2*cfg.HeartbeatTimeout, "node-c")
	// node-a's own liveness checks go on too: node-b is gone, node-c alive.
	if peers := na.adapter().Peers(); len(peers) != 1 || peers[0].UID != nc.adapter().UID() {
		t.Errorf("node-a's peers %v, want node-c's %s only", peers, nc.adapter().UID())
	}
}

// TestHeartbeatsAfterClose: an adapter closing announces ADAPTER_CLOSE and
// sends no heartbeat after it, so its peers do not take it for alive
// again; the other namespaces of its node keep beating.
func TestHeartbeatsAfterClose(t *testing.T) {
	t.Parallel()
	srv := redistest.StartStandalone(t)
	cfg := adapter.Config{
		HeartbeatInterval: 20 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
		RequestTimeout:    5 * time.Second,
	}
	a := startLiveNode(t, "node-a", srv.URL(), 5*time.Second, cfg, nil)
	b := startLiveNode(t, "node-b", srv.URL(), 5*time.Second, cfg, nil)
	const count = 20
	for i := range count {
		nsp := fmt.Sprintf("/n%d", i)
		a.add(t, nsp)
		b.add(t, nsp)
	}
	eventually(t, 30*time.Second, "the nodes see each other", func() bool {
		for _, ns := range b.nss {
			if ns.adapter().AlivePeers() != 1 {
				return false
			}
		}
		return true
	})
	// Close half of node-a's adapters while heartbeats flow.
	var wg sync.WaitGroup
	for i := range count / 2 {
		ns := a.nss[fmt.Sprintf("/n%d", i)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ns.adapter().Close()
		}()
	}
	wg.Wait()
	since := time.Now()
	// The open ones keep beating; once node-b heard them for a while, a
	// heartbeat of a closed one sent after its ADAPTER_CLOSE would have
	// arrived too.
	for i := count / 2; i < count; i++ {
		nsp := fmt.Sprintf("/n%d", i)
		heardThroughout(t, b.nss[nsp].adapter(), a.nss[nsp].adapter().UID(), since, 5*cfg.HeartbeatInterval, nsp)
	}
	for i := range count / 2 {
		nsp := fmt.Sprintf("/n%d", i)
		if peers := b.nss[nsp].adapter().Peers(); len(peers) != 0 {
			t.Errorf("%s: node-b still counts %v alive after node-a's adapter closed", nsp, peers)
		}
	}
}

// TestCloseWaitsForItsHeartbeat: Close publishes ADAPTER_CLOSE only once
// the adapter's heartbeat in flight (held here by a transport that does
// not answer, until the round's deadline) has returned, and sends none
// after it: a heartbeat behind ADAPTER_CLOSE would make the peers take the
// closed adapter for alive again.
func TestCloseWaitsForItsHeartbeat(t *testing.T) {
	t.Parallel()
	srv := redistest.StartStandalone(t)
	cfg := adapter.Config{
		HeartbeatInterval: 50 * time.Millisecond,
		HeartbeatTimeout:  2 * time.Second,
		RequestTimeout:    time.Second, // the heartbeat round's deadline
	}
	n := startLiveNode(t, "node", srv.URL(), 5*time.Second, cfg, func(tr *cluster.Transport) adapter.Transport {
		return &holdTransport{Transport: tr,
			hold:  func(m *adapter.Message) bool { return m.Nsp == "/h" && m.Type == adapter.Heartbeat },
			watch: func(m *adapter.Message) bool { return m.Nsp == "/h" && m.Type == adapter.AdapterClose },
		}
	})
	h := n.tr.(*holdTransport)
	other := n.add(t, "/other") // keeps the liveness goroutines running
	ns := n.add(t, "/h")
	<-adapter.Subscribed(other.adapter())
	// The gate is nil: a held heartbeat returns at the round's deadline.
	eventually(t, 30*time.Second, "a heartbeat of /h in flight", func() bool { return h.held.Load() == 1 })
	_ = ns.adapter().Close()
	got := h.recorded()
	closeAt := slices.Index(got, "publish ADAPTER_CLOSE")
	if closeAt < 0 {
		t.Fatalf("no ADAPTER_CLOSE published: %v", got)
	}
	for i, e := range got {
		if i < closeAt && e == "publish HEARTBEAT" && !slices.Contains(got[i:closeAt], "released HEARTBEAT") {
			t.Errorf("ADAPTER_CLOSE published while a heartbeat was in flight: %v", got)
		}
		if i > closeAt && e == "publish HEARTBEAT" {
			t.Errorf("a heartbeat published after ADAPTER_CLOSE: %v", got)
		}
	}
}
