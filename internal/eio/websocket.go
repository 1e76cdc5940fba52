package eio

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// closeWait is how long the reader waits for the client's answer to the
// server's close frame before it closes the connection.
const closeWait = time.Second

// wsConn is one WebSocket connection: the hijacked net.Conn and what its
// reader needs (see wsread.go). Writes go through the session's queue and
// flusher, except the answers the reader writes itself before the
// connection is the session's transport (the probe's "3probe").
type wsConn struct {
	conn net.Conn
	pre  []byte // bytes net/http had read past the request, read first

	// The reader's buffer: small frames (a PONG, a short event) are read
	// with one read(2); larger payloads are read straight into their own
	// slice.
	buf  [128]byte
	r, w int // buf[r:w] is unread

	// The write deadline set last (Unix ns), owned by whoever writes:
	// the flusher keeps it at least WriteTimeout ahead without setting it
	// for every flush (setting one reprograms a runtime timer).
	wdl int64
	// raw is conn's descriptor for the inline writes of a Batch's Flush
	// (inline.go); nil for TLS.
	raw syscall.RawConn

	// Guarded by the session's mu: the close handshake.
	closeSent  bool // our close frame is written
	readerGone bool // the reader returned without closing conn

	// deflate: permessage-deflate was negotiated (deflate.go); set before
	// the connection is used.
	deflate bool
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

// acceptWebSocket validates r's WebSocket handshake (RFC 6455, section 4.2)
// and hijacks the connection. It returns the response to write (101) and
// the connection, or answers the request itself and returns nil.
func (srv *Server) acceptWebSocket(w http.ResponseWriter, r *http.Request) (*wsConn, []byte) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		srv.abort(w, true, codeBadRequest, "")
		return nil, nil
	}
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		srv.abort(w, true, codeBadRequest, "")
		return nil, nil
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 (RFC 8441 is not supported) or a writer that cannot.
		srv.abort(w, true, codeBadRequest, "")
		return nil, nil
	}
	c := &wsConn{conn: conn, raw: rawOf(conn)}
	// Whatever net/http read past the request (a client may send its first
	// frames at once) is kept; its bufio.Reader and Writer are dropped.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		c.pre = append([]byte(nil), b...)
	}
	_ = conn.SetDeadline(time.Time{})
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = base64.StdEncoding.AppendEncode(resp, h.Sum(nil))
	resp = append(resp, "\r\n"...)
	if srv.opts.PerMessageDeflate {
		if ext := negotiateDeflate(r.Header); ext != "" {
			c.deflate = true
			resp = append(resp, "Sec-WebSocket-Extensions: "...)
			resp = append(resp, ext...)
			resp = append(resp, "\r\n"...)
		}
	}
	resp = append(resp, srv.upgradeHeaders(r)...) // Options.Headers (server.go)
	resp = append(resp, "\r\n"...)
	return c, resp
}

// rawAbort answers a hijacked upgrade request as Node's abortUpgrade does,
// and closes the connection.
func rawAbort(c *wsConn, message string) {
	c.setWriteDeadline(time.Second)
	_, _ = c.conn.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-type: text/html\r\nContent-Length: " +
		itoa(len(message)) + "\r\n\r\n" + message))
	_ = c.conn.Close()
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// refuseWebSocket completes the handshake and closes the WebSocket at once:
// the 101 response and a close frame in one write, then the connection is
// closed once the client's answer came (or closeWait passed), so that the
// client sees a clean close.
func refuseWebSocket(c *wsConn, resp []byte) {
	_ = c.conn.SetDeadline(time.Now().Add(closeWait))
	if _, err := c.conn.Write(append(resp, closeNormal.wsFrame()...)); err == nil {
		var b [64]byte
		_, _ = c.conn.Read(b[:])
	}
	_ = c.conn.Close()
}

// handshakeWebSocket opens a session over WebSocket: the 101 response and
// the open packet go out in one write, then the reader starts.
func (srv *Server) handshakeWebSocket(w http.ResponseWriter, r *http.Request, q url.Values) {
	c, resp := srv.acceptWebSocket(w, r)
	if c == nil {
		return
	}
	s, h := srv.newSessionQuery(r, q, WebSocket)
	if h == nil {
		rawAbort(c, errorMessages[codeForbidden])
		return
	}
	s.ws = c
	s.flushing = true // this goroutine writes the open packet
	if !srv.register(s, h, 1) {
		s.mu.Lock()
		byAccept := s.wsClosed && len(s.queue) > 0
		c.readerGone = true
		s.mu.Unlock()
		if byAccept {
			// Closed by accept itself: the open packet, what it queued,
			// and the close frame; then the connection is closed.
			s.flush(resp, 0)
			return
		}
		_ = c.conn.Close()
		return
	}
	go c.runReader(s)
	s.flush(resp, 0)
}

// upgradeSession accepts a WebSocket for the polling session s: the upgrade
// begins (probe, then "5").
func (srv *Server) upgradeSession(w http.ResponseWriter, r *http.Request, s *Session) {
	c, resp := srv.acceptWebSocket(w, r)
	if c == nil {
		return
	}
	// The probe slot is taken before the 101 is written: a client that
	// opens a second WebSocket with the same sid as soon as it sees this one
	// open (the engine.io-protocol suite does) must find it taken, not race
	// this one for it.
	s.mu.Lock()
	ok := !s.ended && s.transport == Polling && s.probe == nil && !srv.opts.DisableUpgrades
	if ok {
		s.probe = c
		s.upDue = time.Now().Add(srv.opts.UpgradeTimeout)
		s.rearmLocked()
		srv.track.Add() // the reader's, started below
	}
	s.mu.Unlock()
	if !ok {
		// Node accepts such a WebSocket (its session is already upgrading
		// or upgraded) and closes it.
		refuseWebSocket(c, resp)
		return
	}
	c.setWriteDeadline(srv.opts.WriteTimeout)
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(len(resp))
	}
	if _, err := c.conn.Write(resp); err != nil {
		s.mu.Lock()
		if s.probe == c {
			s.abandonUpgradeLocked()
		}
		s.mu.Unlock()
		_ = c.conn.Close()
		srv.track.Done()
		return
	}
	go c.runReader(s)
}

// flushLoop writes the queue until it is empty, then exits; the next Send
// starts another. Everything queued when a write starts goes out in that
// one write.
func (s *Session) flushLoop() { s.flush(nil, 0) }

// flushRest is flushLoop after an inline write the socket took only part
// of: rest first, then the queue; counted is the payload bytes of rest's
// messages, still counted in queued.
func (s *Session) flushRest(rest []byte, counted int) { s.flush(rest, counted) }

// flush is flushLoop with bytes to write before the first batch (the 101
// response of a WebSocket handshake, the rest of an inline write), of
// which counted payload bytes are counted in queued.
func (s *Session) flush(prefix []byte, counted int) {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		c := s.ws
		if len(batch) == 0 && prefix == nil {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		err := s.writeFrames(c, prefix, batch)
		prefix = nil
		closing := len(batch) > 0 && batch[len(batch)-1].isControlFrame() && batch[len(batch)-1].op == opClose

		s.mu.Lock()
		for _, m := range batch {
			s.queued -= m.size()
		}
		s.queued -= counted
		counted = 0
		if err != nil {
			s.flushing = false
			s.wsClosed = true
			s.queue = nil
			s.endLocked(ReasonTransportError, endAbort)
			s.mu.Unlock()
			_ = c.conn.Close()
			return
		}
		if closing {
			c.closeSent = true
			gone := c.readerGone
			s.flushing = false
			s.queue = nil
			s.mu.Unlock()
			if gone {
				_ = c.conn.Close()
			} else {
				_ = c.conn.SetReadDeadline(time.Now().Add(closeWait))
			}
			return
		}
		s.mu.Unlock()
	}
}

// writeFrames writes prefix and the frames of batch in one write(2), with
// the write deadline.
func (s *Session) writeFrames(c *wsConn, prefix []byte, batch []*Message) error {
	threshold := s.srv.opts.PerMessageDeflateThreshold
	n := len(prefix)
	for _, m := range batch {
		n += len(c.frameOf(m, threshold))
	}
	c.extendWriteDeadline(s.srv.opts.WriteTimeout)
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(n)
	}
	if n > maxPooledBuffer && len(batch) <= 1024 && prefix == nil {
		if tc := tcpOf(c.conn); tc != nil {
			// Large frames are not copied: one writev(2).
			bufs := make(net.Buffers, len(batch))
			for i, m := range batch {
				bufs[i] = c.frameOf(m, threshold)
			}
			_, err := bufs.WriteTo(tc)
			return err
		}
	}
	bp := c.packFrames(prefix, batch, n, threshold)
	_, err := c.conn.Write(*bp)
	putBuffer(bp)
	return err
}

// tcpConner is implemented by a connection wrapper whose writes go to a
// *net.TCPConn unchanged (the server's connection limit), so that a
// vectored write can go to that connection: net.Buffers writes with one
// writev(2) only to the net package's own connections, and once per
// buffer to anything else.
type tcpConner interface {
	TCPConn() *net.TCPConn
}

// tcpOf returns the TCP connection conn writes to unchanged, nil if none
// (TLS, a pipe).
func tcpOf(conn net.Conn) *net.TCPConn {
	switch c := conn.(type) {
	case *net.TCPConn:
		return c
	case tcpConner:
		return c.TCPConn()
	}
	return nil
}

// packFrames copies prefix and the frames of batch (as this connection
// takes them: compressed or not) into a pooled buffer of at least n bytes;
// the caller puts it back.
func (c *wsConn) packFrames(prefix []byte, batch []*Message, n, threshold int) *[]byte {
	bp := getBuffer(n)
	buf := append((*bp)[:0], prefix...)
	for _, m := range batch {
		buf = append(buf, c.frameOf(m, threshold)...)
	}
	*bp = buf
	return bp
}

// extendWriteDeadline makes sure the write about to start has at least d
// (and at most 5d/4) to complete: under steady traffic the deadline is
// moved once per d/4, not once per write.
func (c *wsConn) extendWriteDeadline(d time.Duration) {
	c.extendWriteDeadlineFrom(time.Now(), d)
}

// extendWriteDeadlineFrom is extendWriteDeadline with the time read by the
// caller: a Batch's Flush reads it once for all the sessions of a pass
// (a pass never waits, so it is at most that pass's age behind).
func (c *wsConn) extendWriteDeadlineFrom(now time.Time, d time.Duration) {
	if c.wdl-now.UnixNano() >= int64(d) {
		return
	}
	t := now.Add(d + d/4)
	c.wdl = t.UnixNano()
	_ = c.conn.SetWriteDeadline(t)
}

// setWriteDeadline sets the write deadline to now+d exactly.
func (c *wsConn) setWriteDeadline(d time.Duration) {
	t := time.Now().Add(d)
	c.wdl = t.UnixNano()
	_ = c.conn.SetWriteDeadline(t)
}

// writeDirect writes one frame from the reader goroutine, before the
// connection is the session's transport (nobody else writes to it then):
// a pong, the probe's "3probe", never compressed.
func (c *wsConn) writeDirect(m *Message, timeout time.Duration) error {
	c.setWriteDeadline(timeout)
	f := m.wsFrame()
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(len(f))
	}
	_, err := c.conn.Write(f)
	return err
}
