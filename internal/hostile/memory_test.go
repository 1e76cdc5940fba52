package hostile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

// The tests of this file measure the process's heap: they are not
// parallel, so nothing else of the package runs meanwhile.

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// heapReturns waits until the live heap is at most bound above base.
func heapReturns(t *testing.T, base, bound uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		h := liveHeap()
		if h <= base+bound {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("live heap %.1f MB, %.1f MB above the %.1f MB before the attack, %v after the offenders left (bound %.1f MB)",
				mb(h), mb(h-base), mb(base), waitFor, mb(bound))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mb(n uint64) float64 { return float64(n) / 1e6 }

// TestMemoryReturns attacks one server with a batch of every kind of
// offender that makes it hold memory (pending attachments, partial
// frames, queues of clients that do not read, sessions that never join),
// and checks that the heap comes back once they are gone.
func TestMemoryReturns(t *testing.T) {
	h := start(t, server.Config{
		MaxBufferedBytes: 1 << 20,
		ConnectTimeout:   time.Second,
	}, nil)
	g := h.good(t)
	g.alive(t)
	base := liveHeap()
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	var wss []*eiotest.WS
	var raws []*rawWS
	peak := base

	// Binary packets whose last attachment never comes: 9 attachments of
	// 100 KB held per connection (under MaxAttachmentBytes, 1 MB).
	att := strings.Repeat("a", 100_000)
	for i := range 8 {
		name := fmt.Sprintf("pending-%d", i)
		ws := h.joinWS(t, ctx, name, false)
		if err := ws.Send(`4510-["echo"` + strings.Repeat(","+ph("0"), 10) + `]`); err != nil {
			t.Fatal(err)
		}
		for range 9 {
			if err := ws.SendBinary([]byte(att)); err != nil {
				t.Fatal(err)
			}
		}
		wss = append(wss, ws)
	}
	// Frames announced at MaxPayload and cut half way.
	half := []byte(echoOfSize(1_000_000))[:500_000]
	for range 8 {
		w := h.dialRawWS(t)
		if err := w.header(true, 1, 1_000_000); err != nil {
			t.Fatal(err)
		}
		if _, err := w.conn.Write(half); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, w)
	}
	// Sessions that never join a namespace.
	for range 50 {
		wss = append(wss, h.dialWS(t, ctx))
	}
	// Polling clients in a flooded room that never GET: each is a slow
	// consumer at MaxBufferedBytes.
	for i := range 8 {
		h.joinPoll(t, ctx, fmt.Sprintf("poll-%d", i), true)
		h.joined(t, fmt.Sprintf("poll-%d", i))
	}
	payload := strings.Repeat("y", 16<<10)
	for i := 0; h.gauge(t, "sockstream_engine_slow_consumers_total") < 8; i++ {
		if i == 1000 {
			t.Fatalf("the polling clients are not slow consumers after %d broadcasts", i)
		}
		if err := h.srv.To("room").Emit("flood", i, payload); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(waitFor)
		for g.floods.Load() < int64(i-8) {
			if time.Now().After(deadline) {
				t.Fatalf("the good client got %d of %d broadcasts", g.floods.Load(), i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	peak = max(peak, liveHeap())
	g.alive(t)
	for i := range 8 {
		h.noReason(t, fmt.Sprintf("pending-%d", i))
	}

	for _, ws := range wss {
		_ = ws.Close()
	}
	for _, w := range raws {
		_ = w.conn.Close()
	}
	h.waitSessions(t, 1)
	g.alive(t)
	final := heapReturns(t, base, 4<<20)
	t.Logf("live heap: %.1f MB before, %.1f MB under attack, %.1f MB after", mb(base), mb(peak), mb(final))
}

var errFlooded = errors.New("flood done")

// TestMemoryHandlerQueue floods events at a socket whose handler is
// blocked (a slow database, an EmitWithAck the same client never
// answers): what the server holds for that socket must stay bounded,
// either because it stops reading the connection or because it closes it.
func TestMemoryHandlerQueue(t *testing.T) {
	gate := make(chan struct{})
	h := start(t, server.Config{}, func(h *harness) {
		h.srv.OnConnection(func(s *server.Socket) {
			s.On("slow", func(*server.Event) { <-gate })
		})
	})
	t.Cleanup(func() { close(gate) })
	g := h.good(t)
	ctx := ctxFor(t)
	base := liveHeap()
	bad := h.joinWS(t, ctx, "bad", false)
	const n, size = 4000, 4096
	payload := strings.Repeat("z", size)
	in0 := h.gauge(t, "sockstream_engine_packets_received_total")
	f := flood(t, func(i int) error {
		if i == n {
			return errFlooded
		}
		return bad.Send(`42["slow","` + payload + `"]`)
	})
	// Wait until the server has closed the offender, or read every event.
	// Its disconnect handlers run after the blocked one, so the closing is
	// read from the disconnection counter.
	reasons := h.reasonCh("bad")
	var reason string
	backlog := func() float64 { return h.labelled(t, "sockstream_disconnections_total", "reason", "event backlog") }
	deadline := time.Now().Add(waitFor)
	for backlog() == 0 && h.gauge(t, "sockstream_engine_packets_received_total")-in0 < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if backlog() > 0 {
		reason = "event backlog"
	}
	select {
	case r := <-reasons: // the handler never ran: nothing should be here
		t.Errorf("a disconnect handler ran ahead of the blocked handler: %q", r)
	default:
	}
	read := h.gauge(t, "sockstream_engine_packets_received_total") - in0
	growth := int64(liveHeap()) - int64(base)
	t.Logf("the server read %.0f of %d events of %d bytes; live heap grew by %.1f MB; offender reason %q", read, n, size, float64(growth)/1e6, reason)
	g.alive(t)
	_ = bad.Close()
	_, _ = f.stop()
	// The backlog is bounded by Config.MaxPendingEventBytes (4 MiB): the
	// offender is disconnected once it passes it.
	if reason != "event backlog" {
		t.Errorf("the offender's reason = %q, want event backlog", reason)
	}
	if growth > 16<<20 {
		t.Errorf("the live heap grew by %.1f MB: the handler backlog is not bounded", float64(growth)/1e6)
	}
}
