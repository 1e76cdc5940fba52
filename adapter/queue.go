package adapter

import (
	"context"
	"sync"
)

// fifo is a FIFO queue that wakes its one consumer (notify: the task of
// the namespace that drains it, see scheduler.go) when something is queued.
//
// push never blocks and applies no bound (the outbound and server-side
// event queues use it). The inbound queue is bounded with pushWait and
// pushUnder, which count the items held: queued, or taken by the consumer
// with takeHeld and not yet released.
type fifo[T any] struct {
	mu     sync.Mutex
	items  []T
	busy   int           // taken by takeHeld, not yet released
	closed bool          // discarded: pushWait and pushUnder refuse
	notify func()        // something was queued; set before the first push
	room   chan struct{} // an item was released
}

func newFifo[T any]() *fifo[T] {
	return &fifo[T]{room: make(chan struct{}, 1)}
}

func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.wake()
}

func (q *fifo[T]) wake() {
	if q.notify != nil {
		q.notify()
	}
}

func (q *fifo[T]) heldLocked() int { return len(q.items) + q.busy }

// pushUnder queues v if fewer than limit items are held, and reports
// whether it did. It never blocks.
func (q *fifo[T]) pushUnder(v T, limit int) bool {
	q.mu.Lock()
	if q.closed || q.heldLocked() >= limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.wake()
	return true
}

// pushWait queues v once fewer than limit items are held, waiting for the
// consumer to release some meanwhile. It returns false, v not queued, if
// ctx ends first or the queue was discarded. Several producers may wait at
// once.
func (q *fifo[T]) pushWait(ctx context.Context, v T, limit int) bool {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return false
		}
		if q.heldLocked() < limit {
			q.items = append(q.items, v)
			more := q.heldLocked() < limit
			q.mu.Unlock()
			q.wake()
			if more {
				// Pass on a wake-up another waiter may need.
				q.roomSignal()
			}
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
	}
}

func (q *fifo[T]) roomSignal() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// take removes and returns up to max items (all of them when max <= 0).
func (q *fifo[T]) take(max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.takeLocked(max)
}

// takeHeld is take, the items staying held (counted against the limit of
// pushWait and pushUnder) until released.
func (q *fifo[T]) takeHeld(max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.takeLocked(max)
	q.busy += len(out)
	return out
}

// release ends the holding of one item taken with takeHeld.
func (q *fifo[T]) release() {
	q.mu.Lock()
	q.busy--
	q.mu.Unlock()
	q.roomSignal()
}

// discard empties the queue for good (pushWait and pushUnder refuse from
// then on) and forgets the held items.
func (q *fifo[T]) discard() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items, q.busy, q.closed = nil, 0, true
}

func (q *fifo[T]) takeLocked(max int) []T {
	n := len(q.items)
	if n == 0 {
		return nil
	}
	if max <= 0 || max >= n {
		out := q.items
		q.items = nil
		return out
	}
	out := make([]T, max)
	copy(out, q.items)
	var zero T
	for i := range max {
		q.items[i] = zero
	}
	q.items = q.items[max:]
	return out
}

func (q *fifo[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// held returns the number of items queued or taken and not released.
func (q *fifo[T]) held() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.heldLocked()
}
