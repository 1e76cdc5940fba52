package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/recovery"
)

// proxiedCluster starts count nodes over the Redis Streams transport, each
// reaching a redis-server of their own through one fault proxy, with a
// publish buffer of bufferSize messages.
func proxiedCluster(t *testing.T, count, bufferSize int) ([]*node, *redistest.Proxy) {
	t.Helper()
	srv := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, srv.Addr())
	nodes := make([]*node, count)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i)
		tr, err := cluster.New(cluster.Options{
			URL:               "redis://" + p.Addr(),
			BlockTime:         200 * time.Millisecond,
			RequestTimeout:    2 * time.Second,
			PublishBufferSize: bufferSize,
			Logger:            testLogger(t, name),
			Registerer:        prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatalf("cluster.New: %v", err)
		}
		nodes[i] = startNode(t, name, tr, fastConfig())
	}
	waitPeers(t, nodes)
	return nodes, p
}

// cut cuts every node off Redis and waits until their transports know it.
func cut(t *testing.T, p *redistest.Proxy, nodes []*node) {
	t.Helper()
	p.Cut()
	eventually(t, 15*time.Second, "transports not ready", func() bool {
		for _, n := range nodes {
			if n.tr.Ready() {
				return false
			}
		}
		return true
	})
}

// With Redis away and the publish buffer full, Broadcast says so: every
// broadcast that returned nil reaches the other node once Redis is back,
// every one that returned an error (wrapping ErrBufferFull) is counted and
// never reaches it. No false success. The local socket gets them all, as
// in Node.
func TestBroadcastBufferFullNoFalseSuccess(t *testing.T) {
	t.Parallel()
	const buffer, total = 20, 60
	nodes, p := proxiedCluster(t, 2, buffer)
	nodes[0].ns.connect("a")
	nodes[1].ns.connect("b")
	sentinel(t, nodes, nodes[0], "before", 2)

	cut(t, p, nodes)
	var accepted, refused []int
	for i := range total {
		err := nodes[0].a.Broadcast(ev("m", float64(i)), adapter.Options{})
		switch {
		case err == nil:
			accepted = append(accepted, i)
		case errors.Is(err, adapter.ErrBufferFull):
			refused = append(refused, i)
		default:
			t.Fatalf("broadcast %d: %v, want nil or an error wrapping ErrBufferFull", i, err)
		}
	}
	if len(refused) == 0 || len(accepted) == 0 || len(accepted) > buffer {
		t.Fatalf("accepted %d, refused %d: want at most %d accepted, the rest refused", len(accepted), len(refused), buffer)
	}
	if got := nodes[0].metric("sockstream_adapter_publish_errors_total", map[string]string{"type": "BROADCAST"}); got != float64(len(refused)) {
		t.Errorf("publish errors counted %v, want %d", got, len(refused))
	}
	if got := len(nodes[0].ns.deliveries(isEventFor("a", "m"))); got != total {
		t.Errorf("local socket got %d broadcasts, want all %d", got, total)
	}

	p.Restore()
	// One node's broadcasts reach the others in order: once "after" is
	// there, every accepted one is too. It is refused until the buffer
	// has room again.
	eventually(t, 15*time.Second, "a broadcast accepted again", func() bool {
		err := nodes[0].a.Broadcast(ev("after"), adapter.Options{})
		if err != nil && !errors.Is(err, adapter.ErrBufferFull) {
			t.Fatalf("after: %v", err)
		}
		return err == nil
	})
	waitDeliveries(t, nodes[1:], "after", 1, isEventFor("b", "after"))
	var got []int
	for _, d := range nodes[1].ns.deliveries(isEventFor("b", "m")) {
		got = append(got, int(toFloat(d.Data[1])))
	}
	if !slices.Equal(got, accepted) {
		t.Errorf("the other node got %v, want exactly the accepted %v", got, accepted)
	}
}

// Every publishing operation reports a refusal: the room operations with
// ErrBufferFull, the ones that travel over pub/sub (not buffered) with
// ErrUnavailable, FetchSockets at once with this node's sockets; the
// Local ones never fail.
func TestPublishingOperationsReportRefusal(t *testing.T) {
	t.Parallel()
	nodes, p := proxiedCluster(t, 2, 1)
	n0 := nodes[0]
	n0.ns.connect("a", "r")
	nodes[1].ns.connect("b", "r")

	cut(t, p, nodes)
	// The one place of the buffer.
	if err := n0.a.Broadcast(ev("queued"), adapter.Options{}); err != nil {
		t.Fatalf("first broadcast with Redis away: %v, want nil (queued)", err)
	}
	for name, op := range map[string]func() error{
		"Broadcast":         func() error { return n0.a.Broadcast(ev("x"), adapter.Options{}) },
		"AddSockets":        func() error { return n0.a.AddSockets(opts([]string{"a"}), []string{"r2"}) },
		"DelSockets":        func() error { return n0.a.DelSockets(opts([]string{"a"}), []string{"r2"}) },
		"DisconnectSockets": func() error { return n0.a.DisconnectSockets(opts([]string{"nobody"}), false) },
	} {
		if err := op(); !errors.Is(err, adapter.ErrBufferFull) {
			t.Errorf("%s: %v, want an error wrapping ErrBufferFull", name, err)
		}
	}
	if err := n0.a.ServerSideEmit([]any{"sse"}); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("ServerSideEmit: %v, want an error wrapping ErrUnavailable", err)
	}
	var log ackLog
	if err := n0.a.BroadcastWithAck(ev("ack"), opts([]string{"r"}), log.clientCount, log.ack); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("BroadcastWithAck: %v, want an error wrapping ErrUnavailable", err)
	}
	if _, err := n0.a.ServerSideEmitWithAck(context.Background(), []any{"sse"}); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("ServerSideEmitWithAck: %v, want an error wrapping ErrUnavailable", err)
	}
	// Not a timeout: the request could not be sent, which is known at once.
	infos, err := n0.a.FetchSockets(context.Background(), opts([]string{"r"}))
	if !errors.Is(err, adapter.ErrUnavailable) || errors.Is(err, adapter.ErrTimeout) {
		t.Errorf("FetchSockets: %v, want an error wrapping ErrUnavailable", err)
	}
	if got := infoIDs(infos); !slices.Equal(got, []string{"a"}) {
		t.Errorf("FetchSockets returned %v, want this node's socket", got)
	}

	local := adapter.Options{Flags: adapter.Flags{Local: true}}
	if err := n0.a.Broadcast(ev("local"), local); err != nil {
		t.Errorf("local Broadcast: %v", err)
	}
	if err := n0.a.AddSockets(adapter.Options{Rooms: []string{"a"}, Flags: local.Flags}, []string{"l"}); err != nil {
		t.Errorf("local AddSockets: %v", err)
	}
	vol := adapter.Options{Flags: adapter.Flags{Volatile: true}}
	if err := n0.a.Broadcast(ev("vol"), vol); err != nil {
		t.Errorf("volatile Broadcast while not ready: %v, want nil (dropped, counted)", err)
	}
	waitDeliveries(t, nodes[:1], "local", 1, isEventFor("a", "local"))
	waitDeliveries(t, nodes[:1], "vol", 1, isEventFor("a", "vol"))
}

// A node alone over the in-memory transport never fails but after Close.
func TestLocalTransportNeverFails(t *testing.T) {
	t.Parallel()
	n := startNode(t, "solo", recovery.NewLocalTransport(nil), fastConfig())
	n.ns.connect("a", "r")
	ops := map[string]func() error{
		"Broadcast":         func() error { return n.a.Broadcast(ev("x"), adapter.Options{}) },
		"AddSockets":        func() error { return n.a.AddSockets(opts([]string{"a"}), []string{"r2"}) },
		"DelSockets":        func() error { return n.a.DelSockets(opts([]string{"a"}), []string{"r2"}) },
		"DisconnectSockets": func() error { return n.a.DisconnectSockets(opts([]string{"nobody"}), false) },
		"ServerSideEmit":    func() error { return n.a.ServerSideEmit([]any{"sse"}) },
		"BroadcastWithAck": func() error {
			return n.a.BroadcastWithAck(ev("ack"), opts([]string{"r"}), func(int) {}, func([]any) {})
		},
	}
	for name, op := range ops {
		if err := op(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	waitDeliveries(t, []*node{n}, "x", 1, isEventFor("a", "x"))
	_ = n.a.Close()
	for name, op := range ops {
		if err := op(); !errors.Is(err, adapter.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
