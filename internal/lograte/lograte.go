// Package lograte limits how often a repeated log line is written: an
// outage or a flood must not turn every dropped message into a line (the
// counters beside each call have the full story).
package lograte

import (
	"sync/atomic"
	"time"
)

// OncePerSecond lets one call of Allow through per second. The zero value
// is ready; safe for concurrent use.
type OncePerSecond struct {
	last atomic.Int64 // unix nanos of the last call let through
}

// Allow reports whether the caller may log now: the first call, then at
// most one a second.
func (o *OncePerSecond) Allow() bool {
	now := time.Now().UnixNano()
	last := o.last.Load()
	return now-last >= int64(time.Second) && o.last.CompareAndSwap(last, now)
}
