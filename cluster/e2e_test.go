package cluster

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
)

// e2eNode is one zishang520 Socket.IO server with the cluster adapter on a
// Redis Streams transport, on a loopback httptest server.
type e2eNode struct {
	name string
	tr   *Transport
	b    *adapter.Builder
	io   *socket.Server
	url  string
}

func startE2ENode(t *testing.T, name, redisURL string) *e2eNode {
	t.Helper()
	n := &e2eNode{name: name}
	n.tr = startTransport(t, name, fastOpts(redisURL))
	b, err := adapter.New(n.tr, adapter.Config{
		HeartbeatInterval: 500 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
		Logger:            tLogger(t, name),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	so := socket.DefaultServerOptions()
	so.SetAdapter(b)
	srv := siotest.StartServer(t, name, so, func() { _ = n.tr.Close() })
	n.io, n.url = srv.IO, srv.URL
	// A socket joins the rooms of its "rooms" query parameter.
	n.io.Of("/", nil).Use(siotest.JoinQueryRooms(func(map[string]any) any { return map[string]any{"node": name} }))
	return n
}

// connectE2E connects client id to url (a namespace URL) in rooms and
// returns its sid.
func connectE2E(t *testing.T, c *siotest.Clients, id, url, rooms string) string {
	t.Helper()
	return c.Connect(t, id, url, map[string]string{"rooms": rooms}, nil).Sid
}

// waitPeers waits until every node counts all of them.
func waitPeers(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	waitFor(t, 10*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			a := n.b.Adapter("/")
			if a == nil || a.AlivePeers() != len(nodes)-1 || n.io.Of("/", nil).Adapter().ServerCount() != int64(len(nodes)) {
				return false
			}
		}
		return true
	})
}

// TestE2EOperations runs two, then three Go nodes on one Redis with six
// official clients spread over them, and checks every cluster operation
// across them.
func TestE2EOperations(t *testing.T) {
	t.Parallel()
	for _, count := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d-nodes", count), func(t *testing.T) {
			t.Parallel()
			testE2EOperations(t, count)
		})
	}
}

func testE2EOperations(t *testing.T, count int) {
	s := redistest.StartStandalone(t)
	var nodes []*e2eNode
	for i := range count {
		nodes = append(nodes, startE2ENode(t, fmt.Sprintf("n%d", i), s.URL()))
	}
	waitPeers(t, nodes)
	c := siotest.StartClients(t)
	sids := map[string]string{}
	for _, l := range []struct {
		id    string
		node  int
		rooms string
	}{{"a", 0, "r1"}, {"b", 0, ""}, {"c", 1, "r1"}, {"d", 1, "r2"}, {"e", 2, "r2"}, {"f", 2, ""}} {
		sids[l.id] = connectE2E(t, c, l.id, nodes[l.node%count].url+"/", l.rooms)
	}
	all := []string{"a", "b", "c", "d", "e", "f"}
	// Joins are broadcast too: wait until every node sees all sockets.
	waitFor(t, 10*time.Second, "six sockets seen from every node", func() bool {
		for _, n := range nodes {
			var got []*socket.RemoteSocket
			n.io.FetchSockets()(func(s []*socket.RemoteSocket, err error) { got = s })
			if len(got) != 6 {
				return false
			}
		}
		return true
	})

	t.Run("broadcast", func(t *testing.T) {
		nodes[0].io.Emit("hello", 1, "two")
		nodes[1].io.To("r1").Emit("to-r1")
		nodes[count-1].io.Except("r1").Emit("not-r1")
		nodes[0].io.To("r2").Except(socket.Room(sids["e"])).Emit("r2-not-e")
		for _, n := range nodes {
			n.io.Emit("sentinel-" + n.name)
			c.WaitN(t, "sentinel", 6, 10*time.Second, siotest.IsEvent("sentinel-"+n.name))
		}
		for name, want := range map[string][]string{
			"hello":    all,
			"to-r1":    {"a", "c"},
			"not-r1":   {"b", "d", "e", "f"},
			"r2-not-e": {"d"},
		} {
			if got := c.Receivers(name); !slices.Equal(got, want) {
				t.Errorf("%s received by %v, want %v", name, got, want)
			}
		}
	})

	t.Run("fetchSockets", func(t *testing.T) {
		var got []*socket.RemoteSocket
		var ferr error
		nodes[1].io.In("r1").FetchSockets()(func(s []*socket.RemoteSocket, err error) { got, ferr = s, err })
		var ids []string
		for _, s := range got {
			ids = append(ids, string(s.Id()))
		}
		sort.Strings(ids)
		want := []string{sids["a"], sids["c"]}
		sort.Strings(want)
		if ferr != nil || !slices.Equal(ids, want) {
			t.Errorf("FetchSockets(r1) = %v, %v; want %v", ids, ferr, want)
		}
	})

	t.Run("serverSideEmit-ack", func(t *testing.T) {
		for _, n := range nodes {
			n.io.On("ping", func(args ...any) {
				args[len(args)-1].(socket.Ack)([]any{"pong-" + n.name}, nil)
			})
		}
		ch := make(chan []any, 1)
		errc := make(chan error, 1)
		if err := nodes[count-1].io.ServerSideEmitWithAck("ping")(func(args []any, err error) { ch <- args; errc <- err }); err != nil {
			t.Fatal(err)
		}
		args := siotest.Recv(t, ch, 10*time.Second, "serverSideEmit responses")
		var got []string
		for _, a := range args {
			got = append(got, fmt.Sprint(a))
		}
		sort.Strings(got)
		var want []string
		for i := range count - 1 {
			want = append(want, fmt.Sprintf("pong-n%d", i))
		}
		if err := <-errc; err != nil || !slices.Equal(got, want) {
			t.Errorf("responses %v, %v", got, err)
		}
	})

	t.Run("broadcast-ack", func(t *testing.T) {
		ch := make(chan []any, 1)
		errc := make(chan error, 1)
		_ = nodes[1].io.Timeout(5*time.Second).Emit("question", socket.Ack(func(args []any, err error) { ch <- args; errc <- err }))
		args := siotest.Recv(t, ch, 10*time.Second, "broadcast acks")
		var got []string
		for _, a := range args {
			m, _ := a.(map[string]any)
			got = append(got, fmt.Sprint(m["id"]))
		}
		sort.Strings(got)
		if err := <-errc; err != nil || !slices.Equal(got, all) {
			t.Errorf("acks from %v, %v", got, err)
		}
	})

	t.Run("serverCount", func(t *testing.T) {
		for _, n := range nodes {
			if got := n.io.Of("/", nil).Adapter().ServerCount(); got != int64(count) {
				t.Errorf("%s: ServerCount %d", n.name, got)
			}
		}
	})
}

// TestE2ENothingLost is the headline test: Redis is cut off from one node
// for several seconds while another keeps broadcasting a numbered
// sequence; every client on every node receives every number exactly
// once, in order.
func TestE2ENothingLost(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	sender := startE2ENode(t, "sender", s.URL())
	cut := startE2ENode(t, "cut", "redis://"+p.Addr())
	nodes := []*e2eNode{sender, cut}
	waitPeers(t, nodes)
	c := siotest.StartClients(t)
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		connectE2E(t, c, id, nodes[i%2].url+"/", "")
	}

	const total = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			sender.io.Emit("seq", i)
			time.Sleep(15 * time.Millisecond)
		}
	}()
	c.WaitN(t, "first numbers", 6*20, 10*time.Second, siotest.IsEvent("seq"))
	p.Cut()
	waitFor(t, 10*time.Second, "cut node not ready", func() bool { return !cut.tr.Ready() })
	time.Sleep(2500 * time.Millisecond) // the cut lasts while numbers flow
	p.Restore()
	<-done
	siotest.CheckSequence(t, c, ids, "seq", total)
	if v := value(cut.tr.metrics.readerErrors.WithLabelValues("socket.io")); v == 0 {
		t.Errorf("the cut was not noticed by the reader")
	}
}
