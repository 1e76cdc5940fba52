package cluster

import (
	"context"
	"sync"
	"time"
)

// lagProbeInterval is how often the lag of each stream is measured from
// Redis, independently of the reader.
const lagProbeInterval = time.Second

// lagState is the lag bookkeeping of one stream, shared by its reader (which
// moves the position) and the lag probe (which measures what lies beyond
// it). Every write to the stream's lag gauges goes through it, under mu, so
// that a probe result computed for an old position never overwrites what
// the reader reported for a newer one.
//
// Why a probe: the reader only learns about the backlog when it reads. A
// reader held back (the handlers are slow, so the dispatcher has no room)
// or cut off from Redis does not read, and its gauges would freeze at their
// last value, typically 0, exactly when the operator needs them.
type lagState struct {
	mu sync.Mutex
	// last is the id of the last entry read, "" before the reader started.
	last string
	// consumed is the stream's entries-added counter at last (Redis 7+),
	// valid when counted.
	consumed int64
	counted  bool
	// caughtUp is the last moment this node knew it had read every entry
	// of the stream: a read that returned less than a full batch, or a
	// probe that found nothing beyond last. Any entry not read yet was
	// added after it.
	caughtUp time.Time
}

// moved records the reader's new position.
func (l *lagState) moved(last string, consumed int64, counted bool) {
	l.mu.Lock()
	l.last, l.consumed, l.counted = last, consumed, counted
	l.mu.Unlock()
}

// readerCaughtUp records a read that reached the end of the stream.
func (l *lagState) readerCaughtUp(m *metrics, key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.caughtUp = now
	m.lagEntries.WithLabelValues(key).Set(0)
	m.lagSeconds.WithLabelValues(key).Set(0)
}

// readerBehind records a full batch: the stream has more, the last entry
// read is the best estimate of the age of the next one.
func (l *lagState) readerBehind(m *metrics, key string, lastID string, now time.Time) {
	if ms := streamID(lastID).Ms; ms > 0 {
		l.mu.Lock()
		m.lagSeconds.WithLabelValues(key).Set(max(0, now.Sub(time.UnixMilli(int64(ms))).Seconds()))
		l.mu.Unlock()
	}
}

// setEntries records the entries-behind count the reader computed.
func (l *lagState) setEntries(m *metrics, key string, n int64) {
	l.mu.Lock()
	m.lagEntries.WithLabelValues(key).Set(float64(max(n, 0)))
	l.mu.Unlock()
}

// lagLoop measures the lag of every stream every lagProbeInterval until the
// transport closes.
func (t *Transport) lagLoop(readers []*reader) {
	t.every(lagProbeInterval, func() {
		for _, r := range readers {
			if t.ctx.Err() != nil {
				return
			}
			r.probeLag(t.ctx)
		}
	})
}

// probeLag measures how far the reader is behind the stream: XINFO STREAM
// for the newest entry and the entries-added counter, and, when there are
// unread entries, XRANGE for the oldest one, whose id gives its age.
//
// When Redis cannot be asked (it is down, or the probe fails), the backlog
// cannot be known; the seconds then become the time since this node last
// knew it was caught up, which is an upper bound of the age of any entry it
// has not read, and grows for as long as the node is cut off. The entries
// keep their last measured value.
func (r *reader) probeLag(ctx context.Context) {
	t := r.t
	l := &r.lag
	l.mu.Lock()
	last, consumed, counted, caughtUp := l.last, l.consumed, l.counted, l.caughtUp
	l.mu.Unlock()
	if last == "" {
		return // not started: the reader reports its own startup failures
	}
	if t.health.isUp() && time.Since(caughtUp) < lagProbeInterval {
		// A busy reader reaches the end of the stream often and says so
		// itself: no need to ask Redis. Probes are for idle readers
		// (blocked in XREAD), held-back ones and outages.
		return
	}
	start := time.Now()
	oldest, si, err := r.unread(ctx, last)
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if !l.caughtUp.IsZero() {
			t.metrics.lagSeconds.WithLabelValues(r.key).Set(time.Since(l.caughtUp).Seconds())
		}
		return
	}
	if l.last != last {
		return // the reader moved meanwhile and reported for itself
	}
	if oldest == "" {
		l.caughtUp = start
		t.metrics.lagSeconds.WithLabelValues(r.key).Set(0)
		t.metrics.lagEntries.WithLabelValues(r.key).Set(0)
		return
	}
	if ms := streamID(oldest).Ms; ms > 0 {
		t.metrics.lagSeconds.WithLabelValues(r.key).Set(max(0, time.Since(time.UnixMilli(int64(ms))).Seconds()))
	}
	if counted && si.recordedCounts {
		t.metrics.lagEntries.WithLabelValues(r.key).Set(float64(max(si.entriesAdded-consumed, 0)))
	}
}

// unread returns the id of the oldest entry after last ("" when there is
// none) and the stream's info.
func (r *reader) unread(ctx context.Context, last string) (string, streamInfo, error) {
	t := r.t
	if !t.health.isUp() {
		return "", streamInfo{}, errNotConnected
	}
	si, err := r.info(ctx)
	if err != nil {
		return "", si, err
	}
	if !si.exists || si.lastGenerated == "" || !idLess(last, si.lastGenerated) {
		return "", si, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
	defer cancel()
	c := t.client
	entries, err := c.Do(ctx, c.B().Xrange().Key(r.key).Start("("+last).End("+").Count(1).Build()).AsXRange()
	if err != nil {
		return "", si, err
	}
	if len(entries) == 0 {
		// Everything after last was trimmed or deleted: nothing to read.
		return "", si, nil
	}
	return entries[0].ID, si, nil
}
