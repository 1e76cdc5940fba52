package eio

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Writing from the deliverer's goroutine. A Batch's Flush writes each held
// WebSocket session's queue itself, with non-blocking send(2)s
// (send_linux.go), instead of
// starting a flusher goroutine per session: a broadcast to a room costs no
// goroutine per recipient, and while the deliverer writes, the next
// broadcasts gather in its own queue and go out together at its next
// Flush. A socket that does not take everything at once (its buffer is
// full: a slow reader) is never waited for here: the rest goes to a
// flusher goroutine, which waits with the write deadline as usual. TLS
// connections (no raw descriptor) always use the flusher.

// maxInline bounds what one session's inline write copies (bytes); a larger
// queue is left to the flusher (which writes big frames without copying).
const maxInline = maxPooledBuffer

// rawOf returns the raw descriptor of the TCP connection conn writes to
// (tcpOf: net.TCPConn, or a wrapper that passes it through) or of a bare
// Unix socket, nil if none (TLS, a pipe).
func rawOf(conn net.Conn) syscall.RawConn {
	if !inlineWrites {
		return nil
	}
	var sc syscall.Conn
	if tc := tcpOf(conn); tc != nil {
		sc = tc
	} else if uc, ok := conn.(*net.UnixConn); ok {
		sc = uc
	} else {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// errWouldBlock: the socket took part of a write (or nothing) without
// waiting; the rest is the flusher's.
var errWouldBlock = errors.New("eio: write would block")

// tryWrite writes buf without waiting: it returns how much the socket
// took, and errWouldBlock if not all of it.
func (c *wsConn) tryWrite(buf []byte) (int, error) {
	w := rawWriters.Get().(*rawWriter)
	w.buf, w.n, w.err = buf, 0, nil
	err := c.raw.Write(w.fn)
	n, werr := w.n, w.err
	w.buf, w.err = nil, nil
	rawWriters.Put(w)
	if err != nil {
		return n, err
	}
	return n, werr
}

// rawWriter is the callback of one RawConn.Write, pooled with its method
// value so that a write allocates no closure.
type rawWriter struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool // w.write
}

var rawWriters = sync.Pool{New: func() any {
	w := &rawWriter{}
	w.fn = w.write
	return w
}}

// write writes w.buf[w.n:] to fd until it is all written or the socket
// would block; it never asks RawConn.Write to wait.
func (w *rawWriter) write(fd uintptr) bool {
	for w.n < len(w.buf) {
		m, e := sendNow(fd, w.buf[w.n:])
		if m > 0 {
			w.n += m
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			w.err = errWouldBlock
		case e != 0:
			w.err = e
		case m <= 0:
			w.err = errWouldBlock
		}
		if w.err != nil {
			break
		}
	}
	return true
}

// flushHeld writes s's queue for a Batch's Flush: inline when it can (see
// above), else by kicking the session's writer as Send does.
func (s *Session) flushHeld(now time.Time) {
	s.mu.Lock()
	s.batched = false
	c := s.ws
	if s.transport != WebSocket || c == nil || c.raw == nil || s.flushing || s.wsClosed || len(s.queue) == 0 {
		s.kickLocked()
		s.mu.Unlock()
		return
	}
	// n bounds the frames' length without building them (a compressed
	// frame is never longer than the plain one): compression runs below,
	// outside the lock.
	n, counted := 0, 0
	for _, m := range s.queue {
		n += plainFrameLen(m)
		counted += m.size()
	}
	if n > maxInline {
		s.kickLocked()
		s.mu.Unlock()
		return
	}
	batch := s.queue
	s.queue = nil
	s.flushing = true // this goroutine owns the write side until it lets go
	s.mu.Unlock()

	bp := c.packFrames(nil, batch, n, s.srv.opts.PerMessageDeflateThreshold)
	buf := *bp
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(len(buf))
	}
	// The write does not wait, but an expired deadline (set by an earlier
	// flusher write) would fail it at once: keep the deadline ahead, as
	// the flusher does (rarely set: see extendWriteDeadline).
	c.extendWriteDeadlineFrom(now, s.srv.opts.WriteTimeout)
	w, err := c.tryWrite(buf)

	s.mu.Lock()
	switch {
	case err == nil:
		s.queued -= counted
		s.flushing = false
		s.kickLocked() // what was queued meanwhile
		s.mu.Unlock()
		putBuffer(bp)
	case errors.Is(err, errWouldBlock):
		// The flusher writes the rest first, then the queue; the batch's
		// bytes stay counted until then.
		rest := append([]byte(nil), buf[w:]...)
		putBuffer(bp)
		s.mu.Unlock()
		s.srv.track.Go(func() { s.flushRest(rest, counted) })
	default:
		s.queued -= counted
		s.flushing = false
		s.wsClosed = true
		s.queue = nil
		s.endLocked(ReasonTransportError, endAbort)
		s.mu.Unlock()
		putBuffer(bp)
		_ = c.conn.Close()
	}
}
