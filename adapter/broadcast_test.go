package adapter_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/sockstream/sockstream/internal/siotest"
)

// Three nodes, two clients on each (official Node client over WebSocket):
// a: n0 room r1, b: n0, c: n1 room r1, d: n1 room r2, e: n2 room r2, f: n2.
func threeNodesSixClients(t *testing.T, opts ...nodeOption) ([]*node, *siotest.Clients, map[string]string) {
	t.Helper()
	_, nodes := newCluster(t, 3, fastConfig(), opts...)
	c := siotest.StartClients(t)
	sids := map[string]string{}
	layout := []struct {
		id    string
		node  int
		rooms string
	}{{"a", 0, "r1"}, {"b", 0, ""}, {"c", 1, "r1"}, {"d", 1, "r2"}, {"e", 2, "r2"}, {"f", 2, ""}}
	for _, l := range layout {
		sids[l.id] = c.Connect(t, l.id, nodes[l.node].url+"/", map[string]string{"rooms": l.rooms, "user": "user-" + l.id}, nil).Sid
	}
	return nodes, c, sids
}

var all6 = []string{"a", "b", "c", "d", "e", "f"}

// sentinel broadcasts event name from n to every client and waits until all
// six got it: since one node's broadcasts reach every client in order,
// whatever n broadcast before has arrived by then.
func sentinel(t *testing.T, n *node, c *siotest.Clients, name string) {
	t.Helper()
	n.io.Emit(name)
	c.WaitN(t, "sentinel "+name, 6, 5*time.Second, siotest.IsEvent(name))
}

func TestBroadcastAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes, c, sids := threeNodesSixClients(t)
	n0, n1 := nodes[0], nodes[1]

	t.Run("all", func(t *testing.T) {
		n0.io.Emit("hello", 1, "two", map[string]any{"three": []any{3.5, true, nil}})
		evs := c.WaitN(t, "hello on 6 clients", 6, 5*time.Second, siotest.IsEvent("hello"))
		for _, ev := range evs {
			if !siotest.EqualJSON(ev.Args, []any{1, "two", map[string]any{"three": []any{3.5, true, nil}}}) {
				t.Errorf("client %s got %v", ev.ID, ev.Args)
			}
		}
		sentinel(t, n0, c, "s-all")
		if got := c.Receivers("hello"); !slices.Equal(got, all6) {
			t.Errorf("receivers %v, want each client once", got)
		}
	})

	t.Run("room", func(t *testing.T) {
		n1.io.To("r1").Emit("to-r1", "x")
		c.WaitN(t, "to-r1", 2, 5*time.Second, siotest.IsEvent("to-r1"))
		n1.io.To("r1", "r2").Emit("to-r1r2")
		c.WaitN(t, "to-r1r2", 4, 5*time.Second, siotest.IsEvent("to-r1r2"))
		sentinel(t, n1, c, "s-room")
		if got := c.Receivers("to-r1"); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("to-r1 receivers %v", got)
		}
		if got := c.Receivers("to-r1r2"); !slices.Equal(got, []string{"a", "c", "d", "e"}) {
			t.Errorf("to-r1r2 receivers %v (a client in two rooms gets it once)", got)
		}
	})

	t.Run("except", func(t *testing.T) {
		n0.io.Except("r1").Emit("not-r1")
		c.WaitN(t, "not-r1", 4, 5*time.Second, siotest.IsEvent("not-r1"))
		n0.io.To("r2").Except(socket.Room(sids["e"])).Emit("r2-not-e")
		c.WaitN(t, "r2-not-e", 1, 5*time.Second, siotest.IsEvent("r2-not-e"))
		sentinel(t, n0, c, "s-except")
		if got := c.Receivers("not-r1"); !slices.Equal(got, []string{"b", "d", "e", "f"}) {
			t.Errorf("not-r1 receivers %v", got)
		}
		if got := c.Receivers("r2-not-e"); !slices.Equal(got, []string{"d"}) {
			t.Errorf("r2-not-e receivers %v", got)
		}
	})

	t.Run("local", func(t *testing.T) {
		before := n1.tr.Published()
		n1.io.Local().Emit("local-only")
		c.WaitN(t, "local-only", 2, 5*time.Second, siotest.IsEvent("local-only"))
		sentinel(t, n1, c, "s-local")
		if got := c.Receivers("local-only"); !slices.Equal(got, []string{"c", "d"}) {
			t.Errorf("local receivers %v, want n1's clients only", got)
		}
		// Only the sentinel (and maybe heartbeats) went out, not the local one.
		if n1.metric("sockstream_adapter_broadcasts_published_total", nil) < 1 || n1.tr.Published() <= before {
			t.Errorf("sentinel not published")
		}
	})

	t.Run("volatile", func(t *testing.T) {
		// A volatile packet may be dropped by a busy connection: emit a few,
		// each followed by a sentinel, until a client of another node got
		// one; no client may get one twice.
		for i := range 5 {
			n0.io.Volatile().Emit("vol", i)
			sentinel(t, n0, c, fmt.Sprintf("s-vol-%d", i))
			got := c.Filter(siotest.IsEvent("vol"))
			remote := slices.ContainsFunc(got, func(ev siotest.Event) bool { return ev.ID != "a" && ev.ID != "b" })
			if remote {
				break
			}
		}
		seen := map[string]bool{}
		for _, ev := range c.Filter(siotest.IsEvent("vol")) {
			k := fmt.Sprint(ev.ID, ev.Args)
			if seen[k] {
				t.Errorf("duplicate volatile delivery %s", k)
			}
			seen[k] = true
		}
		if !slices.ContainsFunc(c.Filter(siotest.IsEvent("vol")), func(ev siotest.Event) bool { return ev.ID != "a" && ev.ID != "b" }) {
			t.Errorf("no volatile broadcast reached another node's client")
		}
	})

	t.Run("binary", func(t *testing.T) {
		payload := []byte{0, 1, 2, 253, 254, 255}
		n0.io.Emit("bin", payload, map[string]any{"nested": types.NewBytesBuffer([]byte("buf")), "s": "x"})
		evs := c.WaitN(t, "bin", 6, 5*time.Second, siotest.IsEvent("bin"))
		for _, ev := range evs {
			if len(ev.Args) != 2 {
				t.Fatalf("client %s: args %v", ev.ID, ev.Args)
			}
			if got := siotest.Bin(t, ev.Args[0]); !bytes.Equal(got, payload) {
				t.Errorf("client %s: binary %v", ev.ID, got)
			}
			m, _ := ev.Args[1].(map[string]any)
			if got := siotest.Bin(t, m["nested"]); string(got) != "buf" || m["s"] != "x" {
				t.Errorf("client %s: nested %v", ev.ID, ev.Args[1])
			}
		}
	})

	t.Run("from-socket", func(t *testing.T) {
		// socket.Broadcast() on n2 for client e: everyone but e.
		n2 := nodes[2]
		var sock *socket.Socket
		n2.io.Of("/", nil).Sockets().Range(func(id socket.SocketId, s *socket.Socket) bool {
			if string(id) == sids["e"] {
				sock = s
			}
			return true
		})
		if sock == nil {
			t.Fatal("socket of e not found on n2")
		}
		sock.Broadcast().Emit("from-e", sids["e"])
		c.WaitN(t, "from-e", 5, 5*time.Second, siotest.IsEvent("from-e"))
		n2.io.Emit("s-sock")
		c.WaitN(t, "s-sock", 6, 5*time.Second, siotest.IsEvent("s-sock"))
		if got := c.Receivers("from-e"); !slices.Equal(got, []string{"a", "b", "c", "d", "f"}) {
			t.Errorf("from-e receivers %v", got)
		}
	})
}

// Binary from a client, relayed by its server to the cluster.
func TestBinaryFromClientRelayed(t *testing.T) {
	t.Parallel()
	_, nodes := newCluster(t, 2, fastConfig())
	nodes[0].io.On("connection", func(args ...any) {
		s := args[0].(*socket.Socket)
		s.On("relay", func(a ...any) { _ = nodes[0].io.Emit("relayed", a...) })
	})
	c := siotest.StartClients(t)
	c.Connect(t, "x", nodes[0].url+"/", nil, nil)
	c.Connect(t, "y", nodes[1].url+"/", nil, nil)
	c.Emit(t, "x", "relay", map[string]any{"$bin": "AAEC/w=="}, "text")
	evs := c.WaitN(t, "relayed", 2, 5*time.Second, siotest.IsEvent("relayed"))
	for _, ev := range evs {
		if len(ev.Args) != 2 || !bytes.Equal(siotest.Bin(t, ev.Args[0]), []byte{0, 1, 2, 255}) || ev.Args[1] != "text" {
			t.Errorf("client %s got %v", ev.ID, ev.Args)
		}
	}
}

// Per-namespace order: 1,000 broadcasts from one node reach every client,
// on every node, in order; the same through a transport without batching.
func TestBroadcastOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []nodeOption
	}{{"batch", nil}, {"no-batch", []nodeOption{withNoBatch()}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, nodes := newCluster(t, 2, fastConfig(), tc.opts...)
			c := siotest.StartClients(t)
			c.Connect(t, "p", nodes[0].url+"/", map[string]string{"rooms": "odd"}, nil)
			c.Connect(t, "q", nodes[1].url+"/", map[string]string{"rooms": "odd"}, nil)
			c.Connect(t, "r", nodes[1].url+"/", nil, nil)
			const total = 1000
			for i := range total {
				if i%2 == 1 {
					nodes[0].io.To("odd").Emit("seq", i)
				} else {
					nodes[0].io.Emit("seq", i)
				}
			}
			for _, id := range []string{"p", "q", "r"} {
				want := total
				if id == "r" {
					want = total / 2
				}
				evs := c.WaitN(t, "seq for "+id, want, 20*time.Second, siotest.IsEventFor(id, "seq"))
				prev := -1
				for _, ev := range evs {
					v := int(ev.Args[0].(float64))
					if v <= prev || (id == "r" && v%2 == 1) {
						t.Fatalf("client %s: %d after %d", id, v, prev)
					}
					prev = v
				}
			}
		})
	}
}

var offsetRe = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// With connection state recovery, an event broadcast without ack and not
// volatile carries the stream offset as its last argument, on the
// publishing node and on the others.
func TestOffsetAppendedWithRecovery(t *testing.T) {
	t.Parallel()
	_, nodes := newCluster(t, 2, fastConfig(), withCSR())
	c := siotest.StartClients(t)
	c.Connect(t, "local", nodes[0].url+"/", nil, nil)
	c.Connect(t, "remote", nodes[1].url+"/", nil, nil)

	nodes[0].io.Emit("durable", "x")
	evs := c.WaitN(t, "durable", 2, 5*time.Second, siotest.IsEvent("durable"))
	offsets := map[string]bool{}
	for _, ev := range evs {
		if len(ev.Args) != 2 || ev.Args[0] != "x" {
			t.Fatalf("client %s: args %v", ev.ID, ev.Args)
		}
		off, _ := ev.Args[1].(string)
		if !offsetRe.MatchString(off) {
			t.Errorf("client %s: last arg %q is not an offset", ev.ID, off)
		}
		offsets[off] = true
	}
	if len(offsets) != 1 {
		t.Errorf("publishing and receiving nodes disagree on the offset: %v", offsets)
	}

	nodes[0].io.Volatile().Emit("vol", "y")
	for _, ev := range c.WaitN(t, "vol", 2, 5*time.Second, siotest.IsEvent("vol")) {
		if len(ev.Args) != 1 {
			t.Errorf("volatile: client %s got %v, want no offset", ev.ID, ev.Args)
		}
	}

	var acks []any
	done := make(chan error, 1)
	nodes[0].io.Timeout(3*time.Second).Emit("withack", "z", func(args []any, err error) {
		acks = args
		done <- err
	})
	for _, ev := range c.WaitN(t, "withack", 2, 5*time.Second, siotest.IsEvent("withack")) {
		if len(ev.Args) != 1 {
			t.Errorf("ack broadcast: client %s got %v, want no offset", ev.ID, ev.Args)
		}
	}
	if err := <-done; err != nil || len(acks) != 2 {
		t.Errorf("acks %v, err %v", acks, err)
	}
}
