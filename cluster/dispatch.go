package cluster

import (
	"context"
	"sync"

	"github.com/sockstream/sockstream/adapter"
)

// delivery is one message for one subscription.
type delivery struct {
	sub *subscription
	msg *adapter.Message
}

// dispatcher hands received messages to the handlers from one goroutine, in
// the order they were queued, so handlers never run concurrently.
//
// Why a queue instead of calling the handler where the message arrives:
// rueidis hands pub/sub messages over through a small channel filled by the
// connection's reading goroutine, so a slow handler would stall that
// connection, and handlers of one subscription would run concurrently with
// those of the stream readers. So pub/sub callbacks only append here and
// never wait; stream readers, which own their goroutine, wait for room
// instead (highWater), which leaves the backlog in Redis where the lag
// metrics see it.
type dispatcher struct {
	mu     sync.Mutex
	queue  []delivery
	head   int
	signal chan struct{} // something was queued
	room   chan struct{} // the queue went below highWater
	m      *metrics
}

// highWater is the queue length above which stream readers wait.
const highWater = 4096

func newDispatcher(m *metrics) *dispatcher {
	return &dispatcher{signal: make(chan struct{}, 1), room: make(chan struct{}, 1), m: m}
}

func (d *dispatcher) lenLocked() int { return len(d.queue) - d.head }

// push queues ds without ever blocking.
func (d *dispatcher) push(ds ...delivery) {
	if len(ds) == 0 {
		return
	}
	d.mu.Lock()
	d.queue = append(d.queue, ds...)
	n := d.lenLocked()
	d.mu.Unlock()
	d.m.handlerQueue.Set(float64(n))
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

// waitRoom blocks while the queue is above highWater.
func (d *dispatcher) waitRoom(ctx context.Context) error {
	for {
		d.mu.Lock()
		n := d.lenLocked()
		d.mu.Unlock()
		if n < highWater {
			return nil
		}
		select {
		case <-d.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run calls the handlers until ctx is done.
func (d *dispatcher) run(ctx context.Context) {
	for {
		d.mu.Lock()
		if d.lenLocked() == 0 {
			// Release the backing array once drained.
			d.queue, d.head = d.queue[:0], 0
			d.mu.Unlock()
			select {
			case <-d.signal:
				continue
			case <-ctx.Done():
				return
			}
		}
		dl := d.queue[d.head]
		d.queue[d.head] = delivery{}
		d.head++
		n := d.lenLocked()
		d.mu.Unlock()
		if n == highWater-1 {
			select {
			case d.room <- struct{}{}:
			default:
			}
		}
		d.m.handlerQueue.Set(float64(n))
		dl.sub.deliver(dl.msg)
		if ctx.Err() != nil {
			return
		}
	}
}
