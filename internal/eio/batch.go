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
// to once at the end of the buffer: nothing waits for a timer, and a
// broadcast that arrives alone is written at once.
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
// once with all that arrived during the pass, not once by each, and
// nothing waits for a timer. Each caller writes at most one pass, its own.
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
	held := b.sessions
	if len(held) == 0 {
		b.mu.Unlock()
		return // written by the pass that just ended
	}
	b.sessions = nil
	b.flushing = true
	b.mu.Unlock()
	now := time.Now() // for the write deadlines: one clock read per pass
	for i, s := range held {
		s.flushHeld(now)
		held[i] = nil
	}
	b.mu.Lock()
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
