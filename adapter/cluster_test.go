package adapter_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siotest"
)

type ackResult struct {
	args []any
	err  error
	at   time.Duration
}

func emitWithAck(op *socket.BroadcastOperator, ev string, args ...any) <-chan ackResult {
	ch := make(chan ackResult, 1)
	start := time.Now()
	var once sync.Once
	_ = op.Emit(ev, append(args, socket.Ack(func(a []any, err error) {
		once.Do(func() { ch <- ackResult{a, err, time.Since(start)} })
	}))...)
	return ch
}

func ackIDs(t *testing.T, args []any) []string {
	t.Helper()
	var ids []string
	for _, a := range args {
		m, ok := a.(map[string]any)
		if !ok {
			t.Fatalf("ack response %#v is not a map", a)
		}
		ids = append(ids, fmt.Sprint(m["id"]))
	}
	slices.Sort(ids)
	return ids
}

func TestBroadcastWithAck(t *testing.T) {
	t.Parallel()
	nodes, c, sids := threeNodesSixClients(t)

	t.Run("all", func(t *testing.T) {
		res := siotest.Recv(t, emitWithAck(nodes[0].io.Timeout(5*time.Second), "question", 42), 6*time.Second, "acks")
		if res.err != nil {
			t.Fatalf("err %v", res.err)
		}
		if got := ackIDs(t, res.args); !slices.Equal(got, all6) {
			t.Errorf("acks from %v", got)
		}
		for _, ev := range c.Filter(siotest.IsEvent("question")) {
			if !ev.WithAck || !siotest.EqualJSON(ev.Args, []any{42}) {
				t.Errorf("client %s got %+v", ev.ID, ev)
			}
		}
	})

	t.Run("room-from-other-node", func(t *testing.T) {
		res := siotest.Recv(t, emitWithAck(nodes[2].io.To("r1").Timeout(5*time.Second), "q2"), 6*time.Second, "acks")
		if res.err != nil {
			t.Fatalf("err %v", res.err)
		}
		if got := ackIDs(t, res.args); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("acks from %v", got)
		}
	})

	t.Run("binary-ack", func(t *testing.T) {
		c2 := siotest.StartClients(t)
		c2.Connect(t, "bin", nodes[1].url+"/", map[string]string{"rooms": "binroom"}, map[string]any{"ack": map[string]any{"$bin": "AQID"}})
		res := siotest.Recv(t, emitWithAck(nodes[0].io.To("binroom").Timeout(5*time.Second), "give-bin"), 6*time.Second, "binary ack")
		if res.err != nil || len(res.args) != 1 {
			t.Fatalf("args %v err %v", res.args, res.err)
		}
		b, ok := res.args[0].([]byte)
		if !ok || string(b) != "\x01\x02\x03" {
			t.Errorf("binary ack %#v", res.args[0])
		}
	})

	t.Run("remote-socket", func(t *testing.T) {
		// FetchSockets gives RemoteSockets; Emit with an ack on one of
		// another node goes through BroadcastWithAck with
		// ExpectSingleResponse.
		sockets, err := siotest.Fetch(nodes[0].io.In(socket.Room(sids["e"])))
		if err != nil || len(sockets) != 1 {
			t.Fatalf("fetch e: %v %v", sockets, err)
		}
		ch := make(chan ackResult, 1)
		_ = sockets[0].Timeout(5*time.Second).Emit("ping", func(args []any, err error) { ch <- ackResult{args: args, err: err} })
		res := siotest.Recv(t, ch, 6*time.Second, "remote socket ack")
		if res.err != nil || len(res.args) != 1 || !siotest.EqualJSON(res.args[0], map[string]any{"id": "e"}) {
			t.Errorf("remote socket ack %v %v", res.args, res.err)
		}
	})

	t.Run("null-ack", func(t *testing.T) {
		// A remote client acknowledging with null counts as a response
		// (Node pushes undefined), any value goes through as is.
		c2 := siotest.StartClients(t)
		c2.Connect(t, "mute", nodes[1].url+"/", map[string]string{"rooms": "slow"}, map[string]any{"ack": nil})
		c2.Connect(t, "talk", nodes[2].url+"/", map[string]string{"rooms": "slow"}, map[string]any{"ack": "yes"})
		res := siotest.Recv(t, emitWithAck(nodes[0].io.To("slow").Timeout(2*time.Second), "slowq"), 4*time.Second, "acks")
		if res.err != nil || len(res.args) != 2 {
			t.Fatalf("args %v err %v", res.args, res.err)
		}
		if !slices.ContainsFunc(res.args, func(a any) bool { return a == nil }) || !slices.Contains(res.args, any("yes")) {
			t.Errorf("acks %v, want [nil yes]", res.args)
		}
	})
}

// A broadcast with ack to a room where a remote client never answers ends
// with the operator's timeout error and the answers that came.
func TestBroadcastWithAckTimeout(t *testing.T) {
	t.Parallel()
	_, nodes := newCluster(t, 2, fastConfig())
	c := siotest.StartClients(t)
	c.Connect(t, "ok", nodes[0].url+"/", map[string]string{"rooms": "t"}, nil)
	c.Connect(t, "silent", nodes[1].url+"/", map[string]string{"rooms": "t"}, map[string]any{"noAck": true})
	res := siotest.Recv(t, emitWithAck(nodes[0].io.To("t").Timeout(500*time.Millisecond), "q"), 3*time.Second, "ack")
	if res.err == nil {
		t.Fatalf("no timeout error; args %v", res.args)
	}
	if got := ackIDs(t, res.args); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("responses %v", got)
	}
	if res.at < 400*time.Millisecond || res.at > 2*time.Second {
		t.Errorf("completed after %v, want about the 500ms timeout", res.at)
	}
}

func TestSocketsJoinLeaveDisconnect(t *testing.T) {
	t.Parallel()
	nodes, c, sids := threeNodesSixClients(t)

	// n2 makes every r1 member (a on n0, c on n1) join r3.
	nodes[2].io.In("r1").SocketsJoin("r3", "r4")
	siotest.Eventually(t, 5*time.Second, "r1 members in r3 everywhere", func() bool {
		s, err := siotest.Fetch(nodes[2].io.In("r3"))
		return err == nil && slices.Equal(siotest.SocketIDs(s), siotest.Sorted(sids["a"], sids["c"]))
	})
	nodes[1].io.To("r3").Emit("in-r3")
	c.WaitN(t, "in-r3", 2, 5*time.Second, siotest.IsEvent("in-r3"))
	sentinel(t, nodes[1], c, "s-join")
	if got := c.Receivers("in-r3"); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("r3 receivers %v", got)
	}

	// n0 makes everyone leave r4, and r2 members (d, e) leave r2.
	nodes[0].io.SocketsLeave("r4")
	nodes[0].io.In("r2").SocketsLeave("r2")
	siotest.Eventually(t, 5*time.Second, "r4 and r2 empty", func() bool {
		s4, err4 := siotest.Fetch(nodes[1].io.In("r4"))
		s2, err2 := siotest.Fetch(nodes[1].io.In("r2"))
		return err4 == nil && err2 == nil && len(s4) == 0 && len(s2) == 0
	})
	nodes[0].io.To("r3").Emit("still-r3")
	c.WaitN(t, "still-r3", 2, 5*time.Second, siotest.IsEvent("still-r3"))

	// A RemoteSocket join: b (on n0) joins "solo" from n2.
	remote, err := siotest.Fetch(nodes[2].io.In(socket.Room(sids["b"])))
	if err != nil || len(remote) != 1 {
		t.Fatalf("fetch b: %v %v", remote, err)
	}
	remote[0].Join("solo")
	siotest.Eventually(t, 5*time.Second, "b in solo", func() bool {
		s, err := siotest.Fetch(nodes[1].io.In("solo"))
		return err == nil && slices.Equal(siotest.SocketIDs(s), []string{sids["b"]})
	})

	// Disconnect: r1 members (a, c) from n2, without closing the connection.
	nodes[2].io.In("r1").DisconnectSockets(false)
	evs := c.WaitN(t, "disconnects", 2, 5*time.Second, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
		if ev.Reason != "io server disconnect" {
			t.Errorf("client %s: reason %q", ev.ID, ev.Reason)
		}
	}
	if slices.Sort(ids); !slices.Equal(ids, []string{"a", "c"}) {
		t.Errorf("disconnected %v", ids)
	}
	// Then everyone else, closing the connections.
	nodes[0].io.DisconnectSockets(true)
	c.WaitN(t, "all disconnected", 6, 5*time.Second, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
	siotest.Eventually(t, 5*time.Second, "no socket left", func() bool {
		s, err := siotest.Fetch(nodes[1].io.In())
		return err == nil && len(s) == 0
	})
}

func TestFetchSockets(t *testing.T) {
	t.Parallel()
	nodes, c, sids := threeNodesSixClients(t)
	_ = c
	all := siotest.Sorted(sids["a"], sids["b"], sids["c"], sids["d"], sids["e"], sids["f"])

	for i, n := range nodes {
		sockets, err := siotest.Fetch(n.io.In())
		if err != nil {
			t.Fatalf("n%d: %v", i, err)
		}
		if got := siotest.SocketIDs(sockets); !slices.Equal(got, all) {
			t.Errorf("n%d fetched %v, want %v", i, got, all)
		}
	}

	sockets, err := siotest.Fetch(nodes[0].io.In("r2"))
	if err != nil || !slices.Equal(siotest.SocketIDs(sockets), siotest.Sorted(sids["d"], sids["e"])) {
		t.Errorf("In(r2): %v %v", siotest.SocketIDs(sockets), err)
	}
	sockets, err = siotest.Fetch(nodes[0].io.Except("r1"))
	if err != nil || !slices.Equal(siotest.SocketIDs(sockets), siotest.Sorted(sids["b"], sids["d"], sids["e"], sids["f"])) {
		t.Errorf("Except(r1): %v %v", siotest.SocketIDs(sockets), err)
	}
	sockets, err = siotest.Fetch(nodes[1].io.Local())
	if err != nil || !slices.Equal(siotest.SocketIDs(sockets), siotest.Sorted(sids["c"], sids["d"])) {
		t.Errorf("Local: %v %v", siotest.SocketIDs(sockets), err)
	}

	// Details of a remote socket: d lives on n1, fetched from n0.
	sockets, err = siotest.Fetch(nodes[0].io.In(socket.Room(sids["d"])))
	if err != nil || len(sockets) != 1 {
		t.Fatalf("fetch d: %v %v", sockets, err)
	}
	d := sockets[0]
	if got := siotest.Sorted(roomStrings(d.Rooms().Keys())...); !slices.Equal(got, siotest.Sorted(sids["d"], "r2")) {
		t.Errorf("rooms %v", got)
	}
	if !siotest.EqualJSON(d.Data(), map[string]any{"user": "user-d", "node": "n1"}) {
		t.Errorf("data %#v", d.Data())
	}
	h := d.Handshake()
	if h == nil || siotest.QueryValue(h.Query, "user") != "user-d" || !strings.Contains(h.Url, "user=user-d") ||
		h.Address == "" || h.Issued == 0 || h.Time == "" || h.Headers == nil {
		t.Errorf("handshake %+v", h)
	}
}

func roomStrings(rs []socket.Room) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestServerSideEmit(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.RequestTimeout = 700 * time.Millisecond
	_, nodes := newCluster(t, 3, cfg)

	type got struct {
		node string
		args []any
	}
	received := make(chan got, 16)
	for _, n := range nodes {
		n := n
		n.io.On("hello", func(args ...any) { received <- got{n.name, args} })
		n.io.On("ping", func(args ...any) {
			ack := args[len(args)-1].(socket.Ack)
			ack([]any{"pong-" + n.name, "ignored second arg"}, nil)
		})
		n.io.On("bin", func(args ...any) {
			ack := args[len(args)-1].(socket.Ack)
			ack([]any{args[0]}, nil)
		})
		if n.name == "n2" {
			n.io.On("partial", func(args ...any) {}) // never acknowledges
		} else {
			n.io.On("partial", func(args ...any) { args[len(args)-1].(socket.Ack)([]any{n.name}, nil) })
		}
	}

	t.Run("no-ack", func(t *testing.T) {
		if err := nodes[0].io.ServerSideEmit("hello", "world", 1); err != nil {
			t.Fatal(err)
		}
		var from []string
		for range 2 {
			g := siotest.Recv(t, received, 5*time.Second, "hello")
			from = append(from, g.node)
			if !siotest.EqualJSON(g.args, []any{"world", 1}) {
				t.Errorf("%s got %v", g.node, g.args)
			}
		}
		if slices.Sort(from); !slices.Equal(from, []string{"n1", "n2"}) {
			t.Errorf("received on %v, want the other nodes only", from)
		}
	})

	t.Run("ack", func(t *testing.T) {
		ch := make(chan ackResult, 1)
		if err := nodes[1].io.ServerSideEmitWithAck("ping")(func(args []any, err error) { ch <- ackResult{args: args, err: err} }); err != nil {
			t.Fatal(err)
		}
		res := siotest.Recv(t, ch, 5*time.Second, "ping acks")
		var pongs []string
		for _, a := range res.args {
			pongs = append(pongs, fmt.Sprint(a))
		}
		sort.Strings(pongs)
		if res.err != nil || !slices.Equal(pongs, []string{"pong-n0", "pong-n2"}) {
			t.Errorf("responses %v err %v", res.args, res.err)
		}
	})

	t.Run("binary", func(t *testing.T) {
		ch := make(chan ackResult, 1)
		_ = nodes[2].io.ServerSideEmit("bin", []byte{9, 8, 7}, socket.Ack(func(args []any, err error) { ch <- ackResult{args: args, err: err} }))
		res := siotest.Recv(t, ch, 5*time.Second, "bin acks")
		if res.err != nil || len(res.args) != 2 {
			t.Fatalf("responses %v err %v", res.args, res.err)
		}
		for _, a := range res.args {
			if b, ok := a.([]byte); !ok || string(b) != "\x09\x08\x07" {
				t.Errorf("response %#v", a)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		ch := make(chan ackResult, 1)
		start := time.Now()
		_ = nodes[0].io.ServerSideEmitWithAck("partial")(func(args []any, err error) { ch <- ackResult{args: args, err: err} })
		res := siotest.Recv(t, ch, 5*time.Second, "partial acks")
		var te *adapter.TimeoutError
		if !errors.Is(res.err, adapter.ErrTimeout) || !errors.As(res.err, &te) || te.Received != 1 || te.Expected != 2 {
			t.Errorf("err %v", res.err)
		}
		if !siotest.EqualJSON(res.args, []any{"n1"}) {
			t.Errorf("responses %v", res.args)
		}
		if d := time.Since(start); d < 600*time.Millisecond {
			t.Errorf("timed out after %v, before RequestTimeout", d)
		}
		if v := nodes[0].metric("sockstream_adapter_requests_total", map[string]string{"kind": "server_side_emit", "outcome": "timeout"}); v != 1 {
			t.Errorf("timeout counter %v", v)
		}
	})
}

func TestServerCountAndGracefulClose(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.HeartbeatTimeout = 5 * time.Second // a drop here must come from ADAPTER_CLOSE
	_, nodes := newCluster(t, 3, cfg)
	for _, n := range nodes {
		if got := n.io.Of("/", nil).Adapter().ServerCount(); got != 3 {
			t.Errorf("%s: ServerCount %d", n.name, got)
		}
	}
	c := siotest.StartClients(t)
	c.Connect(t, "x", nodes[1].url+"/", nil, nil)

	nodes[2].close()
	a0 := nodes[0].adapter("/")
	siotest.Eventually(t, 2*time.Second, "n2 dropped via ADAPTER_CLOSE", func() bool { return a0.AlivePeers() == 1 })
	if v := nodes[0].metric("sockstream_adapter_peers_declared_dead_total", map[string]string{"reason": "close"}); v != 1 {
		t.Errorf("dead(close) counter %v", v)
	}
	if got := a0.ServerCount(); got != 2 {
		t.Errorf("ServerCount after close %d", got)
	}
	start := time.Now()
	sockets, err := siotest.Fetch(nodes[0].io.In())
	if err != nil || len(sockets) != 1 || time.Since(start) > time.Second {
		t.Errorf("fetch after close: %v %v in %v", siotest.SocketIDs(sockets), err, time.Since(start))
	}
}

// A hung node (still counted by the transport, silent) is declared dead
// after HeartbeatTimeout; a fetchSockets waiting for it completes then, not
// after RequestTimeout, and later requests do not wait for it at all.
func TestHungNodeDropped(t *testing.T) {
	t.Parallel()
	cfg := fastConfig() // heartbeat 100ms, timeout 300ms
	cfg.RequestTimeout = 5 * time.Second
	_, nodes := newCluster(t, 3, cfg)
	c := siotest.StartClients(t)
	sa := c.Connect(t, "a", nodes[0].url+"/", nil, nil).Sid
	sb := c.Connect(t, "b", nodes[1].url+"/", nil, nil).Sid
	c.Connect(t, "h", nodes[2].url+"/", nil, nil)

	ssePending := make(chan ackResult, 1)
	nodes[1].io.On("who", func(args ...any) { args[len(args)-1].(socket.Ack)([]any{"n1"}, nil) })
	nodes[2].io.On("who", func(args ...any) { args[len(args)-1].(socket.Ack)([]any{"n2"}, nil) })
	nodes[2].tr.Suspend()

	start := time.Now()
	_ = nodes[0].io.ServerSideEmitWithAck("who")(func(args []any, err error) { ssePending <- ackResult{args, err, time.Since(start)} })
	sockets, err := siotest.Fetch(nodes[0].io.In())
	took := time.Since(start)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := siotest.SocketIDs(sockets); !slices.Equal(got, siotest.Sorted(sa, sb)) {
		t.Errorf("fetched %v", got)
	}
	if took > 2*time.Second {
		t.Errorf("fetch took %v: waited for the hung node beyond its heartbeat timeout", took)
	}
	res := siotest.Recv(t, ssePending, 3*time.Second, "serverSideEmit acks")
	if res.err != nil || !siotest.EqualJSON(res.args, []any{"n1"}) || res.at > 2*time.Second {
		t.Errorf("serverSideEmit: %v %v after %v", res.args, res.err, res.at)
	}
	if v := nodes[0].metric("sockstream_adapter_peers_declared_dead_total", map[string]string{"reason": "timeout"}); v != 1 {
		t.Errorf("dead(timeout) counter %v", v)
	}
	if v := nodes[0].metric("sockstream_adapter_peers_alive", nil); v != 1 {
		t.Errorf("alive gauge %v", v)
	}

	a0 := nodes[0].adapter("/")
	if got := a0.ServerCount(); got != 2 {
		t.Errorf("ServerCount with a dead node still counted by the transport: %d", got)
	}
	start = time.Now()
	if _, err := siotest.Fetch(nodes[0].io.In()); err != nil || time.Since(start) > 500*time.Millisecond {
		t.Errorf("fetch after the drop: %v in %v", err, time.Since(start))
	}
	// A broadcast with acks does not wait for it either.
	br := siotest.Recv(t, emitWithAck(nodes[0].io.Timeout(4*time.Second), "q"), 5*time.Second, "acks")
	if br.err != nil || br.at > time.Second {
		t.Errorf("broadcast ack: %v %v after %v", br.args, br.err, br.at)
	}

	// It comes back: heartbeats make it alive again.
	nodes[2].tr.Resume()
	siotest.Eventually(t, 3*time.Second, "n2 alive again", func() bool { return a0.AlivePeers() == 2 })
	if got := a0.ServerCount(); got != 3 {
		t.Errorf("ServerCount after resume %d", got)
	}
}

// A broadcast with acks waiting for a node that hangs completes as soon as
// the node is declared dead: the adapter answers "0 clients" for it.
func TestBroadcastAckPeerDiesWhilePending(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	_, nodes := newCluster(t, 3, cfg)
	c := siotest.StartClients(t)
	c.Connect(t, "a", nodes[0].url+"/", nil, nil)
	c.Connect(t, "b", nodes[1].url+"/", nil, nil)
	nodes[2].tr.Suspend()
	res := siotest.Recv(t, emitWithAck(nodes[0].io.Timeout(5*time.Second), "q"), 6*time.Second, "acks")
	if res.err != nil || res.at > 2*time.Second {
		t.Errorf("acks %v err %v after %v", res.args, res.err, res.at)
	}
	if got := ackIDs(t, res.args); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("acks from %v", got)
	}
}
