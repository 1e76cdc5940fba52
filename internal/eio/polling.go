package eio

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// upgradeNoopDelay is how long a GET that arrives during an upgrade waits
// before it is answered with a noop, as Node's 100 ms upgrade check: the
// client's "5" usually lands first, and the GET is then answered 400.
const upgradeNoopDelay = 100 * time.Millisecond

// handshakePolling opens a polling session: the GET is answered with the
// open packet (and whatever accept queued).
func (srv *Server) handshakePolling(w http.ResponseWriter, r *http.Request) {
	s, h := srv.newSession(r, Polling)
	if h == nil {
		srv.abort(w, false, codeForbidden, "")
		return
	}
	if c := srv.opts.Cookie; c != nil {
		cookie := *c
		cookie.Value = s.id
		if v := cookie.String(); v != "" {
			w.Header().Add("Set-Cookie", v)
		}
	}
	srv.addHeaders(w, r, true)
	if !srv.register(s, h, 0) && !s.lingering {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	// Closed by accept itself: the open packet, what it queued, and "1".
	s.servePoll(w, r)
}

// refuseLocked answers a polling request for a session that does not
// poll (any more): 400 TRANSPORT_MISMATCH once upgraded, unknown sid once
// ended. Called holding s.mu; when it answers, it has released it and
// reports true.
func (s *Session) refuseLocked(w http.ResponseWriter, r *http.Request) bool {
	s.expireLocked()
	switch {
	case s.transport != Polling:
		s.mu.Unlock()
		s.srv.refuse(w, r, false, codeBadRequest, "", map[string]any{"name": "TRANSPORT_MISMATCH", "transport": Polling, "previousTransport": WebSocket})
		return true
	case s.ended && !s.lingering:
		s.mu.Unlock()
		s.srv.refuse(w, r, false, codeUnknownSID, "", map[string]any{"sid": s.id})
		return true
	}
	return false
}

// servePoll answers a long-polling GET: at once with what is queued, else
// once something is (a message, a PING, the close packet), or with a noop
// during an upgrade.
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.refuseLocked(w, r) {
		return
	}
	if s.poll != nil {
		// Node: "overlap from client"; the pending GET gets the close
		// packet.
		s.endLocked(ReasonTransportError, endDrop)
		s.mu.Unlock()
		badRequest(w)
		return
	}
	p := &pollWait{ready: make(chan struct{})}
	s.poll = p
	if len(s.queue) > 0 || s.ended {
		p.signal()
	}
	upgrading := s.probed
	ready := p.ready
	s.mu.Unlock()

	for {
		var noop <-chan time.Time
		if upgrading {
			t := time.NewTimer(upgradeNoopDelay)
			defer t.Stop()
			noop = t.C
		}
		select {
		case <-ready:
		case <-r.Context().Done():
		case <-noop:
		}
		s.mu.Lock()
		if p.probe && !upgrading && !p.reject && len(s.queue) == 0 && !s.ended && r.Context().Err() == nil {
			// Woken by the probe: as Node's 100 ms upgrade check, the
			// client's "5" gets that long to come (the GET is then
			// answered 400) before the noop.
			p.probe = false
			p.signaled = false
			p.ready = make(chan struct{})
			ready = p.ready
			upgrading = true
			s.mu.Unlock()
			continue
		}
		break
	}
	if s.poll == p {
		s.poll = nil
	}
	if p.reject {
		s.mu.Unlock()
		s.srv.abort(w, false, codeBadRequest, "")
		return
	}
	if r.Context().Err() != nil {
		// Node: "poll connection closed prematurely".
		s.endLocked(ReasonTransportError, endDrop)
		s.mu.Unlock()
		return
	}
	batch := s.queue
	s.queue = nil
	if s.ended && s.final != nil {
		batch = append(batch, s.final)
		s.final = nil
		s.finishLingerLocked()
	}
	if len(batch) == 0 {
		batch = append(batch, noopPacket)
	}
	s.mu.Unlock()

	err := s.writePayload(w, r, batch)
	s.mu.Lock()
	for _, m := range batch {
		if m != noopPacket && m != closePacket {
			s.queued -= m.size()
		}
	}
	if err != nil {
		s.endLocked(ReasonTransportError, endDrop)
	}
	s.mu.Unlock()
}

// writePayload writes batch as one polling payload: packets joined by
// \x1e, compressed when large enough and the client accepts it.
func (s *Session) writePayload(w http.ResponseWriter, r *http.Request, batch []*Message) error {
	n := len(batch) - 1
	for _, m := range batch {
		n += len(m.pollForm())
	}
	bp := getBuffer(n)
	buf := (*bp)[:0]
	for i, m := range batch {
		if i > 0 {
			buf = append(buf, 0x1e)
		}
		buf = append(buf, m.pollForm()...)
	}
	*bp = buf
	defer putBuffer(bp)

	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout))
	if enc := s.compression(r, len(buf)); enc != "" {
		h.Set("Content-Encoding", enc)
		w.WriteHeader(http.StatusOK)
		if err := compress(w, enc, buf); err != nil {
			return err
		}
		return rc.Flush()
	}
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(len(buf))
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}

// compression picks Node's encoding for a response of n bytes: gzip or
// deflate, whichever the client prefers, for n ≥ the threshold.
func (s *Session) compression(r *http.Request, n int) string {
	if s.srv.opts.DisableHTTPCompression || n < s.srv.opts.CompressionThreshold {
		return ""
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
			continue
		}
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "gzip", "deflate":
			return name
		}
	}
	return ""
}

var (
	gzipWriters  sync.Pool
	flateWriters sync.Pool
)

// compress writes buf to w through a pooled compressor.
func compress(w io.Writer, enc string, buf []byte) error {
	if enc == "gzip" {
		zw, _ := gzipWriters.Get().(*gzip.Writer)
		if zw == nil {
			zw = gzip.NewWriter(w)
		} else {
			zw.Reset(w)
		}
		defer gzipWriters.Put(zw)
		if _, err := zw.Write(buf); err != nil {
			return err
		}
		return zw.Close()
	}
	fw, _ := flateWriters.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(w, flate.DefaultCompression)
	} else {
		fw.Reset(w)
	}
	defer flateWriters.Put(fw)
	if _, err := fw.Write(buf); err != nil {
		return err
	}
	return fw.Close()
}

// Buffers for polling payloads and WebSocket batches: held only while a
// response or a flush is written, so idle sessions hold none.
const maxPooledBuffer = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuffer(n int) *[]byte {
	if n > maxPooledBuffer {
		b := make([]byte, 0, n)
		return &b
	}
	bp := buffers.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, 0, n)
	}
	return bp
}

func putBuffer(bp *[]byte) {
	if cap(*bp) <= maxPooledBuffer {
		*bp = (*bp)[:0]
		buffers.Put(bp)
	}
}

// servePost reads a POST's payload and hands its packets to the session.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.refuseLocked(w, r) {
		return
	}
	if s.posting {
		// Node: "data request overlap from client".
		s.endLocked(ReasonTransportError, endDrop)
		s.mu.Unlock()
		badRequest(w)
		return
	}
	s.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.posting = false
		s.mu.Unlock()
	}()

	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// Node: "invalid content" (binary bodies are Engine.IO v3).
		s.fail(ReasonTransportError)
		badRequest(w)
		return
	}
	max := s.srv.opts.MaxPayload
	if r.ContentLength > max {
		s.fail(ReasonTransportError)
		tooLarge(w)
		return
	}
	// The body must arrive within ReadTimeout: a stalled one would hold
	// this goroutine, and the session's POST slot, indefinitely.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.srv.opts.ReadTimeout))
	body, err := readBody(r.Body, r.ContentLength, max)
	if errors.Is(err, errTooLarge) {
		s.fail(ReasonTransportError)
		tooLarge(w)
		return
	}
	if err != nil {
		// Node: "data request connection closed prematurely". What is
		// left of the body is not read: the connection is closed after the
		// answer (net/http would otherwise read up to 256 KiB more of it
		// before answering).
		s.fail(ReasonTransportError)
		w.Header().Set("Connection", "close")
		badRequest(w)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	if !s.onPayload(body) {
		s.srv.abort(w, false, codeBadRequest, "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

// fail ends the session for reason, if it is open.
func (s *Session) fail(reason string) {
	s.mu.Lock()
	s.endLocked(reason, endDrop)
	s.mu.Unlock()
}

func tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
}

var errTooLarge = errors.New("eio: body over MaxPayload")

// readBody reads a body of at most max bytes.
func readBody(body io.Reader, length, max int64) ([]byte, error) {
	size := length
	if size < 0 || size > 4096 {
		size = 4096
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	n, err := buf.ReadFrom(io.LimitReader(body, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// onPayload handles the packets of a POST body in order. It reports false
// for an invalid payload: the packets before the bad one were handled, the
// session is closed ("parse error").
func (s *Session) onPayload(body []byte) bool {
	packets := 0
	for len(body) > 0 || packets == 0 {
		p := body
		if i := bytes.IndexByte(body, 0x1e); i >= 0 {
			p, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		packets++
		if !s.onPollPacket(p) {
			return false
		}
	}
	return true
}

// onPollPacket handles one packet of a POST payload.
func (s *Session) onPollPacket(p []byte) bool {
	s.srv.opts.Metrics.addIn(1, len(p))
	if len(p) == 0 {
		// Node decodes "" as an open packet, which it ignores.
		return true
	}
	switch p[0] {
	case pMessage:
		data := p[1:]
		if !utf8.Valid(data) {
			// Node decodes the body as UTF-8, replacing what is invalid
			// as the WHATWG decoder does.
			data = replaceInvalidUTF8(data)
		}
		s.deliver(data, false)
	case 'b':
		data, err := base64.StdEncoding.DecodeString(string(p[1:]))
		if err != nil {
			s.fail(ReasonParseError)
			return false
		}
		s.deliver(data, true)
	case pPong:
		s.onPong()
	case pClose:
		s.fail(ReasonTransportClose)
	case pPing:
		// Node: "invalid heartbeat direction".
		s.fail(ReasonTransportError)
	case pOpen, pUpgrade, pNoop:
	default:
		s.fail(ReasonParseError)
		return false
	}
	return true
}

// testHookWrite, set by tests, is called with the size of every write to a
// client: one per WebSocket flush, one per polling response.
var testHookWrite atomic.Pointer[func(n int)]
