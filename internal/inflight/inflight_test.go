package inflight

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// Wait returns at once with nothing in flight, waits for what is, gives
// up with its context, and may run while work keeps starting.
func TestGroup(t *testing.T) {
	var g Group
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	g.Go(func() { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with work in flight and a cancelled ctx = %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- g.Wait(context.Background()) }()
	var starters sync.WaitGroup
	for range 8 {
		starters.Add(1)
		go func() {
			defer starters.Done()
			for range 100 {
				g.Go(func() {})
			}
		}()
	}
	starters.Wait()
	close(release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
