package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sockstream/sockstream/adapter"
)

// The internal tests cannot use internal/siotest, whose servers import
// this package: its Logger and Eventually have their copies here.

// tLogger is a logger for node name writing to t.Log until the test ends:
// a transport may still log while it closes, after t.Log would panic.
func tLogger(t testing.TB, name string) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// fastOpts are Options with short timings for tests, on redis URL url.
func fastOpts(url string) Options {
	return Options{
		URL:            url,
		BlockTime:      500 * time.Millisecond,
		RequestTimeout: time.Second,
	}
}

// startTransport creates a transport that t.Cleanup closes.
func startTransport(t testing.TB, name string, o Options) *Transport {
	t.Helper()
	if o.Logger == nil {
		o.Logger = tLogger(t, name)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitReady(t testing.TB, trs ...*Transport) {
	t.Helper()
	waitFor(t, 10*time.Second, "transport ready", func() bool {
		for _, tr := range trs {
			if !tr.Ready() {
				return false
			}
		}
		return true
	})
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// sink collects what a subscription receives.
type sink struct {
	mu   sync.Mutex
	msgs []*adapter.Message
	ch   chan struct{}
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 1)} }

func (s *sink) handle(m *adapter.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *sink) all() []*adapter.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*adapter.Message(nil), s.msgs...)
}

// events returns the event names of the broadcasts received.
func (s *sink) events() []string {
	var out []string
	for _, m := range s.all() {
		if d, ok := m.Data.(*adapter.BroadcastData); ok && len(d.Packet.Data) > 0 {
			out = append(out, fmt.Sprint(d.Packet.Data[0]))
		}
	}
	return out
}

func (s *sink) waitEvents(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := s.events()
		if len(ev) >= n {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %d/%d broadcasts received", timeout, len(ev), n)
		}
		select {
		case <-s.ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func subscribe(t testing.TB, tr *Transport, nsp, uid string) *sink {
	t.Helper()
	s := newSink()
	unsub, err := tr.Subscribe(context.Background(), nsp, uid, s.handle)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(unsub)
	return s
}

func broadcast(uid, nsp, event string) *adapter.Message {
	return &adapter.Message{UID: uid, Nsp: nsp, Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{event}},
		Opts:   adapter.Options{Rooms: []string{}, Except: []string{}},
	}}
}

func seqNames(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// checkSequence fails unless got is exactly want.
func checkSequence(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("received %d messages, want %d", len(got), len(want))
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("%s received %d times", w, seen[w])
		}
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("out of order at %d: got %s, want %s", i, got[i], want[i])
			break
		}
	}
}

// clusterGoroutines counts the goroutines running code of this package.
func clusterGoroutines() (int, string) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var sample strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sockstream/cluster.(") || strings.Contains(g, "sockstream/cluster.New") {
			if strings.Contains(g, "clusterGoroutines") {
				continue
			}
			n++
			if sample.Len() < 4000 {
				sample.WriteString(g + "\n\n")
			}
		}
	}
	return n, sample.String()
}
