package eio

import (
	"context"
	"sync"
)

// tracker counts the engine's goroutines (WebSocket readers, flushers,
// OnClose deliveries, timer callbacks) so that Server.Close can wait for
// them. Unlike a sync.WaitGroup it may be added to while someone waits.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil if nobody waits
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

// goFunc runs f on a new tracked goroutine.
func (t *tracker) goFunc(f func()) {
	t.add()
	go func() {
		defer t.done()
		f()
	}()
}

// wait returns once no tracked goroutine runs, or with ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
