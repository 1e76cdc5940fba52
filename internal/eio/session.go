package eio

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// Errors of Session.Send.
var (
	// ErrClosed: the session is gone (closed, or closing).
	ErrClosed = errors.New("eio: session closed")
	// ErrSlowConsumer: the Send would have passed Options.MaxBufferedBytes;
	// the session is now closing with reason "slow consumer".
	ErrSlowConsumer = errors.New("eio: slow consumer: send queue bound passed")
	// ErrNotWritable is returned by SendVolatile when the transport is
	// busy: the messages were not queued (Node's volatile packets).
	ErrNotWritable = errors.New("eio: transport not writable: volatile message dropped")
)

// Close reasons, as Node's engine.io gives them.
const (
	ReasonTransportClose = "transport close"
	ReasonTransportError = "transport error"
	ReasonPingTimeout    = "ping timeout"
	ReasonParseError     = "parse error"
	ReasonForcedClose    = "forced close"
	ReasonSlowConsumer   = "slow consumer"
)

// Handler receives one session's messages. The Socket.IO layer implements it.
type Handler interface {
	// OnMessage is called for each message packet ("4…") from the client,
	// in arrival order, never concurrently for one session (on the
	// WebSocket reader goroutine, or the goroutine of the POST request).
	// data belongs to the handler (it may keep it). Text data is valid
	// UTF-8.
	OnMessage(data []byte, binary bool)
	// OnClose is called exactly once, when the session ends, after the last
	// OnMessage, on a goroutine of its own (never on the goroutine of a
	// Send or Close call); reason as Node's engine.io says it: "transport
	// close", "transport error", "ping timeout", "parse error", "forced
	// close" (Session.Close / Server.Close), "slow consumer".
	OnClose(reason string)
}

// Session is one Engine.IO session (one client).
type Session struct {
	srv *Server
	id  string
	hs  handshakeRecord
	h   Handler

	// inMu serialises the calls into h: OnMessage, then OnClose once.
	inMu sync.Mutex

	// The rest is guarded by mu. The flags are together at the end: an
	// idle session is mostly this struct, kept in a smaller size class.
	mu  sync.Mutex
	end *sessionEnd // made when the session ends, or by the first Closed call

	transport string // Polling or WebSocket (current)
	queue     []*Message
	queued    int // payload bytes queued and not yet written (the batch being written included)

	ws    *wsConn   // WebSocket transport
	poll  *pollWait // polling transport: the pending GET
	final *Message  // what ends the polling transport's last GET: close or noop
	probe *wsConn   // upgrade: the WebSocket being upgraded to

	// The one timer: heartbeat, upgrade timeout, lingering close. Each due
	// is zero when unset; the timer runs for the earliest.
	timer *time.Timer
	// closeDue is a due (8 bytes, not 24: an idle session is mostly this
	// struct); hbDue and upDue stay times, as the upgrade and the tests
	// set them.
	hbDue    time.Time // next PING, or the pong deadline
	upDue    time.Time // upgrade deadline
	closeDue due       // end of lingering

	closeCalled bool // guarded by inMu: OnClose was called
	ended       bool // OnClose is owed or delivered; Send refuses
	counted     bool // counted in Server.Count (registered)
	// lingering: ended by Session.Close over polling with no GET pending;
	// the session stays known until a GET takes its last packets and the
	// close packet, or until closeDue.
	lingering bool
	flushing  bool // WebSocket: a flusher goroutine owns the write side
	batched   bool // held by a Batch: its Flush kicks the writer
	wsClosed  bool // WebSocket: a close frame is queued or written: nothing more is queued
	posting   bool // polling: a POST is being handled
	probed    bool // upgrade: "2probe" answered: upgrading
	awaitPong bool // hbDue is the pong deadline (else: when to ping)
}

// sessionEnd is what a session needs once it has ended (or once Closed is
// asked): out of Session, which an idle session is mostly made of.
type sessionEnd struct {
	closed chan struct{} // closed when the session ends; made by the first Closed call
	reason string        // why it ended
}

// pollWait is a pending long-polling GET.
type pollWait struct {
	ready    chan struct{} // closed by signal
	signaled bool
	reject   bool // answer 400: the session upgraded
	probe    bool // woken by the upgrade's probe
}

// signal wakes the GET; called holding s.mu.
func (p *pollWait) signal() {
	if !p.signaled {
		p.signaled = true
		close(p.ready)
	}
}

// ID returns the session id (sid).
func (s *Session) ID() string { return s.id }

// Handshake returns what the handshake request was, built from the
// session's compact record on each call (the callers, such as
// Socket.Handshake, are rare; an idle session never asks).
func (s *Session) Handshake() *Handshake { return s.hs.handshake() }

// Transport returns the current transport: "polling" or "websocket" (after
// the upgrade).
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport
}

// Closed is closed when the session ends.
func (s *Session) Closed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == nil {
		s.end = &sessionEnd{}
	}
	if s.end.closed == nil {
		// Made on demand: most sessions are never asked.
		s.end.closed = make(chan struct{})
		if s.ended {
			close(s.end.closed)
		}
	}
	return s.end.closed
}

// Send queues msgs for the client and returns; it never blocks on the
// network. It returns ErrClosed if the session is gone, ErrSlowConsumer if
// msgs would pass Options.MaxBufferedBytes (the session is then closing
// with reason "slow consumer" and msgs are not sent).
func (s *Session) Send(msgs ...*Message) error { return s.send(nil, msgs) }

// send is Send, deferring the write to b.Flush when b is not nil.
func (s *Session) send(b *Batch, msgs []*Message) error { return s.sendAs(b, msgs, false) }

// SendVolatile is SendBatched for messages that may be lost: when the
// transport is not writable at once (over WebSocket, something is queued
// or being written; over polling, no GET is waiting), they are not queued
// and it returns ErrNotWritable, as Node's engine.io drops volatile packets
// then. b may be nil.
func (s *Session) SendVolatile(b *Batch, msgs ...*Message) error { return s.sendAs(b, msgs, true) }

// writableLocked reports whether the transport would take a message at
// once (Node's transport.writable). Called holding s.mu.
func (s *Session) writableLocked() bool {
	if len(s.queue) > 0 {
		return false
	}
	if s.transport == WebSocket {
		return s.ws != nil && !s.flushing
	}
	return s.poll != nil
}

func (s *Session) sendAs(b *Batch, msgs []*Message, volatile bool) error {
	n := 0
	for _, m := range msgs {
		n += m.size()
	}
	s.mu.Lock()
	if s.ended || s.wsClosed {
		s.mu.Unlock()
		return ErrClosed
	}
	if volatile && !s.writableLocked() {
		s.mu.Unlock()
		return ErrNotWritable
	}
	if s.queued+n > s.srv.opts.MaxBufferedBytes {
		queued := s.queued
		// Counted before the close, so that whoever sees the end sees
		// the count.
		if c := s.srv.opts.Metrics.SlowConsumers; c != nil {
			c.Inc()
		}
		s.endLocked(ReasonSlowConsumer, endAbort)
		s.mu.Unlock()
		s.srv.log.Warn("eio: slow consumer: session closed", "sid", s.id, "queued", queued, "send", n)
		return ErrSlowConsumer
	}
	s.queue = append(s.queue, msgs...)
	s.queued += n
	// Counted under s.mu, before any writer can take the queue: the
	// client never receives what the counters do not show yet.
	s.srv.opts.Metrics.addOut(len(msgs), n)
	if b != nil && !s.flushing {
		b.holdLocked(s)
	} else {
		s.kickLocked()
	}
	s.mu.Unlock()
	return nil
}

// enqueueLocked queues an engine packet (ping, a WebSocket pong or close
// frame) outside the bound. Called holding s.mu.
func (s *Session) enqueueLocked(m *Message) {
	if s.wsClosed {
		return
	}
	if m.op == opClose && m.isControlFrame() {
		s.wsClosed = true
	}
	s.queue = append(s.queue, m)
	s.queued += m.size()
	s.kickLocked()
	if !m.isControlFrame() {
		s.srv.opts.Metrics.addOut(1, m.size())
	}
}

// kickLocked starts the write of the queue: a flusher goroutine over
// WebSocket, the pending GET over polling. Called holding s.mu.
func (s *Session) kickLocked() {
	if len(s.queue) == 0 {
		return
	}
	switch {
	case s.transport == WebSocket && s.ws != nil:
		if !s.flushing {
			s.flushing = true
			s.srv.track.Go(s.flushLoop)
		}
	case s.poll != nil:
		s.poll.signal()
	}
}

// Close closes the session: what is queued is written first (bounded by
// WriteTimeout), then the transport is closed as Node's engine.io does (a
// close frame over WebSocket; over polling a close packet "1" for the
// pending or the next GET). OnClose("forced close") follows.
func (s *Session) Close() {
	s.mu.Lock()
	s.endLocked(ReasonForcedClose, endFlush)
	s.mu.Unlock()
}

// clientCloseLinger is how long a polling session closed by its client's
// close packet still answers a GET (with a noop).
const clientCloseLinger = time.Second

// How endLocked treats what is queued and the transport.
const (
	endDrop    = iota // drop the queue; close frame / close packet follow
	endFlush          // write the queue first (Session.Close); polling lingers for the next GET
	endDiscard        // Server.Close: write the queue first, do not linger
	endAbort          // drop everything, close the connection at once (write failure, slow consumer)
)

// endLocked ends the session for reason, once: no more Sends, no more
// OnMessage, OnClose(reason) on a goroutine of its own; the transport is
// closed as mode says. Called holding s.mu.
func (s *Session) endLocked(reason string, mode int) {
	s.endWithLocked(reason, mode, nil)
}

// endWithLocked is endLocked with the WebSocket close frame to send (nil:
// 1000, or 1001 at Server.Close).
func (s *Session) endWithLocked(reason string, mode int, frame *Message) {
	if s.ended {
		return
	}
	s.ended = true
	if s.end == nil {
		s.end = &sessionEnd{}
	}
	s.end.reason = reason
	if s.end.closed != nil {
		close(s.end.closed)
	}
	if s.counted {
		s.srv.sessionEnded()
	}
	if s.probe != nil {
		_ = s.probe.conn.Close()
		s.probe = nil
	}
	s.probed = false
	s.upDue = time.Time{}
	s.hbDue = time.Time{}

	if mode == endDrop || mode == endAbort {
		s.dropQueueLocked()
	}
	switch s.transport {
	case WebSocket:
		if mode == endAbort {
			s.wsClosed = true
			_ = s.ws.conn.Close()
			break
		}
		if frame == nil {
			frame = closeNormal
			if mode == endDiscard {
				frame = closeAway
			}
		}
		s.enqueueLocked(frame)
	default: // polling
		s.final = closePacket
		if reason == ReasonTransportClose {
			// The client's close packet: Node answers a pending GET with
			// a noop.
			s.final = noopPacket
		}
		switch {
		case s.poll != nil:
			s.poll.signal()
		case mode == endFlush:
			s.lingering = true
			s.closeDue = dueIn(s.srv.opts.WriteTimeout)
		case reason == ReasonTransportClose && mode == endDrop:
			// The client's close packet came with no GET pending. A GET
			// the client sent alongside (the suites' "forcefully closes
			// the session" races the two) gets the noop Node's
			// single thread nearly always gives it, not 400.
			s.lingering = true
			s.closeDue = dueIn(clientCloseLinger)
		}
	}
	if !s.lingering {
		s.srv.forget(s)
	}
	s.rearmLocked()
	if s.h != nil {
		s.srv.track.Go(s.notifyClose)
	} // else closed by accept itself: register owes OnClose
}

// dropQueueLocked forgets what is queued and not yet being written.
func (s *Session) dropQueueLocked() {
	for _, m := range s.queue {
		s.queued -= m.size()
	}
	s.queue = nil
}

// notifyClose calls OnClose once, after any OnMessage in progress.
func (s *Session) notifyClose() {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.closeCalled {
		return
	}
	s.closeCalled = true
	s.mu.Lock()
	reason := s.end.reason
	s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			s.srv.log.Error("eio: Handler.OnClose panicked", "sid", s.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	s.h.OnClose(reason)
}

// deliver hands a client message to the handler, unless the session ended.
// A panicking handler closes the session ("transport error").
func (s *Session) deliver(data []byte, binary bool) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.srv.log.Error("eio: Handler.OnMessage panicked; closing the session", "sid", s.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			s.mu.Lock()
			s.endLocked(ReasonTransportError, endDrop)
			s.mu.Unlock()
		}
	}()
	s.h.OnMessage(data, binary)
}

// onPong handles a client PONG: the pong deadline is replaced by the next
// PING. A PONG that answers no PING is ignored.
func (s *Session) onPong() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.awaitPong {
		return
	}
	s.awaitPong = false
	s.hbDue = time.Now().Add(s.srv.opts.PingInterval)
	s.rearmLocked()
}

// startTimer arms the heartbeat of a new session.
func (s *Session) startTimerLocked() {
	s.hbDue = time.Now().Add(s.srv.opts.PingInterval)
	s.timer = time.AfterFunc(s.srv.opts.PingInterval, s.onTimer)
}

// rearmLocked points the timer at the earliest due, or stops it.
func (s *Session) rearmLocked() {
	if s.timer == nil {
		return
	}
	var next due
	for _, d := range [...]due{dueAt(s.hbDue), dueAt(s.upDue), s.closeDue} {
		if d != 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if next == 0 {
		s.timer.Stop()
		return
	}
	s.timer.Reset(next.until())
}

// onTimer runs on the timer's goroutine: it does whatever is due and arms
// the timer for what is next. A run after a Reset (the timer fired as it was
// being moved) finds nothing due.
func (s *Session) onTimer() {
	s.srv.track.Add()
	defer s.srv.track.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := dueIn(0)
	if s.closeDue != 0 && now >= s.closeDue {
		s.closeDue = 0
		s.finishLingerLocked()
	}
	if !s.upDue.IsZero() && now >= dueAt(s.upDue) {
		s.abandonUpgradeLocked()
	}
	if !s.hbDue.IsZero() && now >= dueAt(s.hbDue) {
		if s.awaitPong {
			s.endLocked(ReasonPingTimeout, endDrop)
			return
		}
		// The pong deadline is armed before the PING is queued, counted
		// from when the PING was due (not from this callback, which may
		// run late on a loaded machine).
		s.awaitPong = true
		s.hbDue = s.hbDue.Add(s.srv.opts.PingTimeout)
		s.rearmLocked()
		s.enqueueLocked(pingPacket)
		return
	}
	s.rearmLocked()
}

// expireLocked ends the session if its pong deadline passed and the timer
// has not run yet: a request arriving after the deadline finds the session
// closed, however late the timer's callback runs. Called holding s.mu.
func (s *Session) expireLocked() {
	if !s.ended && s.awaitPong && !time.Now().Before(s.hbDue) {
		s.endLocked(ReasonPingTimeout, endDrop)
	}
}

// finishLingerLocked forgets a lingering session (its last GET came, or
// never did).
func (s *Session) finishLingerLocked() {
	if s.lingering {
		s.lingering = false
		s.closeDue = 0
		s.srv.forget(s)
	}
}

// abandonUpgradeLocked gives up the upgrade in progress: the WebSocket is
// closed, the session goes on over polling.
func (s *Session) abandonUpgradeLocked() {
	if s.probe != nil {
		_ = s.probe.conn.Close()
		s.probe = nil
	}
	s.probed = false
	s.upDue = time.Time{}
}

// due is a point in time for the session's timer: nanoseconds on the
// monotonic clock since clockBase; 0 is unset. 8 bytes where a time.Time
// takes 24: an idle session is mostly its struct.
type due int64

// clockBase is the origin of dues.
var clockBase = time.Now()

// dueIn returns the due d from now (never 0).
func dueIn(d time.Duration) due { return max(due(time.Since(clockBase)+d), 1) }

// dueAt returns t as a due; 0 for the zero time.
func dueAt(t time.Time) due {
	if t.IsZero() {
		return 0
	}
	return max(due(t.Sub(clockBase)), 1)
}

// until is how long from now until d.
func (d due) until() time.Duration { return time.Duration(d) - time.Since(clockBase) }
