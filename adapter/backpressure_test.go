package adapter_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// gatedNS is a testNS whose Deliver waits for the gate: a node whose
// sockets cannot keep up.
type gatedNS struct {
	*testNS
	gate chan struct{}
}

func (g *gatedNS) Deliver(p *adapter.Packet, ids []string, flags adapter.Flags) {
	<-g.gate
	g.testNS.Deliver(p, ids, flags)
}

// bpSetup is a fast node (publishing) and a slow one (gated), each over
// its own cluster transport on one redis-server.
type bpSetup struct {
	fast     *node
	slow     *adapter.NamespaceAdapter
	slowNS   *gatedNS
	slowTr   *cluster.Transport
	slowReg  *prometheus.Registry // the slow node's transport metrics
	slowAReg *prometheus.Registry // the slow node's adapter metrics
}

const bpBound = 16

func startBackpressure(t *testing.T, maxLen int64, bound int) *bpSetup {
	t.Helper()
	srv := redistest.StartStandalone(t)
	cfg := fastConfig()
	cfg.InboundQueueSize = bound
	newTr := func(name string, reg *prometheus.Registry) *cluster.Transport {
		tr, err := cluster.New(cluster.Options{
			URL:            srv.URL(),
			BlockTime:      200 * time.Millisecond,
			RequestTimeout: 2 * time.Second,
			MaxLen:         maxLen,
			Logger:         testLogger(t, name),
			Registerer:     reg,
		})
		if err != nil {
			t.Fatalf("cluster.New: %v", err)
		}
		return tr
	}
	s := &bpSetup{slowReg: prometheus.NewRegistry(), slowAReg: prometheus.NewRegistry()}
	s.fast = startNode(t, "fast", newTr("fast", prometheus.NewRegistry()), cfg)

	s.slowTr = newTr("slow", s.slowReg)
	t.Cleanup(func() { _ = s.slowTr.Close() })
	scfg := cfg
	scfg.Registerer = s.slowAReg
	scfg.Logger = testLogger(t, "slow")
	b, err := adapter.New(s.slowTr, scfg)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	s.slowNS = &gatedNS{testNS: newTestNS("/", "slow"), gate: make(chan struct{})}
	s.slow = b.New(s.slowNS)
	s.slowNS.a.Store(s.slow)
	t.Cleanup(func() { _ = s.slow.Close() })
	t.Cleanup(s.open) // before the adapter's Close: its worker may wait in Deliver

	eventually(t, 10*time.Second, "nodes see each other", func() bool {
		return s.fast.a.AlivePeers() == 1 && s.slow.AlivePeers() == 1
	})
	s.slowNS.connect("s1")
	return s
}

func (s *bpSetup) open() {
	select {
	case <-s.slowNS.gate:
	default:
		close(s.slowNS.gate)
	}
}

// gather sums the series of metric name in reg.
func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

// publish broadcasts b0..b(n-1) from the fast node to every socket.
func (s *bpSetup) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if err := s.fast.a.Broadcast(ev(fmt.Sprintf("b%d", i)), adapter.Options{}); err != nil {
			t.Fatalf("Broadcast %d: %v", i, err)
		}
	}
}

// received returns the events the slow node's sockets got, in order.
func (s *bpSetup) received() []string {
	var out []string
	for _, d := range s.slowNS.deliveries(func(delivery) bool { return true }) {
		out = append(out, d.event())
	}
	return out
}

func heapMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// bpTotal is the number of broadcasts: more than the slow node can hold
// (the transport's stream lane, 4,096 messages, one XREAD, the adapter's
// bound), so that the rest has to wait in Redis. BACKPRESSURE_TOTAL
// overrides it (to measure the heap).
func bpTotal(t *testing.T) int {
	if v := os.Getenv("BACKPRESSURE_TOTAL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("BACKPRESSURE_TOTAL: %v", err)
		}
		return n
	}
	return 6000
}

// TestBackpressureSlowNode: a node whose sockets are blocked keeps at most
// InboundQueueSize messages in its adapter, the transport stops reading,
// the backlog waits in Redis (the lag gauge shows it), pub/sub keeps
// flowing (the peers stay alive), and once unblocked the node gets every
// broadcast, in order.
func TestBackpressureSlowNode(t *testing.T) {
	bound := bpBound
	if os.Getenv("BACKPRESSURE_UNBOUNDED") != "" {
		bound = 1 << 30
	}
	total := bpTotal(t)
	s := startBackpressure(t, int64(max(2*total, 10000)), bound)
	before := heapMB()
	s.publish(t, total)

	maxHeld := 0
	eventually(t, 60*time.Second, "the slow node's lag to show the backlog", func() bool {
		held := adapter.InboundHeld(s.slow)
		maxHeld = max(maxHeld, held)
		if bound != bpBound {
			return held == total // unbounded (measurement only): all in memory
		}
		return gather(t, s.slowReg, "sockstream_cluster_stream_lag_entries") > 0 && held == bound
	})
	lag := gather(t, s.slowReg, "sockstream_cluster_stream_lag_entries")
	held := adapter.InboundHeld(s.slow)
	handlerQ := gather(t, s.slowReg, "sockstream_cluster_handler_queue_messages")
	t.Logf("blocked: adapter holds %d (max seen %d), transport queue %v, lag %v entries in Redis; heap %.1f MB -> %.1f MB",
		held, maxHeld, handlerQ, lag, before, heapMB())
	if bound == bpBound {
		if maxHeld > bound {
			t.Errorf("the adapter held %d messages, bound %d", maxHeld, bound)
		}
		if handlerQ > 4096+100 {
			t.Errorf("transport handler queue %v, want at most highWater+ReadCount", handlerQ)
		}
	}
	// Pub/sub is not held behind the stream: the heartbeats still flow
	// (the lag probe takes a second, three heartbeat timeouts).
	if s.fast.a.AlivePeers() != 1 || s.slow.AlivePeers() != 1 {
		t.Errorf("peers alive: fast sees %d, slow sees %d, want 1 and 1", s.fast.a.AlivePeers(), s.slow.AlivePeers())
	}

	s.open()
	eventually(t, 60*time.Second, "every broadcast delivered", func() bool { return len(s.received()) >= total })
	checkOrder(t, s.received(), total)
	eventually(t, 10*time.Second, "the lag back to 0", func() bool {
		return gather(t, s.slowReg, "sockstream_cluster_stream_lag_entries") == 0
	})
	if lost := gather(t, s.slowReg, "sockstream_cluster_stream_entries_trimmed_unread_total"); lost != 0 {
		t.Errorf("trimmed unread = %v, want 0", lost)
	}
	eventually(t, 10*time.Second, "the adapter's queue empty", func() bool { return adapter.InboundHeld(s.slow) == 0 })
	if dropped := gather(t, s.slowAReg, "sockstream_adapter_inbound_dropped_total"); dropped != 0 {
		t.Errorf("inbound dropped = %v, want 0", dropped)
	}
}

func checkOrder(t *testing.T, got []string, total int) {
	t.Helper()
	if len(got) != total {
		t.Fatalf("got %d deliveries, want %d", len(got), total)
	}
	for i, e := range got {
		if want := fmt.Sprintf("b%d", i); e != want {
			t.Fatalf("delivery %d is %s, want %s", i, e, want)
		}
	}
}

// TestBackpressureTrimmedCounted: with a tiny MAXLEN the stream is
// trimmed past the held-back reader: the slow node gets, in order, what
// was left, and the trimmed-unread counter counts exactly the rest.
func TestBackpressureTrimmedCounted(t *testing.T) {
	s := startBackpressure(t, 50, bpBound)
	total := bpTotal(t)
	s.publish(t, total)
	eventually(t, 30*time.Second, "the slow node held back", func() bool {
		return adapter.InboundHeld(s.slow) == bpBound &&
			gather(t, s.slowReg, "sockstream_cluster_stream_lag_entries") > 0
	})
	s.open()
	lostCount := func() int {
		return int(gather(t, s.slowReg, "sockstream_cluster_stream_entries_trimmed_unread_total"))
	}
	eventually(t, 60*time.Second, "every broadcast delivered or counted as lost", func() bool {
		return len(s.received())+lostCount() >= total
	})
	got, lost := s.received(), lostCount()
	t.Logf("delivered %d, trimmed unread %d, of %d", len(got), lost, total)
	if lost == 0 || len(got)+lost != total {
		t.Fatalf("delivered %d + lost %d, want a loss and a sum of %d", len(got), lost, total)
	}
	// What was delivered is in order, without duplicates.
	prev := -1
	for _, e := range got {
		n, err := strconv.Atoi(strings.TrimPrefix(e, "b"))
		if err != nil || n <= prev {
			t.Fatalf("delivery %s after b%d", e, prev)
		}
		prev = n
	}
	if prev != total-1 {
		t.Errorf("last delivery b%d, want b%d", prev, total-1)
	}
}

// TestBackpressureCloseWhileBlocked: closing the slow node's adapter while
// the transport's handler waits for room ends that wait (the transport
// drains its queue at once) and, once the Namespace's call in progress
// returns, Close returns, leaving no goroutine of the adapter or the
// transport behind.
func TestBackpressureCloseWhileBlocked(t *testing.T) {
	s := startBackpressure(t, 0, bpBound)
	s.publish(t, bpTotal(t))
	eventually(t, 30*time.Second, "the slow node held back", func() bool {
		return adapter.InboundHeld(s.slow) == bpBound &&
			gather(t, s.slowReg, "sockstream_cluster_handler_queue_messages") > 0
	})
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = s.slow.Close()
	}()
	// Unsubscribed and unblocked: the transport skips what is queued.
	eventually(t, 30*time.Second, "the transport's queue drained", func() bool {
		return gather(t, s.slowReg, "sockstream_cluster_handler_queue_messages") == 0
	})
	s.open() // the Deliver in progress returns
	eventually(t, 30*time.Second, "Close returned", func() bool {
		select {
		case <-closed:
			return true
		default:
			return false
		}
	})
	if err := s.slowTr.Close(); err != nil {
		t.Errorf("transport Close: %v", err)
	}
	s.fast.close()
	eventually(t, 10*time.Second, "no adapter or transport goroutine left", func() bool {
		return leftover() == ""
	})
}

// leftover returns the stacks of goroutines running code of the adapter or
// cluster packages (tests excluded).
func leftover() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sockstream/sockstream/adapter.") || strings.Contains(g, "sockstream/sockstream/cluster.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestBackpressureRequestsDropped: requests that come over pub/sub never
// wait for the held-back node's queue: they get as much room again, and
// past that they are dropped, counted (the requester times out without
// this node's answer).
func TestBackpressureRequestsDropped(t *testing.T) {
	s := startBackpressure(t, 0, bpBound)
	s.publish(t, 100)
	eventually(t, 30*time.Second, "the slow node held back", func() bool { return adapter.InboundHeld(s.slow) == bpBound })
	const requests = bpBound + 4
	var wg sync.WaitGroup
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _ = s.fast.a.FetchSockets(ctx, adapter.Options{})
		}()
	}
	eventually(t, 30*time.Second, "the requests beyond the room dropped", func() bool {
		return gather(t, s.slowAReg, "sockstream_adapter_inbound_dropped_total") == requests-bpBound
	})
	if held := adapter.InboundHeld(s.slow); held != 2*bpBound {
		t.Errorf("the adapter holds %d messages, want %d", held, 2*bpBound)
	}
	wg.Wait()
	s.open()
	eventually(t, 30*time.Second, "every broadcast delivered", func() bool { return len(s.received()) >= 100 })
	checkOrder(t, s.received(), 100)
}
