package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

func fetchIDs(t *testing.T, n *node, o adapter.Options) []string {
	t.Helper()
	infos, err := n.a.FetchSockets(context.Background(), o)
	if err != nil {
		t.Fatalf("%s: FetchSockets: %v", n.name, err)
	}
	return infoIDs(infos)
}

func infoIDs(infos []adapter.SocketInfo) []string {
	var ids []string
	for _, i := range infos {
		ids = append(ids, i.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestSocketsJoinLeaveDisconnect(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		nodes := start(t, 3, fastConfig())
		six(nodes)

		// n2 makes every r1 member (a on n0, c on n1) join r3 and r4; a
		// broadcast to r3 right after reaches them (same order everywhere).
		if err := nodes[2].a.AddSockets(opts([]string{"r1"}), []string{"r3", "r4"}); err != nil {
			t.Fatal(err)
		}
		_ = nodes[2].a.Broadcast(ev("in-r3"), opts([]string{"r3"}))
		sentinel(t, nodes, nodes[2], "s-join", 6)
		if got := receivers(nodes, "in-r3"); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("r3 receivers %v", got)
		}
		if got := nodes[1].a.SocketRooms("c"); !slices.Equal(got, []string{"c", "r1", "r3", "r4"}) {
			t.Errorf("rooms of c %v", got)
		}
		// The sentinel came after the joins everywhere.
		if got := fetchIDs(t, nodes[0], opts([]string{"r4"})); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("r4 fetched %v", got)
		}
		// AddSockets returns once published and applied on this node: a
		// Local fetch right after sees the join, and so does this node's
		// part of a FetchSockets (the others' parts may not: over Redis
		// the request travels over pub/sub, the joins in the stream).
		if err := nodes[1].a.AddSockets(opts([]string{"d"}), []string{"r5"}); err != nil {
			t.Fatal(err)
		}
		if got := fetchIDs(t, nodes[1], adapter.Options{Rooms: []string{"r5"}, Flags: adapter.Flags{Local: true}}); !slices.Equal(got, []string{"d"}) {
			t.Errorf("a Local fetch after AddSockets saw %v, want [d]", got)
		}
		if got := fetchIDs(t, nodes[1], opts([]string{"r5"})); !slices.Equal(got, []string{"d"}) {
			t.Errorf("r5 fetched %v", got)
		}

		// n0 makes everyone leave r4, and the r2 members (d, e) leave r2.
		_ = nodes[0].a.DelSockets(adapter.Options{}, []string{"r4"})
		_ = nodes[0].a.DelSockets(opts([]string{"r2"}), []string{"r2"})
		eventually(t, 5*time.Second, "r4 and r2 empty", func() bool {
			return len(fetchIDs(t, nodes[1], opts([]string{"r4", "r2"}))) == 0
		})
		_ = nodes[0].a.Broadcast(ev("still-r3"), opts([]string{"r3"}))
		sentinel(t, nodes, nodes[0], "s-leave", 6)
		if got := receivers(nodes, "still-r3"); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("still-r3 receivers %v", got)
		}

		// One socket of another node (as a RemoteSocket does): b joins solo.
		_ = nodes[2].a.AddSockets(opts([]string{"b"}), []string{"solo"})
		eventually(t, 5*time.Second, "b in solo", func() bool {
			return slices.Equal(fetchIDs(t, nodes[1], opts([]string{"solo"})), []string{"b"})
		})

		// Disconnect the r1 members from n2, without closing; then everyone
		// else, closing.
		_ = nodes[2].a.DisconnectSockets(opts([]string{"r1"}), false)
		eventually(t, 5*time.Second, "a and c disconnected", func() bool {
			return slices.Equal(nodes[0].ns.gone(), []string{"a"}) && slices.Equal(nodes[1].ns.gone(), []string{"c"})
		})
		if len(nodes[0].ns.closed())+len(nodes[1].ns.closed()) != 0 {
			t.Error("connections closed without closeConn")
		}
		if got := nodes[0].a.SocketRooms("a"); got != nil {
			t.Errorf("a still in %v", got)
		}
		_ = nodes[0].a.DisconnectSockets(adapter.Options{}, true)
		eventually(t, 5*time.Second, "everyone disconnected", func() bool {
			n := 0
			for _, nd := range nodes {
				n += len(nd.ns.closed())
			}
			return n == 4
		})
		eventually(t, 5*time.Second, "no socket left", func() bool { return len(fetchIDs(t, nodes[1], adapter.Options{})) == 0 })
	})
}

func TestFetchSockets(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		nodes := start(t, 3, fastConfig())
		six(nodes)
		for _, n := range nodes {
			if got := fetchIDs(t, n, adapter.Options{}); !slices.Equal(got, all6) {
				t.Errorf("%s fetched %v", n.name, got)
			}
		}
		if got := fetchIDs(t, nodes[0], opts([]string{"r2"})); !slices.Equal(got, []string{"d", "e"}) {
			t.Errorf("In(r2): %v", got)
		}
		if got := fetchIDs(t, nodes[0], opts(nil, "r1")); !slices.Equal(got, []string{"b", "d", "e", "f"}) {
			t.Errorf("Except(r1): %v", got)
		}
		local := adapter.Options{Flags: adapter.Flags{Local: true}}
		if got := fetchIDs(t, nodes[1], local); !slices.Equal(got, []string{"c", "d"}) {
			t.Errorf("Local: %v", got)
		}
		// Local sockets first, then the others'.
		infos, err := nodes[1].a.FetchSockets(context.Background(), adapter.Options{})
		if err != nil || len(infos) != 6 || !slices.Equal(infoIDs(infos[:2]), []string{"c", "d"}) {
			t.Errorf("order: %v %v", infos, err)
		}
		// A remote socket's details: d lives on n1, fetched from n0.
		infos, err = nodes[0].a.FetchSockets(context.Background(), opts([]string{"d"}))
		if err != nil || len(infos) != 1 {
			t.Fatalf("fetch d: %v %v", infos, err)
		}
		d := infos[0]
		if !slices.Equal(d.Rooms, []string{"d", "r2"}) || fmt.Sprint(d.Data) != fmt.Sprint(map[string]any{"id": "d", "node": "n1"}) ||
			d.Handshake.Headers["host"] != "n1" || d.Handshake.Address != "127.0.0.1" {
			t.Errorf("d: %+v", d)
		}
	})
}

// A FetchSockets waiting for a hung node (still counted, silent) ends at
// its timeout with what arrived and an error wrapping ErrTimeout; a ctx
// that ends first ends it too.
func TestFetchSocketsTimeout(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.HeartbeatTimeout = 10 * time.Second // not declared dead during the test
	nodes := hubCluster(t, 3, cfg)
	six(nodes)
	nodes[2].hub.Suspend()
	ms := int64(300)
	start := time.Now()
	infos, err := nodes[0].a.FetchSockets(context.Background(), adapter.Options{Flags: adapter.Flags{TimeoutMs: &ms}})
	took := time.Since(start)
	var te *adapter.TimeoutError
	if !errors.Is(err, adapter.ErrTimeout) || !errors.As(err, &te) || te.Received != 1 || te.Expected != 2 {
		t.Errorf("err %v", err)
	}
	if got := infoIDs(infos); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("fetched %v", got)
	}
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v, want about 300ms", took)
	}
	if v := nodes[0].metric("sockstream_adapter_requests_total", map[string]string{"kind": "fetch_sockets", "outcome": "timeout"}); v != 1 {
		t.Errorf("timeout counter %v", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	infos, err = nodes[0].a.FetchSockets(ctx, adapter.Options{})
	if !errors.Is(err, adapter.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || len(infos) != 4 {
		t.Errorf("ctx: %v %v", infoIDs(infos), err)
	}
}

func TestServerSideEmit(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		cfg := fastConfig()
		cfg.RequestTimeout = 700 * time.Millisecond
		nodes := start(t, 3, cfg)
		for _, n := range nodes {
			n.ns.mu.Lock()
			n.ns.onSSE = func(args []any, ack func([]any)) {
				switch args[0] {
				case "ping":
					ack([]any{"pong-" + n.name, "ignored second arg"})
					ack([]any{"second answer ignored"})
				case "bin":
					ack([]any{args[1]})
				case "partial":
					if n.name != "n2" {
						ack([]any{n.name})
					}
				}
			}
			n.ns.mu.Unlock()
		}

		t.Run("no-ack", func(t *testing.T) {
			if err := nodes[0].a.ServerSideEmit([]any{"hello", "world", 1.0}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "hello on n1, n2", func() bool {
				return len(nodes[1].ns.sseCalls()) == 1 && len(nodes[2].ns.sseCalls()) == 1
			})
			for _, n := range nodes[1:] {
				c := n.ns.sseCalls()[0]
				if fmt.Sprint(c.args) != fmt.Sprint([]any{"hello", "world", 1.0}) || c.withAck {
					t.Errorf("%s got %+v", n.name, c)
				}
			}
			if len(nodes[0].ns.sseCalls()) != 0 {
				t.Error("the sender got its own event")
			}
			if err := nodes[0].a.ServerSideEmit(nil); err == nil {
				t.Error("no event name accepted")
			}
			if err := nodes[0].a.ServerSideEmit([]any{1}); err == nil {
				t.Error("a non-string event name accepted")
			}
		})

		t.Run("ack", func(t *testing.T) {
			res, err := nodes[1].a.ServerSideEmitWithAck(context.Background(), []any{"ping"})
			var got []string
			for _, a := range res {
				got = append(got, fmt.Sprint(a))
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, []string{"pong-n0", "pong-n2"}) {
				t.Errorf("responses %v err %v", res, err)
			}
		})

		t.Run("binary", func(t *testing.T) {
			res, err := nodes[2].a.ServerSideEmitWithAck(context.Background(), []any{"bin", []byte{9, 8, 7}})
			if err != nil || len(res) != 2 {
				t.Fatalf("responses %v err %v", res, err)
			}
			for _, a := range res {
				if b, ok := a.([]byte); !ok || string(b) != "\x09\x08\x07" {
					t.Errorf("response %#v", a)
				}
			}
		})

		t.Run("timeout", func(t *testing.T) {
			start := time.Now()
			res, err := nodes[0].a.ServerSideEmitWithAck(context.Background(), []any{"partial"})
			var te *adapter.TimeoutError
			if !errors.Is(err, adapter.ErrTimeout) || !errors.As(err, &te) || te.Received != 1 || te.Expected != 2 {
				t.Errorf("err %v", err)
			}
			if fmt.Sprint(res) != "[n1]" {
				t.Errorf("responses %v", res)
			}
			if d := time.Since(start); d < 600*time.Millisecond {
				t.Errorf("timed out after %v, before RequestTimeout", d)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			res, err = nodes[0].a.ServerSideEmitWithAck(ctx, []any{"partial"})
			if !errors.Is(err, context.Canceled) || !errors.Is(err, adapter.ErrTimeout) || len(res) > 1 {
				t.Errorf("cancelled: %v %v", res, err)
			}
		})
	})
}

// ackLog collects what BroadcastWithAck reports.
type ackLog struct {
	mu     sync.Mutex
	counts []int
	acks   [][]any
}

func (l *ackLog) clientCount(n int) {
	l.mu.Lock()
	l.counts = append(l.counts, n)
	l.mu.Unlock()
}

func (l *ackLog) ack(args []any) {
	l.mu.Lock()
	l.acks = append(l.acks, args)
	l.mu.Unlock()
}

func (l *ackLog) snapshot() ([]int, [][]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.counts), slices.Clone(l.acks)
}

// done reports whether every server counted and every counted client
// answered: the caller's completion rule.
func (l *ackLog) done(servers int) bool {
	counts, acks := l.snapshot()
	total := 0
	for _, c := range counts {
		total += c
	}
	return len(counts) == servers && len(acks) == total
}

func TestBroadcastWithAck(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		nodes := start(t, 3, fastConfig())
		six(nodes)
		// Each socket answers with its id and an extra argument; "mute"
		// answers with no argument at all.
		for _, n := range nodes {
			n.ns.mu.Lock()
			for id, s := range n.ns.socks {
				s.ack = []any{id, "extra"}
			}
			n.ns.mu.Unlock()
		}
		nodes[1].ns.connectWith("mute", &tsock{ack: []any{}}, "quiet")
		nodes[0].ns.connectWith("mute0", &tsock{ack: []any{}}, "quiet")

		id := uint64(42)
		p := ev("question", 42.0)
		p.ID = &id
		var l ackLog
		if err := nodes[0].a.BroadcastWithAck(p, adapter.Options{}, l.clientCount, l.ack); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "every count and ack", func() bool { return l.done(nodes[0].a.ServerCount()) })
		counts, acks := l.snapshot()
		slices.Sort(counts)
		if !slices.Equal(counts, []int{2, 3, 3}) {
			t.Errorf("client counts %v", counts)
		}
		var local, remote []string
		for _, a := range acks {
			switch {
			case len(a) == 2 && a[1] == "extra":
				local = append(local, fmt.Sprint(a[0]))
			case len(a) == 0:
				local = append(local, "<none>")
			case len(a) == 1:
				remote = append(remote, fmt.Sprint(a[0]))
			default:
				t.Errorf("ack args %v", a)
			}
		}
		slices.Sort(local)
		slices.Sort(remote)
		if !slices.Equal(local, []string{"<none>", "a", "b"}) {
			t.Errorf("local acks %v: want each client's full argument list", local)
		}
		if !slices.Equal(remote, []string{"<nil>", "c", "d", "e", "f"}) {
			t.Errorf("remote acks %v: want [first argument] per client", remote)
		}
		for _, d := range all(nodes, isEvent("question")) {
			if !d.WithAck || d.PacketID == nil {
				t.Errorf("%s: %+v", d.Socket, d)
			}
			if local := d.Socket == "a" || d.Socket == "b" || d.Socket == "mute0"; local != d.InID || local && *d.PacketID != 42 {
				t.Errorf("%s: ack id %v (came with one: %v); the caller's id is this node's only", d.Socket, *d.PacketID, d.InID)
			}
			if len(d.Data) != 2 {
				t.Errorf("%s: %v", d.Socket, d.Data)
			}
		}

		// To a room, from another node; a timeout in the flags.
		var l2 ackLog
		ms := int64(2000)
		_ = nodes[2].a.BroadcastWithAck(ev("q2"), adapter.Options{Rooms: []string{"r1"}, Flags: adapter.Flags{TimeoutMs: &ms}}, l2.clientCount, l2.ack)
		eventually(t, 5*time.Second, "q2 acks", func() bool { return l2.done(3) })
		if _, acks := l2.snapshot(); len(acks) != 2 {
			t.Errorf("q2 acks %v", acks)
		}
		for _, d := range all(nodes, isEvent("q2")) {
			if d.Flags.TimeoutMs == nil || *d.Flags.TimeoutMs != 2000 {
				t.Errorf("%s: flags %+v", d.Socket, d.Flags)
			}
		}
	})
}

// A broadcast with acks waiting for a node that hangs gets a count of 0 for
// it as soon as it is declared dead, and does not wait for it afterwards.
func TestBroadcastAckPeerDiesWhilePending(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 3, fastConfig())
	nodes[0].ns.connect("a")
	nodes[1].ns.connect("b")
	nodes[2].ns.connect("h")
	nodes[2].hub.Suspend()
	var l ackLog
	ms := int64(5000)
	start := time.Now()
	_ = nodes[0].a.BroadcastWithAck(ev("q"), adapter.Options{Flags: adapter.Flags{TimeoutMs: &ms}}, l.clientCount, l.ack)
	eventually(t, 3*time.Second, "three counts", func() bool { return l.done(3) })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	counts, acks := l.snapshot()
	slices.Sort(counts)
	if !slices.Equal(counts, []int{0, 1, 1}) || len(acks) != 2 {
		t.Errorf("counts %v acks %v", counts, acks)
	}
	if n := nodes[0].a.ServerCount(); n != 2 {
		t.Errorf("ServerCount %d with the hung node declared dead", n)
	}
}

func TestServerCountAndGracefulClose(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		cfg := fastConfig()
		cfg.HeartbeatTimeout = 5 * time.Second // a drop here must come from ADAPTER_CLOSE
		nodes := start(t, 3, cfg)
		for _, n := range nodes {
			if got := n.a.ServerCount(); got != 3 {
				t.Errorf("%s: ServerCount %d", n.name, got)
			}
		}
		nodes[1].ns.connect("x")
		nodes[2].close()
		eventually(t, 3*time.Second, "n2 dropped via ADAPTER_CLOSE", func() bool { return nodes[0].a.AlivePeers() == 1 })
		if v := nodes[0].metric("sockstream_adapter_peers_declared_dead_total", map[string]string{"reason": "close"}); v != 1 {
			t.Errorf("dead(close) counter %v", v)
		}
		eventually(t, 3*time.Second, "ServerCount 2", func() bool { return nodes[0].a.ServerCount() == 2 })
		began := time.Now()
		if got := fetchIDs(t, nodes[0], adapter.Options{}); !slices.Equal(got, []string{"x"}) || time.Since(began) > time.Second {
			t.Errorf("fetch after close: %v in %v", got, time.Since(began))
		}
	})
}

// A hung node (still counted by the transport, silent) is declared dead
// after HeartbeatTimeout: requests waiting for it complete then, later
// ones do not wait for it, and it comes back with its heartbeats.
func TestHungNodeDropped(t *testing.T) {
	t.Parallel()
	cfg := fastConfig() // heartbeat 100ms, timeout 300ms
	cfg.RequestTimeout = 5 * time.Second
	nodes := hubCluster(t, 3, cfg)
	nodes[0].ns.connect("a")
	nodes[1].ns.connect("b")
	nodes[2].ns.connect("h")
	for _, n := range nodes[1:] {
		n.ns.mu.Lock()
		n.ns.onSSE = func(args []any, ack func([]any)) { ack([]any{n.name}) }
		n.ns.mu.Unlock()
	}
	nodes[2].hub.Suspend()

	type sseRes struct {
		res []any
		err error
		at  time.Duration
	}
	start := time.Now()
	ch := make(chan sseRes, 1)
	go func() {
		res, err := nodes[0].a.ServerSideEmitWithAck(context.Background(), []any{"who"})
		ch <- sseRes{res, err, time.Since(start)}
	}()
	got := fetchIDs(t, nodes[0], adapter.Options{})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("fetch took %v: waited for the hung node beyond its heartbeat timeout", took)
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("fetched %v", got)
	}
	r := <-ch
	if r.err != nil || fmt.Sprint(r.res) != "[n1]" || r.at > 2*time.Second {
		t.Errorf("serverSideEmit: %v %v after %v", r.res, r.err, r.at)
	}
	if v := nodes[0].metric("sockstream_adapter_peers_declared_dead_total", map[string]string{"reason": "timeout"}); v != 1 {
		t.Errorf("dead(timeout) counter %v", v)
	}
	if v := nodes[0].metric("sockstream_adapter_peers_alive", nil); v != 1 {
		t.Errorf("alive gauge %v", v)
	}
	if got := nodes[0].a.ServerCount(); got != 2 {
		t.Errorf("ServerCount with a dead node still counted by the transport: %d", got)
	}
	start = time.Now()
	if _, err := nodes[0].a.FetchSockets(context.Background(), adapter.Options{}); err != nil || time.Since(start) > 500*time.Millisecond {
		t.Errorf("fetch after the drop: %v in %v", err, time.Since(start))
	}
	nodes[2].hub.Resume()
	eventually(t, 3*time.Second, "n2 alive again", func() bool { return nodes[0].a.AlivePeers() == 2 })
	if got := nodes[0].a.ServerCount(); got != 3 {
		t.Errorf("ServerCount after resume %d", got)
	}
}

// Malformed messages from peers are counted and skipped.
func TestMalformedMessages(t *testing.T) {
	t.Parallel()
	hub := newHubForInject(t)
	nodes := hub.nodes
	nodes[0].ns.connect("a")
	for _, msg := range []*adapter.Message{
		{UID: "peer", Nsp: "/", Type: adapter.Broadcast, Data: "not a broadcast"},
		{UID: "peer", Nsp: "/", Type: adapter.ServerSideEmit, Data: &adapter.ServerSideEmitData{Packet: []any{1}}},
		{UID: "peer", Nsp: "/", Type: adapter.MessageType(99)},
		{UID: "", Nsp: "/", Type: adapter.Heartbeat},
		{UID: "peer", Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{Packet: adapter.Packet{Type: 2, Data: []any{"ok"}}}},
	} {
		hub.hub.Inject(msg)
	}
	waitDeliveries(t, nodes, "ok", 1, isEvent("ok"))
	eventually(t, 2*time.Second, "malformed counted", func() bool {
		return nodes[0].metric("sockstream_adapter_malformed_messages_total", nil) == 4
	})
}
