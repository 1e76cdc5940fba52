package cluster_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

// shardNode is a Go node of the sharded pub/sub tests: a server on a
// transport with UseShardedPubSub whose Redis connections carry its name
// (CLIENT SETNAME), so that CLIENT LIST tells them apart.
type shardNode struct {
	name string
	tr   *cluster.Transport
	b    *adapter.Builder
	srv  *siotest.Server
}

func startShardNode(t *testing.T, name, redisURL string) *shardNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := siotest.Logger(t).With("node", name)
	tr, err := cluster.New(cluster.Options{
		URL:              redisURL,
		UseShardedPubSub: true,
		BlockTime:        500 * time.Millisecond,
		RequestTimeout:   5 * time.Second,
		Logger:           log,
		Registerer:       reg,
		ConfigureClient:  func(co *rueidis.ClientOption) { co.ClientName = name },
	})
	if err != nil {
		t.Fatalf("%s: cluster.New: %v", name, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	b, err := adapter.New(tr, adapter.Config{
		HeartbeatInterval: time.Second,
		HeartbeatTimeout:  10 * time.Second,
		RequestTimeout:    10 * time.Second,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		t.Fatalf("%s: adapter.New: %v", name, err)
	}
	srv := siotest.StartServer(t, name, server.Config{Logger: log, Registry: reg},
		server.WithAdapter(b, tr.Ready, tr.Close))
	return &shardNode{name: name, tr: tr, b: b, srv: srv}
}

// open creates namespace nsp on the node; its "ping" server-side event is
// answered with the node's name.
func (n *shardNode) open(nsp string) *server.Namespace {
	ns := n.srv.Srv.Of(nsp)
	ns.OnServerSideEmit("ping", func(e *server.Event) { e.Ack("pong-" + n.name) })
	return ns
}

// shardConns describes the Redis connections of one client name on one
// master: all of them, and those with sharded subscriptions.
type shardConns struct{ all, pubsub int }

// clientsOf reads CLIENT LIST on every master of c for connections named
// name.
func clientsOf(t *testing.T, c *redistest.Cluster, name string) map[string]shardConns {
	t.Helper()
	out := map[string]shardConns{}
	for _, srv := range c.Nodes() {
		v, err := srv.Do("CLIENT", "LIST")
		if err != nil {
			t.Fatalf("CLIENT LIST on %s: %v", srv.Addr(), err)
		}
		list, _ := v.(string)
		var sc shardConns
		for _, line := range strings.Split(list, "\n") {
			if !strings.Contains(line, " name="+name+" ") {
				continue
			}
			sc.all++
			if n, _ := strconv.Atoi(field(line, "ssub")); n > 0 {
				sc.pubsub++
			}
		}
		out[srv.Addr()] = sc
	}
	return out
}

// field returns the value of key in a CLIENT LIST line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// shardChannels counts the sharded channels matching pattern, over every
// master of c.
func shardChannels(t *testing.T, c *redistest.Cluster, pattern string) int {
	t.Helper()
	total := 0
	for _, srv := range c.Nodes() {
		v, err := srv.Do("PUBSUB", "SHARDCHANNELS", pattern)
		if err != nil {
			t.Fatalf("PUBSUB SHARDCHANNELS on %s: %v", srv.Addr(), err)
		}
		chans, _ := v.([]any)
		total += len(chans)
	}
	return total
}

// TestShardedPubSubPerShard opens 200 namespaces on one node of a 3-master
// Redis Cluster with sharded pub/sub and checks that the node holds at
// most one pub/sub connection per master and the same goroutines and
// connections as with 10 namespaces, while serverSideEmit with acks and
// fetchSockets (whose answers ride the private channels) work across two
// nodes in a sample of those namespaces.
func TestShardedPubSubPerShard(t *testing.T) {
	// Not parallel: it counts the goroutines of the whole process.
	c := redistest.StartCluster(t, 3)
	a := startShardNode(t, "shard-node-a", c.URL())
	b := startShardNode(t, "shard-node-b", c.URL())
	name := func(i int) string { return fmt.Sprintf("/tenant-%03d", i) }
	sample := []int{0, 1, 57, 123, 199}
	for _, i := range sample {
		b.open(name(i))
	}
	// A namespace has a public channel and a private one per node: the
	// channels of a's namespaces, b's private ones, and the public ones of
	// b's namespaces that a does not have yet.
	settle := func(namespaces int) {
		t.Helper()
		want := 2*namespaces + len(sample)
		for _, i := range sample {
			if i >= namespaces {
				want++
			}
		}
		siotest.Eventually(t, time.Minute, fmt.Sprintf("%d sharded channels", want), func() bool {
			return shardChannels(t, c, "socket.io#/tenant-*") >= want
		})
	}
	type point struct {
		goroutines int
		conns      map[string]shardConns
	}
	measure := func(namespaces int) point {
		t.Helper()
		settle(namespaces)
		runtime.GC()
		p := point{runtime.NumGoroutine(), clientsOf(t, c, a.name)}
		t.Logf("%d namespaces on %s: %d goroutines in the process, connections per master %v", namespaces, a.name, p.goroutines, p.conns)
		return p
	}
	created := 0
	for ; created < 10; created++ {
		a.open(name(created))
	}
	first := measure(10)
	for ; created < 200; created++ {
		a.open(name(created))
	}
	last := measure(200)

	pubsub := 0
	for addr, sc := range last.conns {
		if sc.pubsub > 1 {
			t.Errorf("master %s: %s holds %d connections with sharded subscriptions, want at most 1", addr, a.name, sc.pubsub)
		}
		if sc.all > first.conns[addr].all {
			t.Errorf("master %s: %s holds %d connections with 200 namespaces, %d with 10", addr, a.name, sc.all, first.conns[addr].all)
		}
		pubsub += sc.pubsub
	}
	// 400 channels over 16,384 slots: every master serves some.
	if pubsub != 3 {
		t.Errorf("%s holds %d pub/sub connections over the 3 masters, want 3", a.name, pubsub)
	}
	// A few goroutines may be in passing (a worker finishing, a rueidis
	// timer); per-namespace receive loops would add 380.
	const slack = 20
	siotest.Eventually(t, 30*time.Second, "goroutines back to the 10-namespace level", func() bool {
		return runtime.NumGoroutine() <= first.goroutines+slack
	})

	// Across the nodes, in the sampled namespaces: a client on b, seen by
	// fetchSockets on a; serverSideEmit with acks both ways.
	clients := siotest.StartClients(t)
	for _, i := range sample {
		nsp := name(i)
		na, nb := a.srv.Srv.Of(nsp), b.srv.Srv.Of(nsp)
		siotest.Eventually(t, 30*time.Second, nsp+": the nodes count each other", func() bool {
			aa, ab := a.b.Adapter(nsp), b.b.Adapter(nsp)
			return aa != nil && ab != nil && aa.ServerCount() == 2 && ab.ServerCount() == 2
		})
		sid := clients.Connect(t, fmt.Sprintf("c%d", i), b.srv.URL+nsp, nil, nil).Sid
		siotest.Eventually(t, 30*time.Second, nsp+": fetchSockets on a sees b's client", func() bool {
			got, err := siotest.Fetch(na.In())
			return err == nil && slices.Equal(siotest.SocketIDs(got), []string{sid})
		})
		for _, from := range []struct {
			ns   *server.Namespace
			want string
		}{{na, "pong-" + b.name}, {nb, "pong-" + a.name}} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			args, err := from.ns.ServerSideEmitWithAck(ctx, "ping")
			cancel()
			if err != nil || len(args) != 1 || fmt.Sprint(args[0]) != from.want {
				t.Errorf("%s: serverSideEmitWithAck = %v, %v; want [%s]", nsp, args, err, from.want)
			}
		}
	}
}
