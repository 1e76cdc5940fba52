package eio

import (
	"sync"
	"sync/atomic"
	"time"
)

// A Batch holds back the writes of the messages queued through it
// (Session.SendBatched) until Flush: a session that gets several messages
// through one batch writes them with one write(2) instead of one each.
// Whoever delivers a backlog of broadcasts (the adapter, for a batch it
// took from its queue) queues them all through one Batch and flushes it
// once, as nats-server flushes the clients a read buffer's messages went
// to once at the end of the buffer. A broadcast that arrives alone is
// written at once; under load, when passes would follow each other back
// to back, a pass first waits for as long as the previous one took (at
// most maxCoalesce), so that each socket is written at most once per pass
// duration with everything that arrived meanwhile (see Flush).
//
// A session appears in at most one batch at a time. A session held by a
// batch is still written at once when something else kicks its writer (a
// Send, a PING): the batch only defers, it never keeps a message back
// from a write that happens anyway. Safe for concurrent use; the zero
// value is ready.
type Batch struct {
	mu       sync.Mutex
	sessions []*Session
	// flushing: a Flush is writing; another one waits for it to end
	// (passEnd, on mu) and then writes what was held meanwhile.
	flushing bool
	passEnd  *sync.Cond
	// lastEnd and lastPass are when the last pass ended and how long it
	// took (coalesce).
	lastEnd  time.Time
	lastPass time.Duration
}

// maxCoalesce bounds how long a pass waits after the previous one (see
// Flush): under load, what a broadcast's delivery may add to its latency.
const maxCoalesce = 2 * time.Millisecond

// coalesceLocked is how long a pass starting at now waits: what is left of
// the previous pass's duration since it ended, at most maxCoalesce; zero
// when passes are further apart than they last (one broadcast now and
// then). Called holding b.mu.
func (b *Batch) coalesceLocked(now time.Time) time.Duration {
	return max(0, min(b.lastPass-now.Sub(b.lastEnd), maxCoalesce))
}

// SendBatched is Send, except that the write is deferred until b.Flush
// (see Batch) when it would start now. The bound (Options.MaxBufferedBytes)
// applies as for Send.
func (s *Session) SendBatched(b *Batch, msgs ...*Message) error {
	return s.send(b, msgs)
}

// holdLocked defers s's write to b.Flush, unless s is held by a batch already.
// Called holding s.mu.
func (b *Batch) holdLocked(s *Session) {
	if s.batched {
		return
	}
	s.batched = true
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
}

// Flush writes what b's SendBatched calls queued: over WebSocket from the
// caller's goroutine as far as the sockets take it without waiting
// (inline.go), the rest on the sessions' own writers (a flusher goroutine,
// the pending GET). It never waits on the network.
//
// One Flush writes at a time. A Flush called while another one writes
// waits for that pass to end (it never waits on the network, so neither
// does this one for long) and then writes what was held meanwhile: a
// connection that got broadcasts from two deliverers (a node's own
// broadcasts and the other nodes', delivered by two workers) is written
// once with all that arrived during the pass, not once by each. Each
// caller writes at most one pass, its own.
//
// Under load a pass starts by waiting: if the previous pass ended less
// than its own duration ago, the rest of that duration (at most
// maxCoalesce, 2ms). On loopback a write(2) costs about the same whatever
// its size, so a pass that follows another back to back would write each
// socket again for the little that arrived in between; waiting makes each
// write carry about twice as much. Measured by make bench, saturated: the
// nodes' CPU per delivery down from 1.95-2.01 to 1.44-1.46 µs, with higher
// throughput and a lower p99. A broadcast that comes alone (passes further
// apart than they last) does not wait.
func (b *Batch) Flush() {
	b.mu.Lock()
	for b.flushing {
		if b.passEnd == nil {
			b.passEnd = sync.NewCond(&b.mu)
		}
		if hook := testHookFlushWait.Load(); hook != nil {
			(*hook)()
		}
		b.passEnd.Wait()
	}
	if len(b.sessions) == 0 {
		b.mu.Unlock()
		return // written by the pass that just ended
	}
	b.flushing = true
	now := time.Now() // for the write deadlines: one clock read per pass
	if wait := b.coalesceLocked(now); wait > 0 {
		// Passes back to back: the sockets are written at most once per
		// pass duration, so that each write(2), whose cost hardly depends
		// on its size, carries what arrived meanwhile.
		b.mu.Unlock()
		time.Sleep(wait)
		now = time.Now()
		b.mu.Lock()
	}
	held := b.sessions
	b.sessions = nil
	b.mu.Unlock()
	for i, s := range held {
		s.flushHeld(now)
		held[i] = nil
	}
	end := time.Now()
	b.mu.Lock()
	b.lastEnd, b.lastPass = end, end.Sub(now)
	if b.sessions == nil && cap(held) <= maxBatchReuse {
		b.sessions = held[:0]
	}
	b.flushing = false
	if b.passEnd != nil {
		b.passEnd.Broadcast()
	}
	b.mu.Unlock()
}

// maxBatchReuse bounds the list a Batch keeps between flushes (sessions).
const maxBatchReuse = 4096

// testHookFlushWait, set by tests, is called when a Flush starts waiting
// for another one's pass (holding the Batch's lock: it must not block).
var testHookFlushWait atomic.Pointer[func()]
