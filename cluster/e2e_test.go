package cluster_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
)

// The end-to-end tests run Go nodes (sockstream's server with the cluster
// adapter on the Redis Streams transport, as the fault tests do) on one
// Redis, with official clients spread over them.

// startE2ENode starts a node of the end-to-end tests: a socket joins the
// rooms of its "rooms" query parameter, and its data is {node: name}.
func startE2ENode(t *testing.T, name, redisURL string) *fltNode {
	t.Helper()
	cfg := fltDefault
	cfg.data = func(url.Values) any { return map[string]any{"node": name} }
	return startFltNode(t, name, redisURL, cfg)
}

// connectE2E connects client id to url (a namespace URL) in rooms and
// returns its sid.
func connectE2E(t *testing.T, c *siotest.Clients, id, url, rooms string) string {
	t.Helper()
	return c.Connect(t, id, url, map[string]string{"rooms": rooms}, nil).Sid
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
	var nodes []*fltNode
	for i := range count {
		nodes = append(nodes, startE2ENode(t, fmt.Sprintf("n%d", i), s.URL()))
	}
	fltWaitPeers(t, nodes...)
	c := siotest.StartClients(t)
	sids := map[string]string{}
	for _, l := range []struct {
		id    string
		node  int
		rooms string
	}{{"a", 0, "r1"}, {"b", 0, ""}, {"c", 1, "r1"}, {"d", 1, "r2"}, {"e", 2, "r2"}, {"f", 2, ""}} {
		sids[l.id] = connectE2E(t, c, l.id, nodes[l.node%count].url(), l.rooms)
	}
	all := []string{"a", "b", "c", "d", "e", "f"}
	// Joins are broadcast too: wait until every node sees all sockets.
	siotest.Eventually(t, 10*time.Second, "six sockets seen from every node", func() bool {
		for _, n := range nodes {
			if got, err := fltFetch(n); err != nil || len(got) != 6 {
				return false
			}
		}
		return true
	})

	t.Run("broadcast", func(t *testing.T) {
		emit := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		emit(nodes[0].srv.Srv.Emit("hello", 1, "two"))
		emit(nodes[1].srv.Srv.To("r1").Emit("to-r1"))
		emit(nodes[count-1].srv.Srv.Except("r1").Emit("not-r1"))
		emit(nodes[0].srv.Srv.To("r2").Except(sids["e"]).Emit("r2-not-e"))
		for _, n := range nodes {
			emit(n.srv.Srv.Emit("sentinel-" + n.name))
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
		got, ferr := siotest.Fetch(nodes[1].srv.Srv.In("r1"))
		ids := siotest.SocketIDs(got)
		want := siotest.Sorted(sids["a"], sids["c"])
		if ferr != nil || !slices.Equal(ids, want) {
			t.Errorf("FetchSockets(r1) = %v, %v; want %v", ids, ferr, want)
		}
	})

	t.Run("serverSideEmit-ack", func(t *testing.T) {
		// Every node answers "ping" with "pong-<name>" (startFltNode).
		got, err := fltPing(nodes[count-1])
		var want []string
		for i := range count - 1 {
			want = append(want, fmt.Sprintf("pong-n%d", i))
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("responses %v, %v", got, err)
		}
	})

	t.Run("broadcast-ack", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		args, err := nodes[1].srv.Srv.Of("/").In().EmitWithAck(ctx, "question")
		var got []string
		for _, a := range args {
			m, _ := a.(map[string]any)
			got = append(got, fmt.Sprint(m["id"]))
		}
		sort.Strings(got)
		if err != nil || !slices.Equal(got, all) {
			t.Errorf("acks from %v, %v", got, err)
		}
	})

	t.Run("serverCount", func(t *testing.T) {
		for _, n := range nodes {
			if got := n.nsp().ServerCount(); got != count {
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
	nodes := []*fltNode{sender, cut}
	fltWaitPeers(t, nodes...)
	c := siotest.StartClients(t)
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		connectE2E(t, c, id, nodes[i%2].url(), "")
	}

	const total = 300
	done := fltSequence(t, sender, total)
	c.WaitN(t, "first numbers", 6*20, 10*time.Second, siotest.IsEvent("seq"))
	p.Cut()
	siotest.Eventually(t, 10*time.Second, "cut node not ready", func() bool { return !cut.tr.Ready() })
	time.Sleep(2500 * time.Millisecond) // the cut lasts while numbers flow
	p.Restore()
	<-done
	siotest.CheckSequence(t, c, ids, "seq", total)
	if v := cut.metric(t, "sockstream_cluster_stream_read_errors_total", "stream", "socket.io"); v == 0 {
		t.Errorf("the cut was not noticed by the reader")
	}
}
