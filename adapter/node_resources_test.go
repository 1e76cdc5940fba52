package adapter_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// resNode is one node of TestNodeResourcesConstant: a cluster transport
// named for CLIENT LIST and its Builder.
type resNode struct {
	name string
	tr   *cluster.Transport
	b    *adapter.Builder
	nss  map[string]*testNS
}

func startResNode(t *testing.T, srv *redistest.Server, name string, cfg adapter.Config) *resNode {
	t.Helper()
	tr, err := cluster.New(cluster.Options{
		URL:            srv.URL(),
		BlockTime:      200 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		Logger:         testLogger(t, name),
		Registerer:     prometheus.NewRegistry(),
		ConfigureClient: func(co *rueidis.ClientOption) {
			co.ClientName = name
		},
	})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	cfg.Logger = testLogger(t, name)
	cfg.Registerer = prometheus.NewRegistry()
	b, err := adapter.New(tr, cfg)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	return &resNode{name: name, tr: tr, b: b, nss: map[string]*testNS{}}
}

// add creates the adapter of namespace nsp with one socket, id.
func (n *resNode) add(t *testing.T, nsp, id string) *testNS {
	ns := newTestNS(nsp, n.name)
	ns.a.Store(n.b.New(ns))
	ns.connect(id)
	n.nss[nsp] = ns
	t.Cleanup(func() { _ = ns.adapter().Close() })
	return ns
}

// settle waits until every adapter of n is subscribed and no worker runs.
func (n *resNode) settle(t *testing.T) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for _, ns := range n.nss {
		select {
		case <-adapter.Subscribed(ns.adapter()):
		case <-deadline:
			t.Fatalf("%s: %s not subscribed", n.name, ns.name)
		}
	}
	eventually(t, time.Minute, n.name+" workers idle", func() bool { return n.b.Workers() == 0 })
}

// redisClients counts the connections of CLIENT LIST named name.
func redisClients(t *testing.T, srv *redistest.Server, name string) int {
	t.Helper()
	v, err := srv.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	list, _ := v.(string)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") {
			n++
		}
	}
	return n
}

// TestNodeResourcesConstant creates 10,000 namespaces (adapters, each
// with a socket, subscribed over Redis) on one node of a two-node cluster
// and checks that the process's goroutines and the node's Redis
// connections do not grow with them, while broadcasts and FetchSockets in
// those namespaces still work across the nodes.
func TestNodeResourcesConstant(t *testing.T) {
	// Not parallel: it counts the goroutines of the whole process.
	if testing.Short() {
		t.Skip("10,000 namespaces")
	}
	srv := redistest.StartStandalone(t)
	cfg := adapter.Config{
		HeartbeatInterval: 2 * time.Second,
		HeartbeatTimeout:  20 * time.Second,
		RequestTimeout:    10 * time.Second,
	}
	a := startResNode(t, srv, "node-a", cfg)
	b := startResNode(t, srv, "node-b", cfg)
	name := func(i int) string { return fmt.Sprintf("/tenant-%05d", i) }
	// Node b serves a sample of the namespaces, spread over the range.
	sample := []int{0, 1, 99, 100, 999, 1000, 4321, 9998, 9999}
	for _, i := range sample {
		b.add(t, name(i), fmt.Sprintf("b%d", i))
	}

	type point struct{ namespaces, goroutines, conns int }
	var points []point
	created := 0
	began := time.Now()
	for _, upto := range []int{100, 1000, 10000} {
		for ; created < upto; created++ {
			a.add(t, name(created), fmt.Sprintf("a%d", created))
		}
		a.settle(t)
		b.settle(t)
		runtime.GC()
		points = append(points, point{upto, runtime.NumGoroutine(), redisClients(t, srv, "node-a")})
		t.Logf("after %v: %d namespaces on node-a: %d goroutines in the process, %d Redis connections of node-a, %d of node-b",
			time.Since(began).Round(time.Millisecond), upto, points[len(points)-1].goroutines, points[len(points)-1].conns, redisClients(t, srv, "node-b"))
	}
	// Goroutines: a few may be in passing (a worker finishing, a rueidis
	// timer); per-namespace goroutines would add thousands.
	const slack = 20
	eventually(t, 30*time.Second, "goroutines back to the 100-namespace level", func() bool {
		return runtime.NumGoroutine() <= points[0].goroutines+slack
	})
	for _, p := range points[1:] {
		if p.goroutines > points[0].goroutines+slack {
			t.Logf("%d namespaces: %d goroutines when measured (100: %d); back within %d since", p.namespaces, p.goroutines, points[0].goroutines, slack)
		}
		if p.conns > points[0].conns {
			t.Errorf("%d namespaces: node-a holds %d Redis connections, %d with 100", p.namespaces, p.conns, points[0].conns)
		}
	}
	if points[0].conns == 0 {
		t.Fatal("CLIENT LIST shows no connection of node-a")
	}
	// Every namespace is subscribed on Redis: public and private channels.
	v, err := srv.Do("PUBSUB", "CHANNELS", "socket.io#/tenant-*")
	if err != nil {
		t.Fatal(err)
	}
	if chans, _ := v.([]any); len(chans) < 2*10000 {
		t.Errorf("%d pub/sub channels of the namespaces, want at least 20,000", len(chans))
	}

	t.Logf("after %v: checking across the nodes", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { t.Logf("closing after %v", time.Since(began).Round(time.Millisecond)) })
	// Across the nodes, in the sampled namespaces.
	for _, i := range sample {
		na, nb := a.nss[name(i)], b.nss[name(i)]
		eventually(t, 30*time.Second, name(i)+": the nodes see each other", func() bool {
			return na.adapter().AlivePeers() == 1 && nb.adapter().AlivePeers() == 1 &&
				na.adapter().ServerCount() == 2 && nb.adapter().ServerCount() == 2
		})
		if err := nb.adapter().Broadcast(ev("from-b"), adapter.Options{}); err != nil {
			t.Fatalf("%s: Broadcast from b: %v", name(i), err)
		}
		if err := na.adapter().Broadcast(ev("from-a"), adapter.Options{}); err != nil {
			t.Fatalf("%s: Broadcast from a: %v", name(i), err)
		}
		aid, bid := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		eventually(t, 30*time.Second, name(i)+": broadcasts across", func() bool {
			return len(na.deliveries(isEventFor(aid, "from-b"))) == 1 && len(nb.deliveries(isEventFor(bid, "from-a"))) == 1
		})
		for _, ns := range []*testNS{na, nb} {
			infos, err := ns.adapter().FetchSockets(context.Background(), adapter.Options{})
			if err != nil {
				t.Fatalf("%s on %s: FetchSockets: %v", name(i), ns.node, err)
			}
			if got := infoIDs(infos); !slices.Equal(got, []string{aid, bid}) {
				t.Errorf("%s on %s: FetchSockets %v", name(i), ns.node, got)
			}
		}
	}
	// A namespace of node-a only: its broadcast stays local, and each of
	// the other namespaces got nothing from it.
	if err := a.nss[name(5000)].adapter().Broadcast(ev("only-a"), adapter.Options{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "local delivery", func() bool {
		return len(a.nss[name(5000)].deliveries(isEvent("only-a"))) == 1
	})
	if got := a.nss[name(5001)].deliveries(isEvent("only-a")); len(got) != 0 {
		t.Errorf("another namespace got %v", got)
	}
}
