package cluster

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/sockstream/sockstream/adapter"
)

// delivery is one message for one subscription.
type delivery struct {
	sub *subscription
	msg *adapter.Message
}

// dispatcher hands received messages to the handlers, in the order they
// were queued, from two goroutines: one for the messages read from the
// streams, one for those received over pub/sub.
//
// Why queues instead of calling the handler where the message arrives:
// rueidis hands pub/sub messages over through a small channel filled by the
// connection's reading goroutine, so a slow handler would stall that
// connection. So pub/sub callbacks only append to their lane and never
// wait.
//
// Why two lanes: a handler may block on a message read from the stream,
// to apply backpressure (the adapter does when its inbound queue is full,
// see adapter.Config.InboundQueueSize). The stream lane then fills up to
// highWater, the stream readers wait for room (waitRoom) and stop reading,
// which leaves the backlog in Redis, where the lag metrics see it and
// MAXLEN trimming, if it overtakes a reader, is counted. Pub/sub messages
// (heartbeats, requests, responses) go through the other lane, so they are
// never held behind that backlog: requests are answered and peers stay
// alive while the stream is held back. A handler must therefore be safe
// for concurrent use (each lane calls it from its own goroutine), and must
// not block on a pub/sub message.
type dispatcher struct {
	stream *lane
	pubsub *lane
	m      *metrics
}

// lane is one FIFO of deliveries and the goroutine calling their handlers.
type lane struct {
	d      *dispatcher
	mu     sync.Mutex
	queue  []delivery
	head   int
	n      atomic.Int64  // len, for the gauge
	signal chan struct{} // something was queued
	room   chan struct{} // the queue went below highWater
}

// highWater is the stream lane's length above which stream readers wait.
const highWater = 4096

func newDispatcher(m *metrics) *dispatcher {
	d := &dispatcher{m: m}
	d.stream = d.newLane()
	d.pubsub = d.newLane()
	return d
}

func (d *dispatcher) newLane() *lane {
	return &lane{d: d, signal: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func (d *dispatcher) gauge() {
	d.m.handlerQueue.Set(float64(d.stream.n.Load() + d.pubsub.n.Load()))
}

// push queues deliveries read from a stream without ever blocking (the
// readers call waitRoom before reading).
func (d *dispatcher) push(ds ...delivery) { d.stream.push(ds...) }

// pushPubSub queues a delivery received over pub/sub without ever
// blocking.
func (d *dispatcher) pushPubSub(dl delivery) { d.pubsub.push(dl) }

// waitRoom blocks while the stream lane is above highWater. It reports
// whether it had to wait.
func (d *dispatcher) waitRoom(ctx context.Context) (waited bool, err error) {
	return d.stream.waitRoom(ctx)
}

// run calls the handlers until ctx is done.
func (d *dispatcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.pubsub.run(ctx)
	}()
	d.stream.run(ctx)
	wg.Wait()
}

func (l *lane) lenLocked() int { return len(l.queue) - l.head }

func (l *lane) push(ds ...delivery) {
	if len(ds) == 0 {
		return
	}
	l.mu.Lock()
	l.queue = append(l.queue, ds...)
	l.n.Store(int64(l.lenLocked()))
	l.mu.Unlock()
	l.d.gauge()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

func (l *lane) waitRoom(ctx context.Context) (bool, error) {
	waited := false
	for {
		l.mu.Lock()
		n := l.lenLocked()
		l.mu.Unlock()
		if n < highWater {
			return waited, nil
		}
		waited = true
		select {
		case <-l.room:
		case <-ctx.Done():
			return waited, ctx.Err()
		}
	}
}

func (l *lane) run(ctx context.Context) {
	for {
		l.mu.Lock()
		if l.lenLocked() == 0 {
			// Release the backing array once drained.
			l.queue, l.head = l.queue[:0], 0
			l.mu.Unlock()
			select {
			case <-l.signal:
				continue
			case <-ctx.Done():
				return
			}
		}
		dl := l.queue[l.head]
		l.queue[l.head] = delivery{}
		l.head++
		n := l.lenLocked()
		l.n.Store(int64(n))
		l.mu.Unlock()
		if n < highWater {
			select {
			case l.room <- struct{}{}:
			default:
			}
		}
		l.d.gauge()
		dl.sub.deliver(dl.msg)
		if ctx.Err() != nil {
			return
		}
	}
}
