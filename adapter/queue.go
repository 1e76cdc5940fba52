package adapter

import "sync"

// fifo is an unbounded FIFO queue with a wake-up signal for one consumer.
// Producers never block: the transport's reader goroutine and the Socket.IO
// layer's goroutines push into it.
type fifo[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newFifo[T any]() *fifo[T] {
	return &fifo[T]{signal: make(chan struct{}, 1)}
}

func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take removes and returns up to max items (all of them when max <= 0).
func (q *fifo[T]) take(max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
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
