package cluster

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

// TestLagWhileReaderHeldBack: a node whose handlers are stuck stops reading
// once its handler queue is full; the backlog stays in Redis, and the lag
// probe reports it (entries and seconds) although the reader reads nothing,
// then reports 0 once the handlers catch up.
func TestLagWhileReaderHeldBack(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	slow := startTransport(t, "slow", fastOpts(rs.URL()))
	pub := startTransport(t, "pub", fastOpts(rs.URL()))
	waitReady(t, slow, pub)

	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	received := make(chan struct{}, 1)
	unsub, err := slow.Subscribe(context.Background(), "/", "ssssssssssssssss", func(*adapter.Message) {
		select {
		case received <- struct{}{}:
		default:
		}
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	const total = highWater + 1000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < total; {
		var batch []*adapter.Message
		for ; len(batch) < 500 && i < total; i++ {
			batch = append(batch, broadcast("pppppppppppppppp", "/", "m"+strconv.Itoa(i)))
		}
		for _, r := range pub.PublishBatch(ctx, batch) {
			if r.Err != nil {
				t.Fatalf("PublishBatch: %v", r.Err)
			}
		}
	}
	<-received
	key := slow.opts.StreamName
	lagEntries := slow.metrics.lagEntries.WithLabelValues(key)
	lagSeconds := slow.metrics.lagSeconds.WithLabelValues(key)
	// The reader stops with at least highWater deliveries queued (it reads
	// whole batches); what is left is at most total-highWater+ReadCount.
	waitFor(t, 10*time.Second, "lag entries reported while the reader is held back", func() bool {
		v := value(lagEntries)
		return v > 0 && v <= float64(total-highWater+slow.opts.ReadCount)
	})
	waitFor(t, 10*time.Second, "lag seconds rise while the reader is held back", func() bool { return value(lagSeconds) >= 1 })

	close(release)
	released = true
	waitFor(t, 20*time.Second, "lag back to 0", func() bool { return value(lagEntries) == 0 && value(lagSeconds) == 0 })
	if got := value(slow.metrics.entriesRead.WithLabelValues(key)); got != total {
		t.Errorf("entries read = %v, want %d", got, total)
	}
}

// TestLagWhileCutOff: while Redis is unreachable the lag seconds grow (the
// time since the node last knew it was caught up), then fall to 0 once the
// node has read what it missed.
func TestLagWhileCutOff(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	cut := startTransport(t, "cut", fastOpts("redis://"+proxy.Addr()))
	pub := startTransport(t, "pub", fastOpts(rs.URL()))
	waitReady(t, cut, pub)
	s := subscribe(t, cut, "/", "cccccccccccccccc")
	key := cut.opts.StreamName
	lagSeconds := cut.metrics.lagSeconds.WithLabelValues(key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One message read: the node knows it is caught up.
	if _, err := pub.Publish(ctx, broadcast("pppppppppppppppp", "/", "first")); err != nil {
		t.Fatal(err)
	}
	s.waitEvents(t, 1, 10*time.Second)
	if got := value(lagSeconds); got != 0 {
		t.Fatalf("lag seconds when caught up = %v", got)
	}
	proxy.Cut()
	waitFor(t, 10*time.Second, "redis_up 0", func() bool { return value(cut.metrics.redisUp) == 0 })
	for i := range 3 {
		if _, err := pub.Publish(ctx, broadcast("pppppppppppppppp", "/", "m"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "lag seconds rise while cut", func() bool { return value(lagSeconds) >= 1.5 })
	proxy.Restore()
	checkSequence(t, s.waitEvents(t, 4, 10*time.Second), append([]string{"first"}, seqNames("m", 0, 3)...))
	waitFor(t, 10*time.Second, "lag back to 0", func() bool { return value(lagSeconds) == 0 })
}
