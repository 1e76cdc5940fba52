package eio

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// wsError is a failure of the WebSocket protocol by the client: the
// connection is closed with code (RFC 6455, section 7.4.1).
type wsError struct {
	code uint16
	what string
}

func (e *wsError) Error() string { return "eio: websocket: " + e.what }

var (
	errProtocol   = &wsError{1002, "protocol error"}
	errInvalidUTF = &wsError{1007, "invalid UTF-8 in a text message"}
	errTooBig     = &wsError{1009, "message over MaxPayload"}
)

// errPeerClose is returned by readMessage when the client's close frame
// arrived; the answer is the connection's peerCode.
type peerClose struct{ code uint16 }

func (peerClose) Error() string { return "eio: websocket: close frame received" }

// runReader is the reader goroutine of c: one reservation of the in-flight
// group (track), taken by who starts it, is released when it returns.
func (c *wsConn) runReader(s *Session) {
	defer s.srv.track.Done()
	c.readLoop(s)
}

// readLoop reads the client's messages until the connection fails or
// closes. It is the only goroutine of an idle WebSocket session, and its
// stack is most of an idle session's memory: its frame is kept small, and
// when handling a message grew the stack (a CONNECT runs the namespace's
// middlewares, JSON decoding, the adapter), the loop continues on a fresh
// goroutine, whose stack is the smallest, instead of keeping the grown one
// (which the runtime would only halve at each GC) for as long as the
// connection idles. The reader hands over only when nothing is buffered,
// so a burst of messages is read by one goroutine.
func (c *wsConn) readLoop(s *Session) {
	var mark byte
	base := stackAddr(&mark)
	for {
		op, data, err := c.readMessage(s)
		if err != nil {
			s.wsReadFailed(c, err)
			return
		}
		if !s.onWSMessage(c, op, data) {
			return
		}
		if stackAddr(&mark) != base && c.r == c.w && len(c.pre) == 0 {
			// The stack was copied to a larger one (or shrunk by a GC):
			// a fresh goroutine takes over, this one returns at once (its
			// grown stack is freed when it exits).
			s.srv.track.Add()
			readerHandovers.Add(1)
			go c.runReader(s)
			return
		}
	}
}

// readerHandovers counts readLoop's handovers to a fresh goroutine (read by
// the tests).
var readerHandovers atomic.Int64

// stackAddr is the address of a variable of the calling goroutine's stack:
// it changes when the runtime moves the stack (to grow or shrink it).
func stackAddr(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

// fill reads into buf until at least k bytes are unread.
func (c *wsConn) fill(k int) error {
	for c.w-c.r < k {
		if c.r > 0 {
			c.w = copy(c.buf[:], c.buf[c.r:c.w])
			c.r = 0
		}
		var n int
		var err error
		if len(c.pre) > 0 {
			n = copy(c.buf[c.w:], c.pre)
			c.pre = c.pre[n:]
			if len(c.pre) == 0 {
				c.pre = nil
			}
		} else {
			n, err = c.conn.Read(c.buf[c.w:])
		}
		c.w += n
		if err != nil && c.w-c.r < k {
			if err == io.EOF && c.w-c.r > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readFull fills dst from buf, then pre, then the connection.
func (c *wsConn) readFull(dst []byte) error {
	n := copy(dst, c.buf[c.r:c.w])
	c.r += n
	dst = dst[n:]
	if len(dst) > 0 && len(c.pre) > 0 {
		n = copy(dst, c.pre)
		c.pre = c.pre[n:]
		dst = dst[n:]
	}
	if len(dst) == 0 {
		return nil
	}
	_, err := io.ReadFull(c.conn, dst)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readMessage returns the next data message (opText or opBinary) with its
// payload, unmasked and inflated; fragments are joined, control frames
// handled on the way (a ping is answered, a close returns peerClose).
func (c *wsConn) readMessage(s *Session) (byte, []byte, error) {
	var msgOp byte
	var msg []byte
	var compressed bool
	max := s.srv.opts.MaxPayload
	for {
		if err := c.fill(2); err != nil {
			return 0, nil, err
		}
		b0, b1 := c.buf[c.r], c.buf[c.r+1]
		fin, op := b0&0x80 != 0, b0&0x0F
		if b1&0x80 == 0 {
			return 0, nil, errProtocol // unmasked
		}
		if rsv := b0 & 0x70; rsv != 0 {
			// Only RSV1, only with permessage-deflate, only on the first
			// frame of a message (RFC 7692, section 6).
			if rsv != 0x40 || !c.deflate || (op != opText && op != opBinary) {
				return 0, nil, errProtocol
			}
			compressed = true
			max = maxCompressed(s.srv.opts.MaxPayload)
		}
		hlen := 6
		switch b1 & 0x7F {
		case 126:
			hlen += 2
		case 127:
			hlen += 8
		}
		if err := c.fill(hlen); err != nil {
			return 0, nil, err
		}
		h := c.buf[c.r : c.r+hlen]
		c.r += hlen
		length := uint64(b1 & 0x7F)
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(h[2:]))
		case 127:
			length = binary.BigEndian.Uint64(h[2:])
		}
		var key [4]byte
		copy(key[:], h[hlen-4:])

		if op >= opClose {
			if !fin || length > 125 {
				return 0, nil, errProtocol
			}
			var p [125]byte
			payload := p[:length]
			if err := c.readFull(payload); err != nil {
				return 0, nil, err
			}
			mask(payload, key, 0)
			if err := c.control(s, op, payload); err != nil {
				return 0, nil, err
			}
			continue
		}
		switch {
		case op == opContinuation && msg == nil:
			return 0, nil, errProtocol
		case op == opText || op == opBinary:
			if msg != nil {
				return 0, nil, errProtocol
			}
			msgOp = op
		case op != opContinuation:
			return 0, nil, errProtocol
		}
		if length > uint64(max) || uint64(len(msg))+length > uint64(max) {
			return 0, nil, errTooBig
		}
		start := len(msg)
		var err error
		msg, err = c.readPayload(msg, int(length))
		if err != nil {
			return 0, nil, err
		}
		mask(msg[start:], key, 0)
		if msg == nil {
			msg = []byte{}
		}
		if fin {
			if compressed {
				if msg, err = inflateMessage(msg, s.srv.opts.MaxPayload); err != nil {
					return 0, nil, err
				}
			}
			if msgOp == opText && !utf8.Valid(msg) {
				return 0, nil, errInvalidUTF
			}
			return msgOp, msg, nil
		}
	}
}

// readPayload appends n bytes of payload to msg, growing it as data
// arrives (a client announcing a large frame does not get its memory
// before it sends it).
func (c *wsConn) readPayload(msg []byte, n int) ([]byte, error) {
	const step = 64 << 10
	for n > 0 {
		k := min(n, step)
		if cap(msg)-len(msg) < k {
			grow := k
			if n <= step {
				grow = n
			}
			msg = append(msg[:cap(msg)], make([]byte, grow)...)[:len(msg)]
		}
		start := len(msg)
		msg = msg[:start+k]
		if err := c.readFull(msg[start:]); err != nil {
			return nil, err
		}
		n -= k
	}
	return msg, nil
}

// mask XORs b with the masking key, starting at key offset pos.
func mask(b []byte, key [4]byte, pos int) {
	if len(b) >= 16 {
		var k8 [8]byte
		for i := range 8 {
			k8[i] = key[(pos+i)&3]
		}
		kw := binary.LittleEndian.Uint64(k8[:])
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^kw)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
}

// control handles a control frame.
func (c *wsConn) control(s *Session, op byte, payload []byte) error {
	switch op {
	case opPing:
		s.answerPing(c, append([]byte(nil), payload...))
		return nil
	case opPong:
		return nil
	case opClose:
		code := uint16(1000)
		if len(payload) == 1 {
			return errProtocol
		}
		if len(payload) >= 2 {
			code = binary.BigEndian.Uint16(payload)
			if !validCloseCode(code) {
				return errProtocol
			}
			if !utf8.Valid(payload[2:]) {
				return errInvalidUTF
			}
		}
		return peerClose{code}
	}
	return errProtocol
}

func validCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// answerPing answers a WebSocket ping (browsers send none; other clients
// may): through the queue once the connection is the session's transport,
// directly before.
func (s *Session) answerPing(c *wsConn, payload []byte) {
	pong := wsControl(opPong, payload)
	s.mu.Lock()
	if s.ws == c {
		s.enqueueLocked(pong)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	_ = c.writeDirect(pong, s.srv.opts.WriteTimeout)
}

// wsReadFailed ends what the reader's failure ends, and makes sure the
// connection gets closed: by the reader now, or by the flusher once the
// close frame is out.
func (s *Session) wsReadFailed(c *wsConn, err error) {
	s.mu.Lock()
	if s.probe == c || s.ws != c {
		// A probe (or a stale connection): the upgrade is off, the session
		// goes on over polling.
		if s.probe == c {
			s.abandonUpgradeLocked()
			s.rearmLocked()
		}
		s.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	var pc peerClose
	var we *wsError
	switch {
	case errors.As(err, &pc):
		if s.ended {
			// The answer to our close frame, or a close crossing it.
			break
		}
		s.endWithLocked(ReasonTransportClose, endDrop, closeFrame(pc.code))
	case errors.As(err, &we):
		s.srv.log.Debug("eio: websocket protocol error", "sid", s.id, "err", err)
		s.endWithLocked(ReasonTransportError, endDrop, closeFrame(we.code))
	default:
		// The connection failed or closed (or our close went unanswered).
		s.endLocked(ReasonTransportClose, endAbort)
		s.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	c.readerGone = true
	closeNow := c.closeSent || (s.wsClosed && !s.flushing && len(s.queue) == 0)
	s.mu.Unlock()
	if closeNow {
		_ = c.conn.Close()
	}
}

// onWSMessage handles one client message; false stops the reader.
func (s *Session) onWSMessage(c *wsConn, op byte, data []byte) bool {
	s.srv.opts.Metrics.addIn(1, len(data))
	s.mu.Lock()
	if c == s.probe {
		return s.onProbeMessage(c, op, data) // unlocks
	}
	ended := s.ended || s.ws != c
	s.mu.Unlock()
	if ended {
		return true // until the close handshake ends
	}
	if op == opBinary {
		s.deliver(data, true)
		return true
	}
	if len(data) == 0 {
		return s.stopReading(c, ReasonParseError)
	}
	switch data[0] {
	case pMessage:
		s.deliver(data[1:], false)
	case pPong:
		s.onPong()
	case pClose:
		return s.stopReading(c, ReasonTransportClose)
	case pPing:
		// Node: "invalid heartbeat direction".
		return s.stopReading(c, ReasonTransportError)
	case pOpen, pUpgrade, pNoop:
	default:
		return s.stopReading(c, ReasonParseError)
	}
	return true
}

// stopReading ends the session for reason with a close frame; the flusher
// closes the connection once it is written.
func (s *Session) stopReading(c *wsConn, reason string) bool {
	s.mu.Lock()
	s.endLocked(reason, endDrop)
	c.readerGone = true
	closeNow := c.closeSent
	s.mu.Unlock()
	if closeNow {
		_ = c.conn.Close()
	}
	return false
}

// onProbeMessage handles a message on the WebSocket being upgraded to:
// "2probe" is answered "3probe" (written before the next frame is read),
// "5" completes the upgrade, anything else abandons it. Called holding
// s.mu; unlocks it.
func (s *Session) onProbeMessage(c *wsConn, op byte, data []byte) bool {
	switch {
	case op == opText && string(data) == "2probe" && !s.probed:
		s.mu.Unlock()
		if err := c.writeDirect(probePong, s.srv.opts.WriteTimeout); err != nil {
			s.mu.Lock()
			if s.probe == c {
				s.abandonUpgradeLocked()
				s.rearmLocked()
			}
			s.mu.Unlock()
			_ = c.conn.Close()
			return false
		}
		s.mu.Lock()
		if s.probe == c {
			s.probed = true
			if s.poll != nil {
				// Ends the pending GET (with a noop if nothing is queued
				// and "5" does not come first).
				s.poll.probe = true
				s.poll.signal()
			}
		}
		s.mu.Unlock()
		return true
	case op == opText && string(data) == "5" && s.probed:
		s.probe = nil
		s.probed = false
		s.upDue = time.Time{}
		s.rearmLocked()
		s.transport = WebSocket
		s.ws = c
		if s.poll != nil {
			// A conforming client has no GET pending when it sends "5": a
			// GET still here came with or after it, and gets what any
			// polling request after the upgrade gets, 400.
			s.poll.reject = true
			s.poll.signal()
			s.poll = nil
		}
		s.kickLocked()
		s.mu.Unlock()
		return true
	}
	s.abandonUpgradeLocked()
	s.rearmLocked()
	s.mu.Unlock()
	_ = c.conn.Close()
	return false
}
