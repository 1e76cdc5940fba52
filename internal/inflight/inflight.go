// Package inflight counts work in flight (goroutines, writes, callbacks)
// so that its owner can wait until none is left: the engine's Close, the
// server's Shutdown, the adapter's wait for the sessions being persisted.
package inflight

import (
	"context"
	"sync"
)

// Group counts work in flight. Unlike a sync.WaitGroup it may be added to
// while someone waits (work keeps starting while a server shuts down), and
// a wait given up with its context leaves nothing behind. The zero value is
// ready; a Group must not be copied after first use.
type Group struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil while nobody waits
}

// Add counts one more piece of work.
func (g *Group) Add() {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
}

// Done ends one piece of work counted by Add.
func (g *Group) Done() {
	g.mu.Lock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// Go runs f on a new goroutine counted until f returns.
func (g *Group) Go(f func()) {
	g.Add()
	go func() {
		defer g.Done()
		f()
	}()
}

// Wait returns once no work is in flight, or with ctx's error.
func (g *Group) Wait(ctx context.Context) error {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
