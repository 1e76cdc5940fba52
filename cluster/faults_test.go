package cluster_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// The fault tests run Go nodes (sockstream's server with the cluster
// adapter on the Redis Streams transport) on one real Redis with official
// clients on every node, and break something mid-run: the publishing
// node's connection to Redis, Redis itself, or a whole node.

// fltConfig tunes a node of the fault tests.
type fltConfig struct {
	heartbeatInterval time.Duration
	heartbeatTimeout  time.Duration
	requestTimeout    time.Duration // the adapter's
	configureClient   func(*rueidis.ClientOption)
	// data, when not nil, sets each socket's data from its query.
	data func(query url.Values) any
}

// fltDefault has short heartbeats, so that peers come and go quickly.
var fltDefault = fltConfig{
	heartbeatInterval: 500 * time.Millisecond,
	heartbeatTimeout:  1500 * time.Millisecond,
	requestTimeout:    3 * time.Second,
}

// fltNode is one Go node: a Socket.IO server whose adapter sits on its own
// transport, with its own metrics registry (the transport's, the
// adapter's and the server's).
type fltNode struct {
	name string
	tr   *cluster.Transport
	b    *adapter.Builder
	srv  *siotest.Server
	reg  *prometheus.Registry
}

func startFltNode(t *testing.T, name, redisURL string, cfg fltConfig) *fltNode {
	t.Helper()
	n := &fltNode{name: name, reg: prometheus.NewRegistry()}
	log := siotest.Logger(t).With("node", name)
	tr, err := cluster.New(cluster.Options{
		URL:             redisURL,
		BlockTime:       500 * time.Millisecond,
		RequestTimeout:  time.Second,
		ConfigureClient: cfg.configureClient,
		Logger:          log,
		Registerer:      n.reg,
	})
	if err != nil {
		t.Fatalf("%s: cluster.New: %v", name, err)
	}
	n.tr = tr
	t.Cleanup(func() { _ = tr.Close() }) // in case the server never starts
	n.b, err = adapter.New(tr, adapter.Config{
		HeartbeatInterval: cfg.heartbeatInterval,
		HeartbeatTimeout:  cfg.heartbeatTimeout,
		RequestTimeout:    cfg.requestTimeout,
		Logger:            log,
		Registerer:        n.reg,
	})
	if err != nil {
		t.Fatalf("%s: adapter.New: %v", name, err)
	}
	n.srv = siotest.StartServer(t, name, server.Config{Logger: log, Registry: n.reg},
		server.WithAdapter(n.b, tr.Ready, tr.Close))
	n.srv.Srv.Use(siotest.JoinQueryRooms(cfg.data))
	// Every node answers a server-side "ping" with its name.
	n.srv.Srv.Of("/").OnServerSideEmit("ping", func(e *server.Event) { e.Ack("pong-" + name) })
	return n
}

// url is the URL of the node's main namespace.
func (n *fltNode) url() string { return n.srv.URL + "/" }

// nsp is the node's adapter of the main namespace.
func (n *fltNode) nsp() *adapter.NamespaceAdapter { return n.b.Adapter("/") }

// metric returns the value of the counter or gauge name of the node's
// registry whose labels include labels (name=value pairs), summed over the
// matching series; 0 when there is none.
func (n *fltNode) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatalf("%s: gather: %v", n.name, err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// fltWaitPeers waits until every node tracks all the others as live peers
// and counts them all.
func fltWaitPeers(t *testing.T, nodes ...*fltNode) {
	t.Helper()
	siotest.Eventually(t, 15*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			a := n.nsp()
			if a == nil || a.AlivePeers() != len(nodes)-1 || a.ServerCount() != len(nodes) {
				return false
			}
		}
		return true
	})
}

// fltFetch runs fetchSockets on every socket of n's main namespace.
func fltFetch(n *fltNode) ([]string, error) {
	s, err := siotest.Fetch(n.srv.Srv.Of("/").In())
	return siotest.SocketIDs(s), err
}

// fltPing runs serverSideEmitWithAck("ping") from n and returns the sorted
// answers.
func fltPing(n *fltNode) ([]string, error) {
	// The adapter bounds the request with its RequestTimeout: this is a
	// last resort that keeps a broken adapter from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args, err := n.srv.Srv.Of("/").ServerSideEmitWithAck(ctx, "ping")
	var got []string
	for _, a := range args {
		got = append(got, fmt.Sprint(a))
	}
	return siotest.Sorted(got...), err
}

// fltSequence broadcasts the numbers 0..total-1 from n, one every 15 ms, in
// a goroutine; the returned channel is closed after the last one. A test
// that ends early stops it.
func fltSequence(t *testing.T, n *fltNode, total int) <-chan struct{} {
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for i := range total {
			if err := n.srv.Srv.Emit("seq", i); err != nil {
				t.Errorf("%s: emit seq %d: %v", n.name, i, err)
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return done
}

// fltConnect connects count clients named prefix0, prefix1... spread over
// nodes in turn, and returns their ids.
func fltConnect(t *testing.T, c *siotest.Clients, prefix string, count int, nodes ...*fltNode) []string {
	t.Helper()
	var ids []string
	for i := range count {
		id := fmt.Sprintf("%s%d", prefix, i)
		c.Connect(t, id, nodes[i%len(nodes)].url(), nil, nil)
		ids = append(ids, id)
	}
	return ids
}

// TestFaultPublisherCut cuts the publishing node off Redis for several
// seconds while it keeps broadcasting a numbered sequence: its outbox holds
// the broadcasts and writes them once Redis is back, so every client on
// every node of three, its own and the others', gets every number once, in
// order.
func TestFaultPublisherCut(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	sender := startFltNode(t, "sender", "redis://"+p.Addr(), fltDefault)
	other1 := startFltNode(t, "other1", s.URL(), fltDefault)
	other2 := startFltNode(t, "other2", s.URL(), fltDefault)
	fltWaitPeers(t, sender, other1, other2)
	c := siotest.StartClients(t)
	ids := fltConnect(t, c, "c", 6, sender, other1, other2)

	const total = 300
	done := fltSequence(t, sender, total)
	c.WaitN(t, "first numbers", len(ids)*20, 10*time.Second, siotest.IsEvent("seq"))
	p.Cut()
	siotest.Eventually(t, 10*time.Second, "the sender notices the cut", func() bool { return !sender.tr.Ready() })
	siotest.Eventually(t, 10*time.Second, "broadcasts held in the sender's outbox", func() bool {
		return sender.metric(t, "sockstream_cluster_outbox_messages") > 0
	})
	time.Sleep(2 * time.Second) // the cut lasts while numbers flow
	p.Restore()
	<-done
	siotest.CheckSequence(t, c, ids, "seq", total)
	if v := sender.metric(t, "sockstream_cluster_outbox_messages"); v != 0 {
		t.Errorf("%v messages still in the outbox", v)
	}
	if v := sender.metric(t, "sockstream_cluster_publish_errors_total", "route", "stream"); v != 0 {
		t.Errorf("%v stream publish errors", v)
	}
}

// TestFaultRedisRestart stops Redis (AOF on) for a second while a node
// broadcasts a numbered sequence, then starts it again on the same port
// and data: nothing is lost, nothing duplicated, the order is kept. "stop"
// is a clean shutdown; "kill" is SIGKILL, after which only what the AOF
// (appendfsync always) holds survives, so XADDs whose reply was lost are
// looked for before being written again.
func TestFaultRedisRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"stop", "kill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := redistest.StartStandalone(t, redistest.WithAOF())
			sender := startFltNode(t, "sender", s.URL(), fltDefault)
			other := startFltNode(t, "other", s.URL(), fltDefault)
			fltWaitPeers(t, sender, other)
			c := siotest.StartClients(t)
			ids := fltConnect(t, c, "c", 4, sender, other)

			const total = 250
			done := fltSequence(t, sender, total)
			c.WaitN(t, "first numbers", len(ids)*20, 10*time.Second, siotest.IsEvent("seq"))
			if mode == "stop" {
				s.Stop()
			} else {
				s.Kill()
			}
			siotest.Eventually(t, 10*time.Second, "both nodes notice Redis is gone", func() bool {
				return !sender.tr.Ready() && !other.tr.Ready()
			})
			time.Sleep(time.Second) // Redis stays down while numbers flow
			s.Restart()
			<-done
			siotest.CheckSequence(t, c, ids, "seq", total)
			for _, n := range []*fltNode{sender, other} {
				if v := n.metric(t, "sockstream_cluster_reconnects_total"); v < 1 {
					t.Errorf("%s: %v reconnections", n.name, v)
				}
			}
		})
	}
}

// TestFaultNodeDies loses a node without its goodbye: its connections to
// Redis are cut for good ("killed": Redis sees them close) or held open
// with nothing flowing ("hung": Redis still counts the node's subscription
// until its own connections time out). The other nodes drop it after
// HeartbeatTimeout: a fetchSockets and a serverSideEmitWithAck started
// right after the failure complete without it, with no timeout error, and
// so do the requests made afterwards. When its connection comes back, it
// is a peer again.
func TestFaultNodeDies(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"killed", "hung"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testFaultNodeDies(t, mode)
		})
	}
}

func testFaultNodeDies(t *testing.T, mode string) {
	cfg := fltConfig{
		heartbeatInterval: 250 * time.Millisecond,
		// Short, but long enough that a loaded machine does not make the
		// live nodes miss each other's heartbeats.
		heartbeatTimeout: 2 * time.Second,
		// Far above the heartbeat timeout: a request still waiting for the
		// dead node would end with a timeout error, which fails the test.
		requestTimeout: 10 * time.Second,
	}
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	a := startFltNode(t, "a", s.URL(), cfg)
	b := startFltNode(t, "b", s.URL(), cfg)
	dying := startFltNode(t, "dying", "redis://"+p.Addr(), cfg)
	// Before the dying node's server closes, so that it can say goodbye at
	// the end of the test instead of waiting for Redis.
	t.Cleanup(p.Restore)
	fltWaitPeers(t, a, b, dying)
	c := siotest.StartClients(t)
	sids := map[string]string{}
	for _, l := range []struct {
		id string
		n  *fltNode
	}{{"a0", a}, {"a1", a}, {"b0", b}, {"d0", dying}, {"d1", dying}} {
		sids[l.id] = c.Connect(t, l.id, l.n.url(), nil, nil).Sid
	}
	all := siotest.Sorted(sids["a0"], sids["a1"], sids["b0"], sids["d0"], sids["d1"])
	survivors := siotest.Sorted(sids["a0"], sids["a1"], sids["b0"])
	siotest.Eventually(t, 10*time.Second, "every socket seen from a", func() bool {
		ids, err := fltFetch(a)
		return err == nil && slices.Equal(ids, all)
	})
	if got, err := fltPing(a); err != nil || !slices.Equal(got, []string{"pong-b", "pong-dying"}) {
		t.Fatalf("ping before the failure: %v, %v", got, err)
	}

	if mode == "killed" {
		p.Cut()
	} else {
		p.Blackhole()
	}
	type fetched struct {
		ids []string
		err error
	}
	fetchc := make(chan fetched, 1)
	go func() {
		ids, err := fltFetch(a)
		fetchc <- fetched{ids, err}
	}()
	pingc := make(chan fetched, 1)
	go func() {
		got, err := fltPing(b)
		pingc <- fetched{got, err}
	}()

	f := siotest.Recv(t, fetchc, 30*time.Second, "fetchSockets started at the failure")
	if f.err != nil || !slices.Equal(f.ids, survivors) {
		t.Errorf("fetchSockets started at the failure = %v, %v; want %v and no error", f.ids, f.err, survivors)
	}
	pg := siotest.Recv(t, pingc, 30*time.Second, "serverSideEmitWithAck started at the failure")
	if pg.err != nil || !slices.Equal(pg.ids, []string{"pong-a"}) {
		t.Errorf("serverSideEmitWithAck started at the failure = %v, %v; want [pong-a] and no error", pg.ids, pg.err)
	}

	for _, pair := range [][2]*fltNode{{a, b}, {b, a}} {
		n, other := pair[0], pair[1]
		siotest.Eventually(t, 10*time.Second, n.name+" drops the dead node", func() bool {
			peers := n.nsp().Peers()
			return len(peers) == 1 && peers[0].UID == other.nsp().UID()
		})
		// Dropped for its silence: it could not say goodbye.
		if v := n.metric(t, "sockstream_adapter_peers_declared_dead_total", "reason", "timeout"); v < 1 {
			t.Errorf("%s: %v peers declared dead for their silence", n.name, v)
		}
		if v := n.metric(t, "sockstream_adapter_peers_declared_dead_total", "reason", "close"); v != 0 {
			t.Errorf("%s: %v peers announced their close", n.name, v)
		}
	}

	// Requests made after the drop do not wait for the dead node either.
	for _, n := range []*fltNode{a, b} {
		ids, err := fltFetch(n)
		if err != nil || !slices.Equal(ids, survivors) {
			t.Errorf("%s: fetchSockets after the drop = %v, %v; want %v", n.name, ids, err, survivors)
		}
	}
	got, err := fltPing(a)
	if err != nil || !slices.Equal(got, []string{"pong-b"}) {
		t.Errorf("serverSideEmitWithAck after the drop = %v, %v; want [pong-b]", got, err)
	}
	if n := a.nsp().ServerCount(); mode == "killed" && n != 2 {
		t.Errorf("ServerCount after the kill = %d, want 2", n)
	}

	// The node comes back: it is a peer again, and its sockets are found.
	p.Restore()
	fltWaitPeers(t, a, b, dying)
	siotest.Eventually(t, 10*time.Second, "every socket seen from a again", func() bool {
		ids, err := fltFetch(a)
		return err == nil && slices.Equal(ids, all)
	})
	if got, err := fltPing(b); err != nil || !slices.Equal(got, []string{"pong-a", "pong-dying"}) {
		t.Errorf("serverSideEmitWithAck after the return = %v, %v", got, err)
	}
}
