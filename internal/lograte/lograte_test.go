package lograte

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Of many concurrent callers within a second, exactly one is let through.
func TestOncePerSecond(t *testing.T) {
	var o OncePerSecond
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if o.Allow() {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d calls allowed, want 1", n)
	}
}
