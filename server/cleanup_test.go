package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// dynServer is a server with a dynamic namespace serving /dyn-*, whose
// sockets join room "r"; a client with auth {"deny": true} is refused.
type dynServer struct {
	*siotest.Server
	dyn *server.Namespace

	mu      sync.Mutex
	created map[string][]*server.Namespace // by name, in creation order
}

func startDynServer(t *testing.T, name string, cfg server.Config) *dynServer {
	t.Helper()
	d := &dynServer{Server: siotest.StartServer(t, name, cfg), created: map[string][]*server.Namespace{}}
	d.Srv.OnNewNamespace(func(n *server.Namespace) {
		d.mu.Lock()
		d.created[n.Name()] = append(d.created[n.Name()], n)
		d.mu.Unlock()
	})
	d.dyn = d.Srv.OfDynamic(func(name string, _ map[string]any) bool { return strings.HasPrefix(name, "/dyn-") })
	d.dyn.Use(func(s *server.Socket) error {
		if s.Handshake().Auth["deny"] == true {
			return errors.New("denied")
		}
		return nil
	})
	d.dyn.OnConnection(func(s *server.Socket) { s.Join("r") })
	return d
}

// has reports whether the server has the namespace name.
func (d *dynServer) has(name string) bool {
	for _, n := range d.Srv.Namespaces() {
		if n.Name() == name {
			return true
		}
	}
	return false
}

// namespaces are the namespaces the server created with that name so far.
func (d *dynServer) namespaces(name string) []*server.Namespace {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.created[name])
}

// noSeries fails if the server still exports a series of its own for the
// namespace name (removed namespaces take their series with them).
func (d *dynServer) noSeries(t *testing.T, name string) {
	t.Helper()
	for _, m := range []string{"sockstream_connected_sockets", "sockstream_connections_total",
		"sockstream_disconnections_total", "sockstream_socket_emits_total"} {
		if _, ok := gatheredOK(t, d.Srv.Registry(), m, "namespace", name); ok {
			t.Errorf("%s{namespace=%q} still exported after the namespace was removed", m, name)
		}
	}
}

// hasAdapter reports whether the adapter of namespace name is open: the
// adapter reports its peers from its start to the end of its Close.
func (d *dynServer) hasAdapter(t testing.TB, name string) bool {
	_, ok := gatheredOK(t, d.Srv.Registry(), "sockstream_adapter_peers_alive", "nsp", name)
	return ok
}

// noNewGoroutines waits until every goroutine but this one is one of
// before (a goroutines() snapshot), failing with the stacks of the others.
// The goroutines of the Redis client's own connections are not counted:
// rueidis opens and closes pooled connections (those lent for pub/sub and
// blocking reads) on its own schedule, at node level: measured over 150
// create/remove cycles of a namespace on two nodes, 4 or 5 connections,
// never more. What a namespace holds in Redis is checked by its channels
// and the subscription gauges instead.
func noNewGoroutines(t *testing.T, before map[string]string) {
	t.Helper()
	buf := make([]byte, 64)
	self := strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1]
	deadline := time.Now().Add(waitFor)
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; !ok && id != self && !redisClientConn(stack) {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after %v:\n%s", len(leaked), waitFor, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCleanupEmptyChildNamespaces: with CleanupEmptyChildNamespaces, a
// child of a dynamic namespace stays while it has a socket and is removed
// with its last one (its adapter closed, out of Namespaces() and of its
// parent's broadcasts, no goroutine left), or right after the connection
// that created it is refused; a client that comes back gets a new
// namespace, which the parent's broadcasts reach. Not parallel: it counts
// the process's goroutines.
func TestCleanupEmptyChildNamespaces(t *testing.T) {
	d := startDynServer(t, "n0", server.Config{CleanupEmptyChildNamespaces: true})
	c := siotest.StartClients(t)
	before := goroutines()

	c.Connect(t, "a", d.URL+"/dyn-1", nil, nil)
	c.Connect(t, "b", d.URL+"/dyn-1", nil, nil)
	if err := d.dyn.To("r").Emit("one"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		c.Wait(t, "one of "+id, waitFor, siotest.IsEventFor(id, "one"))
	}
	c.Disconnect(t, "a")
	siotest.Eventually(t, waitFor, "a's socket gone", func() bool { return d.dyn.LocalSocketCount() == 1 })
	if !d.has("/dyn-1") || !d.hasAdapter(t, "/dyn-1") {
		t.Fatal("/dyn-1 removed while b is in it")
	}

	c.Disconnect(t, "b")
	siotest.Eventually(t, waitFor, "/dyn-1 removed", func() bool { return !d.has("/dyn-1") })
	siotest.Eventually(t, waitFor, "the adapter of /dyn-1 closed", func() bool { return !d.hasAdapter(t, "/dyn-1") })
	first := d.namespaces("/dyn-1")[0]
	if err := first.Emit("late"); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("emit on the removed namespace = %v, want adapter.ErrClosed", err)
	}
	if n := d.dyn.LocalSocketCount(); n != 0 {
		t.Errorf("parent counts %d sockets", n)
	}
	d.noSeries(t, "/dyn-1")
	noNewGoroutines(t, before)

	// A refused connection leaves nothing behind.
	c.Do(t, map[string]any{"cmd": "connect", "id": "x", "url": d.URL + "/dyn-2", "auth": map[string]any{"deny": true}})
	if ev := c.WaitN(t, "x refused", 1, waitFor, func(ev siotest.Event) bool { return ev.ID == "x" })[0]; ev.Type != "connect_error" {
		t.Fatalf("x: %s, want connect_error", ev.Type)
	}
	if len(d.namespaces("/dyn-2")) != 1 {
		t.Fatal("/dyn-2 not created for the refused connection")
	}
	siotest.Eventually(t, waitFor, "/dyn-2 removed", func() bool { return !d.has("/dyn-2") && !d.hasAdapter(t, "/dyn-2") })

	// Back to /dyn-1: a new namespace, which broadcasts reach.
	c.Reconnect(t, "a", "")
	c.NthConnect(t, "a", 1)
	if ns := d.namespaces("/dyn-1"); len(ns) != 2 || ns[1] == first {
		t.Fatalf("/dyn-1 created %d times, want 2", len(ns))
	}
	if !d.has("/dyn-1") {
		t.Fatal("/dyn-1 not listed after the reconnection")
	}
	if err := d.dyn.To("r").Emit("two"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "two of a", waitFor, siotest.IsEventFor("a", "two"))
	// The new namespace's series start again.
	if v, ok := gatheredOK(t, d.Srv.Registry(), "sockstream_connections_total", "namespace", "/dyn-1"); !ok || v != 1 {
		t.Errorf("connections of the new /dyn-1 = %v (present %v), want 1", v, ok)
	}
	c.Disconnect(t, "a")
	siotest.Eventually(t, waitFor, "/dyn-1 removed again", func() bool { return !d.has("/dyn-1") && !d.hasAdapter(t, "/dyn-1") })
	d.noSeries(t, "/dyn-1")
	d.noSeries(t, "/dyn-2")
	noNewGoroutines(t, before)
}

// TestCleanupEmptyChildNamespacesJoining: the last socket of a child
// leaves while another client's connection to it is between its lookup
// and its registration (held in a middleware): the namespace stays, the
// client joins it, and the parent's broadcasts reach it.
func TestCleanupEmptyChildNamespacesJoining(t *testing.T) {
	t.Parallel()
	d := startDynServer(t, "n0", server.Config{CleanupEmptyChildNamespaces: true})
	entered, release := make(chan struct{}), make(chan struct{})
	d.dyn.Use(func(s *server.Socket) error {
		if s.Handshake().Auth["hold"] == true {
			close(entered)
			<-release
		}
		return nil
	})
	left := make(chan struct{})
	d.dyn.OnConnection(func(s *server.Socket) {
		if s.Handshake().Auth["first"] == true {
			s.OnDisconnect(func(string) { close(left) })
		}
	})
	c := siotest.StartClients(t)
	c.Connect(t, "a", d.URL+"/dyn-1", nil, map[string]any{"auth": map[string]any{"first": true}})
	c.Do(t, map[string]any{"cmd": "connect", "id": "b", "url": d.URL + "/dyn-1", "auth": map[string]any{"hold": true}})
	siotest.Recv(t, entered, waitFor, "b in the middleware")
	c.Disconnect(t, "a")
	// a's disconnect handlers have run; the removal is considered right
	// after them, while b is still held.
	siotest.Recv(t, left, waitFor, "a's disconnection")
	close(release)
	c.NthConnect(t, "b", 0)
	if !d.has("/dyn-1") {
		t.Fatal("/dyn-1 removed although b joined it")
	}
	if ns := d.namespaces("/dyn-1"); len(ns) != 1 {
		t.Fatalf("/dyn-1 created %d times, want 1", len(ns))
	}
	if err := d.dyn.To("r").Emit("hello"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "hello of b", waitFor, siotest.IsEventFor("b", "hello"))
	c.Disconnect(t, "b")
	siotest.Eventually(t, waitFor, "/dyn-1 removed", func() bool { return !d.has("/dyn-1") && !d.hasAdapter(t, "/dyn-1") })
}

// TestCleanupRefusedBurst: connections refused in a burst, each to a child
// of its own, leave no namespace, adapter or series behind once the
// server's remover has gone through them.
func TestCleanupRefusedBurst(t *testing.T) {
	t.Parallel()
	d := startDynServer(t, "n0", server.Config{CleanupEmptyChildNamespaces: true})
	c := siotest.StartClients(t)
	const n = 40
	for i := range n {
		c.Do(t, map[string]any{"cmd": "connect", "id": fmt.Sprint("x", i), "url": fmt.Sprint(d.URL, "/dyn-", i),
			"auth": map[string]any{"deny": true}})
	}
	refused := c.WaitN(t, "refusals", n, waitFor, func(ev siotest.Event) bool { return ev.Type == "connect_error" })
	if len(refused) != n {
		t.Fatalf("%d refusals, want %d", len(refused), n)
	}
	for i := range n {
		name := fmt.Sprint("/dyn-", i)
		if len(d.namespaces(name)) != 1 {
			t.Fatalf("%s created %d times, want 1", name, len(d.namespaces(name)))
		}
		siotest.Eventually(t, waitFor, name+" removed", func() bool { return !d.has(name) && !d.hasAdapter(t, name) })
		d.noSeries(t, name)
	}
}

// TestChildNamespacesKeptByDefault: without CleanupEmptyChildNamespaces
// (Node's default) a child stays once its sockets are gone.
func TestChildNamespacesKeptByDefault(t *testing.T) {
	t.Parallel()
	d := startDynServer(t, "n0", server.Config{})
	left := make(chan struct{})
	d.dyn.OnConnection(func(s *server.Socket) {
		if s.Handshake().Auth["first"] == true {
			s.OnDisconnect(func(string) { close(left) })
		}
	})
	c := siotest.StartClients(t)
	c.Connect(t, "a", d.URL+"/dyn-1", nil, map[string]any{"auth": map[string]any{"first": true}})
	c.Disconnect(t, "a")
	siotest.Recv(t, left, waitFor, "a's disconnection")
	c.Connect(t, "b", d.URL+"/dyn-1", nil, nil)
	if !d.has("/dyn-1") || len(d.namespaces("/dyn-1")) != 1 {
		t.Error("/dyn-1 removed or created again without CleanupEmptyChildNamespaces")
	}
	if !d.hasAdapter(t, "/dyn-1") {
		t.Error("the adapter of /dyn-1 closed without CleanupEmptyChildNamespaces")
	}
}

// TestCleanupEmptyChildNamespacesCluster: two nodes over Redis, a child
// namespace on both. It goes from a node with that node's last socket
// (its Redis channels with it) and stays on the other, which still
// broadcasts to its own clients; once gone from both, no channel of it is
// left in Redis and no goroutine in the process. Clients coming back get
// new namespaces that receive broadcasts across the cluster again. Not
// parallel: it counts the process's goroutines.
func TestCleanupEmptyChildNamespacesCluster(t *testing.T) {
	rs := redistest.StartStandalone(t)
	cfg := server.Config{CleanupEmptyChildNamespaces: true, Redis: fastCluster(rs.URL())}
	nodes := []*dynServer{startDynServer(t, "n0", cfg), startDynServer(t, "n1", cfg)}
	for _, d := range nodes {
		siotest.Eventually(t, waitFor, d.URL+" ready", func() bool {
			resp, err := http.Get(d.URL + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	const public = "socket.io#/dyn-1#"
	channels := func() []string {
		v, err := rs.Do("PUBSUB", "CHANNELS", public+"*")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ch := range v.([]any) {
			out = append(out, fmt.Sprint(ch))
		}
		slices.Sort(out)
		return out
	}
	numsub := func() int64 {
		v, err := rs.Do("PUBSUB", "NUMSUB", public)
		if err != nil {
			t.Fatal(err)
		}
		return v.([]any)[1].(int64)
	}
	subscriptions := func(d *dynServer) float64 {
		return gathered(t, d.Srv.Registry(), "sockstream_cluster_subscriptions", "", "")
	}
	baseSubs := []float64{subscriptions(nodes[0]), subscriptions(nodes[1])}
	c := siotest.StartClients(t)
	before := goroutines()

	c.Connect(t, "a", nodes[0].URL+"/dyn-1", nil, nil)
	c.Connect(t, "b", nodes[1].URL+"/dyn-1", nil, nil)
	siotest.Eventually(t, waitFor, "both nodes subscribed to /dyn-1", func() bool { return numsub() == 2 })
	if err := nodes[0].dyn.To("r").Emit("one"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		c.Wait(t, "one of "+id, waitFor, siotest.IsEventFor(id, "one"))
	}

	c.Disconnect(t, "a")
	siotest.Eventually(t, waitFor, "/dyn-1 removed from n0", func() bool {
		return !nodes[0].has("/dyn-1") && !nodes[0].hasAdapter(t, "/dyn-1")
	})
	siotest.Eventually(t, waitFor, "n0's channels of /dyn-1 gone", func() bool {
		return numsub() == 1 && len(channels()) == 2 // the public one and n1's own
	})
	if subscriptions(nodes[0]) != baseSubs[0] {
		t.Errorf("n0: %v subscriptions, want %v", subscriptions(nodes[0]), baseSubs[0])
	}
	if !nodes[1].has("/dyn-1") {
		t.Fatal("/dyn-1 removed from n1, where b is")
	}
	if err := nodes[1].dyn.To("r").Emit("two"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "two of b", waitFor, siotest.IsEventFor("b", "two"))

	c.Disconnect(t, "b")
	siotest.Eventually(t, waitFor, "/dyn-1 removed from n1", func() bool {
		return !nodes[1].has("/dyn-1") && !nodes[1].hasAdapter(t, "/dyn-1")
	})
	siotest.Eventually(t, waitFor, "no channel of /dyn-1 in Redis", func() bool { return len(channels()) == 0 })
	for i, d := range nodes {
		if got := subscriptions(d); got != baseSubs[i] {
			t.Errorf("n%d: %v subscriptions, want %v", i, got, baseSubs[i])
		}
	}
	noNewGoroutines(t, before)

	// Back on both nodes: new namespaces, broadcasts across the cluster.
	c.Reconnect(t, "a", "")
	c.NthConnect(t, "a", 1)
	c.Connect(t, "c", nodes[1].URL+"/dyn-1", nil, nil)
	siotest.Eventually(t, waitFor, "both nodes subscribed to /dyn-1 again", func() bool { return numsub() == 2 })
	if err := nodes[1].dyn.To("r").Emit("three"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "c"} {
		c.Wait(t, "three of "+id, waitFor, siotest.IsEventFor(id, "three"))
	}
	for i, d := range nodes {
		if n := len(d.namespaces("/dyn-1")); n != 2 {
			t.Errorf("n%d created /dyn-1 %d times, want 2", i, n)
		}
	}
	c.Disconnect(t, "a")
	c.Disconnect(t, "c")
	siotest.Eventually(t, waitFor, "no channel of /dyn-1 in Redis again", func() bool { return len(channels()) == 0 })
	noNewGoroutines(t, before)
}

// redisClientConn reports whether stack is a goroutine of one of
// rueidis's connections (its reader or writer).
func redisClientConn(stack string) bool {
	return strings.Contains(stack, "github.com/redis/rueidis.(*pipe)._background")
}

// TestCleanupWaitsForDisconnectHandlers: a child is not removed while a
// socket that left still has disconnect handlers to run, even when
// another socket's departure empties it: what those handlers broadcast
// still goes through the namespace's adapter (closed, it would refuse
// with ErrClosed and reach no other node).
func TestCleanupWaitsForDisconnectHandlers(t *testing.T) {
	t.Parallel()
	d := startDynServer(t, "n0", server.Config{CleanupEmptyChildNamespaces: true})
	entered, release := make(chan struct{}), make(chan struct{})
	aLeft := make(chan struct{})
	emitErr := make(chan error, 1)
	d.dyn.OnConnection(func(s *server.Socket) {
		switch s.Handshake().Auth["who"] {
		case "slow":
			s.OnDisconnect(func(string) {
				close(entered)
				<-release
				emitErr <- s.Broadcast().Emit("bye")
			})
		case "a":
			s.OnDisconnect(func(string) { close(aLeft) })
		}
	})
	c := siotest.StartClients(t)
	c.Connect(t, "slow", d.URL+"/dyn-1", nil, map[string]any{"auth": map[string]any{"who": "slow"}})
	c.Connect(t, "a", d.URL+"/dyn-1", nil, map[string]any{"auth": map[string]any{"who": "a"}})
	c.Disconnect(t, "slow")
	siotest.Recv(t, entered, waitFor, "the slow socket's disconnect handler")
	c.Disconnect(t, "a") // the last socket: the namespace is empty now
	siotest.Recv(t, aLeft, waitFor, "a's disconnection")
	close(release)
	select {
	case err := <-emitErr:
		if err != nil {
			t.Fatalf("broadcast from a disconnect handler: %v (the namespace was removed under it)", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the slow disconnect handler never returned")
	}
	siotest.Eventually(t, waitFor, "/dyn-1 removed after the last handler", func() bool {
		return !d.has("/dyn-1") && !d.hasAdapter(t, "/dyn-1")
	})
}
