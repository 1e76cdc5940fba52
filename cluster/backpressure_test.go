package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

// TestStreamBackpressure: a handler that blocks on the messages read from
// the stream holds the stream lane back: it fills up to highWater, the
// reader stops (the backlog stays in Redis, the lag gauge shows it), while
// pub/sub messages are still handed over at once; released, the handler
// gets every stream message, in order.
func TestStreamBackpressure(t *testing.T) {
	srv := redistest.StartStandalone(t)
	pub := startTransport(t, "pub", fastOpts(srv.URL()))
	sub := startTransport(t, "sub", fastOpts(srv.URL()))
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the transports' Close

	s := newSink()
	ephemeral := make(chan *adapter.Message, 1)
	unsub, err := sub.Subscribe(context.Background(), "/", "sub-uid", func(m *adapter.Message) {
		if m.Ephemeral() {
			select {
			case ephemeral <- m:
			default:
			}
			return
		}
		<-gate
		s.handle(m)
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(unsub)
	waitReady(t, pub, sub)

	const total = highWater + 1000
	ctx := context.Background()
	for i := 0; i < total; i += 500 {
		var msgs []*adapter.Message
		for j := i; j < min(i+500, total); j++ {
			msgs = append(msgs, broadcast("pub-uid", "/", fmt.Sprintf("m%d", j)))
		}
		for k, r := range pub.PublishBatch(ctx, msgs) {
			if r.Err != nil || r.Offset == "" {
				t.Fatalf("PublishBatch %d: %q, %v", i+k, r.Offset, r.Err)
			}
		}
	}
	key := streamKeys(sub.opts.StreamName, sub.opts.StreamCount)[0]
	waitFor(t, 30*time.Second, "the reader held back, the lag showing the backlog", func() bool {
		return value(sub.metrics.handlerQueue) >= highWater-1 && value(sub.metrics.lagEntries.WithLabelValues(key)) > 0
	})
	if q := value(sub.metrics.handlerQueue); q > float64(highWater+sub.opts.ReadCount) {
		t.Errorf("handler queue %v, want at most highWater+ReadCount", q)
	}

	// Pub/sub is not held behind the stream.
	withAck := broadcast("pub-uid", "/", "acked")
	withAck.Data.(*adapter.BroadcastData).RequestID = "r1"
	if _, err := pub.Publish(ctx, withAck); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case m := <-ephemeral:
		if m.Data.(*adapter.BroadcastData).RequestID != "r1" {
			t.Errorf("pub/sub message %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pub/sub message was held behind the stream")
	}

	open()
	checkSequence(t, s.waitEvents(t, total, 60*time.Second), seqNames("m", 0, total))
	waitFor(t, 10*time.Second, "the lag back to 0", func() bool {
		return value(sub.metrics.lagEntries.WithLabelValues(key)) == 0
	})
}
