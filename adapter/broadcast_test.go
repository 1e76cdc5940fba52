package adapter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// Broadcasts across three nodes: selection by rooms, except and own id, the
// Local flag, binary arguments.
func TestBroadcastAcrossNodes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		nodes := start(t, 3, fastConfig())
		six(nodes)
		n0, n1, n2 := nodes[0], nodes[1], nodes[2]

		_ = n0.a.Broadcast(ev("hello", 1.0, "two", map[string]any{"three": []any{3.5, true, nil}}), adapter.Options{})
		_ = n1.a.Broadcast(ev("to-r1", "x"), opts([]string{"r1"}))
		_ = n1.a.Broadcast(ev("to-r1r2"), opts([]string{"r1", "r2"}))
		_ = n0.a.Broadcast(ev("not-r1"), opts(nil, "r1"))
		_ = n0.a.Broadcast(ev("r2-not-e"), opts([]string{"r2"}, "e"))
		_ = n2.a.Broadcast(ev("to-a"), opts([]string{"a"}))
		_ = n2.a.Broadcast(ev("from-e"), opts(nil, "e")) // socket.broadcast of e
		local := opts(nil)
		local.Flags.Local = true
		_ = n1.a.Broadcast(ev("local-only"), local)
		payload := []byte{0, 1, 2, 253, 254, 255}
		_ = n0.a.Broadcast(ev("bin", payload, map[string]any{"nested": bytes.NewBufferString("buf")}), adapter.Options{})
		for _, n := range nodes {
			sentinel(t, nodes, n, "s-"+n.name, 6)
		}

		for _, c := range []struct {
			event string
			want  []string
		}{
			{"hello", all6},
			{"to-r1", []string{"a", "c"}},
			{"to-r1r2", []string{"a", "c", "d", "e"}},
			{"not-r1", []string{"b", "d", "e", "f"}},
			{"r2-not-e", []string{"d"}},
			{"to-a", []string{"a"}},
			{"from-e", []string{"a", "b", "c", "d", "f"}},
			{"local-only", []string{"c", "d"}},
			{"bin", all6},
		} {
			if got := receivers(nodes, c.event); !slices.Equal(got, c.want) {
				t.Errorf("%s: receivers %v, want %v", c.event, got, c.want)
			}
		}
		for _, d := range all(nodes, isEvent("hello")) {
			want := []any{"hello", 1.0, "two", map[string]any{"three": []any{3.5, true, nil}}}
			if fmt.Sprint(d.Data) != fmt.Sprint(want) {
				t.Errorf("%s got %v", d.Socket, d.Data)
			}
		}
		for _, d := range all(nodes, isEvent("bin")) {
			if len(d.Data) != 3 {
				t.Fatalf("%s: bin %v", d.Socket, d.Data)
			}
			if b, ok := d.Data[1].([]byte); !ok || !bytes.Equal(b, payload) {
				t.Errorf("%s: binary %#v", d.Socket, d.Data[1])
			}
			m, _ := d.Data[2].(map[string]any)
			if b, ok := m["nested"].([]byte); !ok || string(b) != "buf" {
				t.Errorf("%s: nested %#v", d.Socket, d.Data[2])
			}
		}
		// No offsets without Config.Sessions.
		for _, d := range all(nodes, isEvent("to-r1")) {
			if len(d.Data) != 2 {
				t.Errorf("%s: %v, want no offset", d.Socket, d.Data)
			}
		}
	})
}

// The caller may reuse its packet and options once Broadcast returned.
func TestBroadcastCopiesArguments(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	nodes[0].ns.connect("a", "r")
	nodes[1].ns.connect("b", "r")
	buf := []byte("orig")
	m := map[string]any{"k": "v"}
	p := ev("copy", buf, m)
	o := opts([]string{"r"})
	_ = nodes[0].a.Broadcast(p, o)
	copy(buf, "XXXX")
	m["k"] = "changed"
	p.Data[0] = "other"
	o.Rooms[0] = "elsewhere"
	for _, d := range waitDeliveries(t, nodes, "copy", 2, isEvent("copy")) {
		if string(d.Data[1].([]byte)) != "orig" || d.Data[2].(map[string]any)["k"] != "v" {
			t.Errorf("%s got %v", d.Socket, d.Data)
		}
	}
}

// Per-namespace order: 1,000 broadcasts from one node reach every socket,
// on every node, in order; the same through a transport without batching.
func TestBroadcastOrder(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, nodes []*node) {
		nodes[0].ns.connect("p", "odd")
		nodes[1].ns.connect("q", "odd")
		nodes[1].ns.connect("r")
		const total = 1000
		for i := range total {
			o := adapter.Options{}
			if i%2 == 1 {
				o = opts([]string{"odd"})
			}
			if err := nodes[0].a.Broadcast(ev("seq", float64(i)), o); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"p", "q", "r"} {
			want := total
			if id == "r" {
				want = total / 2
			}
			evs := waitDeliveries(t, nodes, "seq for "+id, want, isEventFor(id, "seq"))
			prev := -1
			for _, d := range evs {
				v := int(toFloat(d.Data[1]))
				if v <= prev || (id == "r" && v%2 == 1) {
					t.Fatalf("socket %s: %d after %d", id, v, prev)
				}
				prev = v
			}
		}
	}
	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		run(t, hubCluster(t, 2, fastConfig()))
	})
	t.Run("no-batch", func(t *testing.T) {
		t.Parallel()
		run(t, hubCluster(t, 2, fastConfig(), withNoBatch()))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		run(t, redisCluster(t, 2, fastConfig()))
	})
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case uint8:
		return float64(x)
	case int16:
		return float64(x)
	case uint16:
		return float64(x)
	case int32:
		return float64(x)
	case uint32:
		return float64(x)
	}
	panic(fmt.Sprintf("not a number: %#v", v))
}

// A volatile broadcast is not published while the transport is not ready
// (counted), but still reaches the local sockets; a durable one is.
func TestVolatileNotReady(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	nodes[0].ns.connect("a")
	nodes[1].ns.connect("b")
	nodes[0].hub.SetReady(false)
	vol := adapter.Options{Flags: adapter.Flags{Volatile: true}}
	_ = nodes[0].a.Broadcast(ev("vol"), vol)
	_ = nodes[0].a.Broadcast(ev("durable"), adapter.Options{})
	waitDeliveries(t, nodes, "durable", 2, isEvent("durable"))
	if got := receivers(nodes, "vol"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("volatile receivers %v, want the local socket only", got)
	}
	if v := nodes[0].metric("sockstream_adapter_volatile_dropped_total", nil); v != 1 {
		t.Errorf("volatile dropped %v", v)
	}
	for _, d := range all(nodes, isEvent("vol")) {
		if !d.Flags.Volatile {
			t.Errorf("flags %+v", d.Flags)
		}
	}
	nodes[0].hub.SetReady(true)
	_ = nodes[0].a.Broadcast(ev("vol2"), vol)
	waitDeliveries(t, nodes, "vol2", 2, isEvent("vol2"))
}

var offsetRe = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

// With Config.Sessions, an event broadcast without ack and not volatile
// carries the stream offset as its last argument, on the publishing node
// and on the others, the same; volatile and ack broadcasts do not.
func TestOffsetAppendedWithSessions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, start backend) {
		nodes := start(t, 2, fastConfig(), withSessions(newFakeStore()))
		nodes[0].ns.connect("local")
		nodes[1].ns.connect("remote")

		_ = nodes[0].a.Broadcast(ev("durable", "x"), adapter.Options{})
		offsets := map[string]bool{}
		for _, d := range waitDeliveries(t, nodes, "durable", 2, isEvent("durable")) {
			if len(d.Data) != 3 || d.Data[1] != "x" {
				t.Fatalf("%s: %v", d.Socket, d.Data)
			}
			off, _ := d.Data[2].(string)
			if !offsetRe.MatchString(off) {
				t.Errorf("%s: last arg %q is not an offset", d.Socket, off)
			}
			offsets[off] = true
		}
		if len(offsets) != 1 {
			t.Errorf("publishing and receiving nodes disagree on the offset: %v", offsets)
		}

		_ = nodes[0].a.Broadcast(ev("vol", "y"), adapter.Options{Flags: adapter.Flags{Volatile: true}})
		for _, d := range waitDeliveries(t, nodes, "vol", 2, isEvent("vol")) {
			if len(d.Data) != 2 {
				t.Errorf("volatile: %s got %v, want no offset", d.Socket, d.Data)
			}
		}
		id := uint64(7)
		ms := int64(2000)
		p := ev("withack", "z")
		p.ID = &id
		counts := make(chan int, 2)
		_ = nodes[0].a.BroadcastWithAck(p, adapter.Options{Flags: adapter.Flags{TimeoutMs: &ms}}, func(n int) { counts <- n }, func([]any) {})
		for _, d := range waitDeliveries(t, nodes, "withack", 2, isEvent("withack")) {
			if len(d.Data) != 2 {
				t.Errorf("ack broadcast: %s got %v, want no offset", d.Socket, d.Data)
			}
		}
	})
}

// After Close, operations act on this node only and say so.
func TestOperationsAfterClose(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	nodes[0].ns.connect("a", "r")
	nodes[1].ns.connect("b", "r")
	a := nodes[0].a
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Broadcast(ev("late"), adapter.Options{}); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("Broadcast: %v", err)
	}
	local := adapter.Options{Flags: adapter.Flags{Local: true}}
	if err := a.Broadcast(ev("late-local"), local); err != nil {
		t.Errorf("local Broadcast: %v", err)
	}
	if got := receivers(nodes, "late"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("late receivers %v (applied at once, locally)", got)
	}
	if err := a.AddSockets(adapter.Options{}, []string{"x"}); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("AddSockets: %v", err)
	}
	if got := a.SocketRooms("a"); !slices.Contains(got, "x") {
		t.Errorf("rooms of a %v", got)
	}
	if err := a.ServerSideEmit([]any{"e"}); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("ServerSideEmit: %v", err)
	}
	if _, err := a.ServerSideEmitWithAck(context.Background(), []any{"e"}); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("ServerSideEmitWithAck: %v", err)
	}
	infos, err := a.FetchSockets(context.Background(), adapter.Options{})
	if !errors.Is(err, adapter.ErrClosed) || len(infos) != 1 || infos[0].ID != "a" {
		t.Errorf("FetchSockets: %v %v", infos, err)
	}
	if n := a.ServerCount(); n != 1 {
		t.Errorf("ServerCount %d", n)
	}
	// The other node saw ADAPTER_CLOSE.
	eventually(t, 2*time.Second, "peer closed", func() bool { return nodes[1].a.AlivePeers() == 0 })
	time.Sleep(50 * time.Millisecond)
	if got := receivers(nodes, "late"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("late receivers %v", got)
	}
}
