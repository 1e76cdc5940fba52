package adapter_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
)

// gateNS is a testNS whose first Deliver waits for its gate.
type gateNS struct {
	*testNS
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateNS) Deliver(p *adapter.Packet, ids []string, flags adapter.Flags) {
	g.once.Do(func() {
		close(g.entered)
		<-g.gate
	})
	g.testNS.Deliver(p, ids, flags)
}

// TestCloseAnswersQueuedOperations: Close while the outbound work is in
// the middle of a batch (its local delivery held), with more broadcasts
// queued behind it: every Broadcast call returns (published, or refused
// with an error), and every one is applied locally.
func TestCloseAnswersQueuedOperations(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		hub := adaptertest.NewHub()
		var tr adapter.Transport = hub.NewTransport()
		t.Cleanup(func() { _ = tr.Close() })
		if noBatch {
			tr = adaptertest.NoBatch(tr.(*adaptertest.Transport))
		}
		cfg := fastConfig()
		cfg.Logger = testLogger(t, "n")
		b, err := adapter.New(tr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		g := &gateNS{testNS: newTestNS("/", "n"), entered: make(chan struct{}), gate: make(chan struct{})}
		a := b.New(g)
		g.a.Store(a)
		g.connect("s1", "r")

		const n = 3
		errs := make(chan error, n)
		emit := func(i int) {
			errs <- a.Broadcast(&adapter.Packet{Type: 2, Data: []any{"e", float64(i)}}, adapter.Options{Rooms: []string{"r"}})
		}
		go emit(0)
		<-g.entered // the first broadcast's local delivery holds the outbound work
		for i := 1; i < n; i++ {
			go emit(i)
		}
		deadline := time.Now().Add(10 * time.Second)
		for adapter.OutQueued(a) < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("noBatch=%v: %d queued behind the held batch, want %d", noBatch, adapter.OutQueued(a), n-1)
			}
			time.Sleep(time.Millisecond)
		}
		closed := make(chan error, 1)
		go func() { closed <- a.Close() }()
		for !adapter.Closing(a) {
			if time.Now().After(deadline) {
				t.Fatalf("noBatch=%v: Close did not begin", noBatch)
			}
			time.Sleep(time.Millisecond)
		}
		close(g.gate)
		for i := 0; i < n; i++ {
			select {
			case err := <-errs:
				if err != nil && !errors.Is(err, adapter.ErrClosed) {
					t.Logf("noBatch=%v: Broadcast: %v", noBatch, err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("noBatch=%v: %d of %d Broadcast calls never returned", noBatch, n-i, n)
			}
		}
		if err := <-closed; err != nil {
			t.Errorf("noBatch=%v: Close: %v", noBatch, err)
		}
		if got := len(g.deliveries(isEvent("e"))); got != n {
			t.Errorf("noBatch=%v: %d broadcasts applied locally, want %d", noBatch, got, n)
		}
	}
}
