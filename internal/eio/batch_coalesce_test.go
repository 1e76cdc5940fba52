package eio

import (
	"testing"
	"time"
)

// TestBatchCoalesce: a pass waits for what is left of the previous pass's
// duration since it ended, at most maxCoalesce, and not at all when passes
// are further apart than they last (a broadcast now and then).
func TestBatchCoalesce(t *testing.T) {
	end := time.Unix(1000, 0)
	for _, c := range []struct {
		name      string
		lastPass  time.Duration
		sinceEnd  time.Duration
		wantWait  time.Duration
		neverPass bool
	}{
		{name: "first pass", neverPass: true, sinceEnd: time.Hour, wantWait: 0},
		{name: "right after a 1ms pass", lastPass: time.Millisecond, sinceEnd: 0, wantWait: time.Millisecond},
		{name: "0.4ms after a 1ms pass", lastPass: time.Millisecond, sinceEnd: 400 * time.Microsecond, wantWait: 600 * time.Microsecond},
		{name: "longer after than it lasted", lastPass: time.Millisecond, sinceEnd: 3 * time.Millisecond, wantWait: 0},
		{name: "after a long pass, capped", lastPass: 50 * time.Millisecond, sinceEnd: time.Millisecond, wantWait: maxCoalesce},
	} {
		var b Batch
		if !c.neverPass {
			b.lastEnd, b.lastPass = end, c.lastPass
		}
		if got := b.coalesceLocked(end.Add(c.sinceEnd)); got != c.wantWait {
			t.Errorf("%s: wait %v, want %v", c.name, got, c.wantWait)
		}
	}
}
