package eio

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestHandshakePolling(t *testing.T) {
	h := newHarness(t, Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}, false)
	r := h.do("GET", "EIO=4&transport=polling", "")
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Fatalf("handshake: %d %q", r.status, r.header.Get("Content-Type"))
	}
	o := parseOpen(t, r.body)
	if len(o.SID) != 20 || strings.ContainsAny(o.SID, "+/=") {
		t.Errorf("sid %q: want 20 base64url characters", o.SID)
	}
	if len(o.Upgrades) != 1 || o.Upgrades[0] != "websocket" || o.PingInterval != 300 || o.PingTimeout != 200 || o.MaxPayload != 1_000_000 {
		t.Errorf("open packet %+v", o)
	}
	for _, k := range []string{`"sid"`, `"upgrades"`, `"pingInterval"`, `"pingTimeout"`, `"maxPayload"`} {
		if strings.Count(r.body, k) != 1 {
			t.Errorf("open packet %s: key %s", r.body, k)
		}
	}
	rec := h.next()
	if rec.s.ID() != o.SID || rec.s.Transport() != Polling || h.srv.Count() != 1 {
		t.Errorf("session %s %s, count %d", rec.s.ID(), rec.s.Transport(), h.srv.Count())
	}
	hs := rec.s.Handshake()
	if hs.Transport != Polling || hs.Query.Get("EIO") != "4" || hs.Header.Get("User-Agent") == "" || hs.RemoteAddr == "" || hs.Secure || !strings.HasPrefix(hs.URL, "/engine.io/?") {
		t.Errorf("handshake %+v", hs)
	}
	// DisableUpgrades: no upgrade offered.
	h2 := newHarness(t, Options{DisableUpgrades: true}, false)
	if o := parseOpen(t, h2.do("GET", "EIO=4&transport=polling", "").body); len(o.Upgrades) != 0 {
		t.Errorf("upgrades %v with DisableUpgrades", o.Upgrades)
	}
}

func TestHandshakeWebSocket(t *testing.T) {
	h := newHarness(t, Options{}, true)
	c, o := h.dialWS()
	if len(o.SID) != 20 || len(o.Upgrades) != 0 || o.PingInterval != 25000 || o.PingTimeout != 20000 {
		t.Errorf("open packet %+v", o)
	}
	rec := h.next()
	if rec.s.Transport() != WebSocket || rec.s.Handshake().Transport != WebSocket {
		t.Errorf("transport %s", rec.s.Transport())
	}
	send(t, c, "4hello")
	if got := readText(t, c); got != "4hello" {
		t.Errorf("echo %q", got)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if mt, b := readFrame(t, c); mt != websocket.BinaryMessage || !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Errorf("binary echo %d %v", mt, b)
	}
}

func TestErrorCodes(t *testing.T) {
	refuse := errors.New("no thanks")
	h := newHarness(t, Options{AllowRequest: func(r *http.Request) error {
		if r.URL.Query().Get("refuse") != "" {
			return refuse
		}
		return nil
	}}, false)
	sid := h.openPolling()
	cases := []struct {
		method, query string
		status        int
		body          string
	}{
		{"GET", "EIO=3&transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"GET", "transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"GET", "EIO=4", 400, `{"code":0,"message":"Transport unknown"}`},
		{"GET", "EIO=4&transport=tobi", 400, `{"code":0,"message":"Transport unknown"}`},
		{"GET", "EIO=4&transport=polling&sid=abcdefghijklmnopqrst", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"POST", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"PUT", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"GET", "EIO=4&transport=polling&refuse=1", 403, `{"code":4,"message":"no thanks"}`},
		{"GET", "EIO=4&transport=websocket", 400, `{"code":3,"message":"Bad request"}`},
		{"GET", "EIO=4&transport=polling&j=0", 400, `{"code":3,"message":"Bad request"}`},
		{"GET", "EIO=4&transport=websocket&sid=" + sid, 400, `{"code":3,"message":"Bad request"}`},
	}
	for _, c := range cases {
		r := h.do(c.method, c.query, "")
		if r.status != c.status || r.body != c.body || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s ?%s = %d %s (%s), want %d %s", c.method, c.query, r.status, r.body, r.header.Get("Content-Type"), c.status, c.body)
		}
	}
	// Over WebSocket, Node's abortUpgrade: 400, the message as text/html.
	_, resp, err := websocket.DefaultDialer.Dial(h.wsURL("EIO=3&transport=websocket"), nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("EIO=3 over websocket: %v %v", err, resp)
	} else {
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "Unsupported protocol version" {
			t.Errorf("EIO=3 over websocket: body %q", b)
		}
	}
	if _, resp, err := websocket.DefaultDialer.Dial(h.wsURL("EIO=4&transport=websocket&refuse=1"), nil); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("refused websocket: %v %v", err, resp)
	}
	if h.srv.Count() != 1 {
		t.Errorf("Count %d, want 1", h.srv.Count())
	}
}

func TestAcceptNilRefuses(t *testing.T) {
	srv, err := NewServer(Options{}, func(*Session) Handler { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	w := newRecorderWriter()
	srv.ServeHTTP(w, httpReq("GET", "/engine.io/?EIO=4&transport=polling"))
	if w.code != 403 || w.buf.String() != `{"code":4,"message":"Forbidden"}` || srv.Count() != 0 {
		t.Errorf("refused handshake: %d %s", w.code, w.buf.String())
	}
}

func TestInvalidOptions(t *testing.T) {
	ok := func(*Session) Handler { return nil }
	for _, o := range []Options{{PingInterval: -1}, {Transports: []string{"webtransport"}}, {MaxPayload: -1}} {
		if _, err := NewServer(o, ok); err == nil {
			t.Errorf("NewServer(%+v): no error", o)
		}
	}
	if _, err := NewServer(Options{}, nil); err == nil {
		t.Error("nil accept: no error")
	}
	h := newHarness(t, Options{Transports: []string{WebSocket}}, false)
	if r := h.do("GET", "EIO=4&transport=polling", ""); r.status != 400 || !strings.Contains(r.body, `"code":0`) {
		t.Errorf("polling when only websocket is allowed: %d %s", r.status, r.body)
	}
}

func TestPollingPayloads(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	if r := h.post(sid, "4hello\x1e4wor\u00e9ld\x1ebAQIDBA=="); r.status != 200 || r.body != "ok" || r.header.Get("Content-Type") != "text/html" {
		t.Fatalf("POST: %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	for _, want := range []rmsg{{"hello", false}, {"wor\u00e9ld", false}, {"\x01\x02\x03\x04", true}} {
		if got := rec.wait(t); got != want {
			t.Errorf("message %+v, want %+v", got, want)
		}
	}
	if err := rec.s.Send(TextMessage([]byte("a")), BinaryMessage([]byte{1, 2, 3}), TextMessage([]byte("\u00e9"))); err != nil {
		t.Fatal(err)
	}
	if r := h.get(sid); r.status != 200 || r.body != "4a\x1ebAQID\x1e4\u00e9" {
		t.Errorf("GET: %d %q", r.status, r.body)
	}
	// A GET waits for a Send.
	done := make(chan response, 1)
	go func() { done <- h.get(sid) }()
	eventually(t, "the GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	_ = rec.s.Send(TextMessage([]byte("later")))
	if r := <-done; r.body != "4later" {
		t.Errorf("pending GET: %q", r.body)
	}
	// Invalid UTF-8 over polling is replaced, as Node's decoding does.
	h.post(sid, "4a\xffb")
	if got := rec.wait(t); got.data != "a\uFFFDb" {
		t.Errorf("invalid UTF-8 over polling: %q", got.data)
	}
}

func TestPollingInvalidPacketClosesSession(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	if r := h.post(sid, "4before\x1eabc\x1e4after"); r.status != 400 {
		t.Errorf("invalid payload: %d", r.status)
	}
	if got := rec.wait(t); got.data != "before" {
		t.Errorf("message before the bad packet: %q", got.data)
	}
	if reason := rec.waitClose(t); reason != ReasonParseError {
		t.Errorf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 400 || !strings.Contains(r.body, `"code":1`) {
		t.Errorf("GET after: %d %s", r.status, r.body)
	}
	select {
	case m := <-rec.msgs:
		t.Errorf("message after the bad packet: %+v", m)
	default:
	}
}

func TestConcurrentGetClosesSession(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	first := make(chan response, 1)
	go func() { first <- h.get(sid) }()
	eventually(t, "the first GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	if r := h.get(sid); r.status != 400 {
		t.Errorf("second GET: %d", r.status)
	}
	if r := <-first; r.status != 200 || r.body != "1" {
		t.Errorf("first GET: %d %q", r.status, r.body)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportError {
		t.Errorf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 400 {
		t.Errorf("GET after: %d", r.status)
	}
}

func TestPostOverMaxPayload(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 100}, false)
	for _, chunked := range []bool{false, true} {
		sid := h.openPolling()
		rec := h.next()
		body := "4" + strings.Repeat("x", 100)
		req, _ := http.NewRequest("POST", h.url+"?EIO=4&transport=polling&sid="+sid, strings.NewReader(body))
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(body))
			req.TransferEncoding = []string{"chunked"}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked=%v: %d, want 413", chunked, resp.StatusCode)
		}
		if reason := rec.waitClose(t); reason != ReasonTransportError {
			t.Errorf("chunked=%v: reason %q", chunked, reason)
		}
		// At the limit: accepted.
		sid = h.openPolling()
		rec = h.next()
		if r := h.post(sid, body[:100]); r.status != 200 {
			t.Errorf("body of MaxPayload bytes: %d", r.status)
		}
		if got := rec.wait(t); len(got.data) != 99 {
			t.Errorf("message of %d bytes", len(got.data))
		}
	}
}

func TestConcurrentPostClosesSession(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	// A POST whose body never ends holds the session's POST.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", h.url+"?EIO=4&transport=polling&sid="+sid, pr)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	_, _ = pw.Write([]byte("4a"))
	eventually(t, "the first POST in progress", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.posting
	})
	if r := h.post(sid, "4b"); r.status != 400 {
		t.Errorf("second POST: %d", r.status)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportError {
		t.Errorf("reason %q", reason)
	}
}

func TestClientCloseOverPolling(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	pending := make(chan response, 1)
	go func() { pending <- h.get(sid) }()
	eventually(t, "the GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	if r := h.post(sid, "1"); r.status != 200 {
		t.Errorf("POST 1: %d", r.status)
	}
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Errorf("pending GET: %d %q, want 6", r.status, r.body)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 400 {
		t.Errorf("GET after: %d", r.status)
	}
	// The close packet first, the GET sent alongside it just after: the GET
	// gets the noop, the next one 400.
	sid = h.openPolling()
	rec = h.next()
	if r := h.post(sid, "1"); r.status != 200 {
		t.Errorf("POST 1: %d", r.status)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 200 || r.body != "6" {
		t.Errorf("GET racing the close packet: %d %q, want 6", r.status, r.body)
	}
	if r := h.get(sid); r.status != 400 {
		t.Errorf("GET after: %d", r.status)
	}
}

func TestClientCloseOverWebSocket(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, _ := h.dialWS()
	rec := h.next()
	send(t, c, "1")
	if code := readClose(t, c); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("reason %q", reason)
	}
	// A close frame from the client: echoed, "transport close".
	c2, _ := h.dialWS()
	rec2 := h.next()
	_ = c2.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"))
	if code := readClose(t, c2); code != 4001 {
		t.Errorf("echoed close code %d", code)
	}
	if reason := rec2.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("reason %q", reason)
	}
	// The TCP connection going away: "transport close".
	c3, _ := h.dialWS()
	rec3 := h.next()
	c3.NetConn().Close()
	if reason := rec3.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("reason %q", reason)
	}
	eventually(t, "no session left", func() bool { return h.srv.Count() == 0 })
}

func TestWebSocketParseError(t *testing.T) {
	h := newHarness(t, Options{}, false)
	for _, bad := range []string{"abc", "", "2"} {
		c, _ := h.dialWS()
		rec := h.next()
		send(t, c, bad)
		readClose(t, c)
		want := ReasonParseError
		if bad == "2" {
			want = ReasonTransportError // Node: invalid heartbeat direction
		}
		if reason := rec.waitClose(t); reason != want {
			t.Errorf("%q: reason %q, want %q", bad, reason, want)
		}
	}
}

func TestInvalidUTF8ClosesWebSocket(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, _ := h.dialWS()
	rec := h.next()
	if err := c.WriteMessage(websocket.TextMessage, []byte("4\xff\xfe")); err != nil {
		t.Fatal(err)
	}
	if code := readClose(t, c); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("close code %d, want 1007", code)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportError {
		t.Errorf("reason %q", reason)
	}
	select {
	case m := <-rec.msgs:
		t.Errorf("invalid message delivered: %+v", m)
	default:
	}
}

func TestMaxPayloadOverWebSocket(t *testing.T) {
	h := newHarness(t, Options{MaxPayload: 1000}, true)
	c, o := h.dialWS()
	if o.MaxPayload != 1000 {
		t.Errorf("maxPayload %d", o.MaxPayload)
	}
	rec := h.next()
	send(t, c, "4"+strings.Repeat("a", 999)) // exactly MaxPayload: fine
	if got := readText(t, c); len(got) != 1000 {
		t.Errorf("echo of %d bytes", len(got))
	}
	// Fragments are counted together.
	w, _ := c.NextWriter(websocket.TextMessage)
	_, _ = w.Write([]byte("4" + strings.Repeat("b", 600)))
	_, _ = w.Write([]byte(strings.Repeat("b", 600)))
	_ = w.Close()
	if code := readClose(t, c); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
	if reason := rec.waitClose(t); reason != ReasonTransportError {
		t.Errorf("reason %q", reason)
	}
}

func TestFragmentedAndControlFrames(t *testing.T) {
	h := newHarness(t, Options{}, true)
	c, _ := h.dialWS()
	h.next()
	// gorilla writes a message in several frames when flushed in pieces;
	// a ping between fragments is answered.
	pongs := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pongs <- s; return nil })
	w, _ := c.NextWriter(websocket.TextMessage)
	_, _ = w.Write([]byte("4frag"))
	_ = c.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
	_, _ = w.Write([]byte("mented"))
	_ = w.Close()
	if got := readText(t, c); got != "4fragmented" {
		t.Errorf("reassembled %q", got)
	}
	select {
	case p := <-pongs:
		if p != "hi" {
			t.Errorf("pong %q", p)
		}
	case <-time.After(testTimeout):
		t.Error("no pong")
	}
	// A large message (over the reader's buffer, 64-bit length).
	big := "4" + strings.Repeat("z", 70000)
	send(t, c, big)
	if got := readText(t, c); got != big {
		t.Errorf("large echo: %d bytes", len(got))
	}
}

func TestHeartbeat(t *testing.T) {
	// The timeout leaves the client seconds to answer on a loaded machine;
	// the interval is short, so that several rounds go fast.
	opts := Options{PingInterval: 50 * time.Millisecond, PingTimeout: 3 * time.Second}
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, opts, false)
		c, _ := h.dialWS()
		rec := h.next()
		for i := 0; i < 5; i++ {
			if got := readText(t, c); got != "2" {
				t.Fatalf("got %q, want ping", got)
			}
			send(t, c, "3")
		}
		select {
		case reason := <-rec.closed:
			t.Fatalf("closed (%s) though it answered", reason)
		default:
		}
		// No answer: "ping timeout" (other packets do not count).
		if got := readText(t, c); got != "2" {
			t.Fatalf("got %q, want ping", got)
		}
		send(t, c, "4not a pong")
		if reason := rec.waitClose(t); reason != ReasonPingTimeout {
			t.Errorf("reason %q", reason)
		}
		readClose(t, c)
	})
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, opts, false)
		sid := h.openPolling()
		rec := h.next()
		for i := 0; i < 3; i++ {
			if r := h.get(sid); r.body != "2" {
				t.Fatalf("got %q, want ping", r.body)
			}
			if r := h.post(sid, "3"); r.status != 200 {
				t.Fatal(r.status)
			}
		}
		if r := h.get(sid); r.body != "2" {
			t.Fatalf("got %q, want ping", r.body)
		}
		if reason := rec.waitClose(t); reason != ReasonPingTimeout {
			t.Errorf("reason %q", reason)
		}
		if r := h.get(sid); r.status != 400 {
			t.Errorf("GET after the timeout: %d", r.status)
		}
	})
}

// The pong deadline is armed before the PING is queued: a PONG handled
// right after the PING leaves no deadline behind.
func TestPongDeadlineArmedBeforePing(t *testing.T) {
	h := newHarness(t, Options{PingInterval: time.Hour, PingTimeout: time.Hour}, false)
	c, _ := h.dialWS()
	rec := h.next()
	s := rec.s
	s.mu.Lock()
	s.hbDue = time.Now()
	s.rearmLocked()
	s.mu.Unlock()
	if got := readText(t, c); got != "2" {
		t.Fatalf("got %q", got)
	}
	s.mu.Lock()
	armed := s.awaitPong
	s.mu.Unlock()
	if !armed {
		t.Fatal("PING written with no pong deadline armed")
	}
	send(t, c, "3")
	eventually(t, "the PONG handled", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.awaitPong && s.hbDue.After(time.Now().Add(30*time.Minute))
	})
}

func TestUpgrade(t *testing.T) {
	h := newHarness(t, Options{}, true)
	sid := h.openPolling()
	rec := h.next()
	// Messages before the upgrade come over polling.
	h.post(sid, "4one")
	if r := h.get(sid); r.body != "4one" {
		t.Fatalf("polling echo %q", r.body)
	}
	pending := make(chan response, 1)
	go func() { pending <- h.get(sid) }()
	eventually(t, "the GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	c := h.dial("EIO=4&transport=websocket&sid=" + sid)
	send(t, c, "2probe")
	if got := readText(t, c); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Errorf("pending GET during the upgrade: %d %q, want noop", r.status, r.body)
	}
	// A GET during the upgrade gets a noop too.
	if r := h.get(sid); r.status != 200 || r.body != "6" {
		t.Errorf("GET during the upgrade: %d %q", r.status, r.body)
	}
	// Sent during the upgrade with no GET pending: delivered over
	// WebSocket after the switch, in order.
	_ = rec.s.Send(TextMessage([]byte("a")))
	_ = rec.s.Send(TextMessage([]byte("b")))
	send(t, c, "5")
	if got := readText(t, c); got != "4a" {
		t.Errorf("first after the switch %q", got)
	}
	if got := readText(t, c); got != "4b" {
		t.Errorf("second after the switch %q", got)
	}
	send(t, c, "4hello")
	if got := readText(t, c); got != "4hello" {
		t.Errorf("echo over websocket %q", got)
	}
	if rec.s.Transport() != WebSocket {
		t.Errorf("transport %s", rec.s.Transport())
	}
	// Polling after the upgrade: 400 code 3.
	if r := h.get(sid); r.status != 400 || r.body != `{"code":3,"message":"Bad request"}` {
		t.Errorf("GET after the upgrade: %d %s", r.status, r.body)
	}
	if r := h.post(sid, "4x"); r.status != 400 {
		t.Errorf("POST after the upgrade: %d", r.status)
	}
	// A second WebSocket with the sid: accepted and closed, as Node does.
	c2 := h.dial("EIO=4&transport=websocket&sid=" + sid)
	if code := readClose(t, c2); code != websocket.CloseNormalClosure {
		t.Errorf("second websocket: close code %d", code)
	}
	send(t, c, "4still")
	if got := readText(t, c); got != "4still" {
		t.Errorf("echo %q", got)
	}
}

// "2probe" and "5" sent together, then a GET: the suites' "ignores HTTP
// requests with same sid after upgrade".
func TestPollAfterQuickUpgrade(t *testing.T) {
	h := newHarness(t, Options{}, true)
	sid := h.openPolling()
	h.next()
	c := h.dial("EIO=4&transport=websocket&sid=" + sid)
	send(t, c, "2probe")
	send(t, c, "5")
	if got := readText(t, c); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	eventually(t, "the switch", func() bool { return h.session(sid).Transport() == WebSocket })
	if r := h.get(sid); r.status != 400 {
		t.Errorf("GET after the upgrade: %d", r.status)
	}
	send(t, c, "4hello")
	if got := readText(t, c); got != "4hello" {
		t.Errorf("echo %q", got)
	}
}

func TestUpgradeTimeoutAndAbandon(t *testing.T) {
	h := newHarness(t, Options{UpgradeTimeout: 50 * time.Millisecond}, true)
	sid := h.openPolling()
	rec := h.next()
	c := h.dial("EIO=4&transport=websocket&sid=" + sid)
	readClose(t, c) // never upgraded: closed by the upgrade timeout
	// The session goes on over polling, and may upgrade again.
	h.post(sid, "4p")
	if r := h.get(sid); r.body != "4p" {
		t.Errorf("polling after the abandoned upgrade: %q", r.body)
	}
	c2 := h.dial("EIO=4&transport=websocket&sid=" + sid)
	send(t, c2, "4early") // not a probe: the upgrade is abandoned
	readClose(t, c2)
	if rec.s.Transport() != Polling {
		t.Errorf("transport %s", rec.s.Transport())
	}
	select {
	case reason := <-rec.closed:
		t.Errorf("session closed: %s", reason)
	default:
	}
}

func TestSessionCloseWebSocket(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, _ := h.dialWS()
	rec := h.next()
	_ = rec.s.Send(TextMessage([]byte("last1")), TextMessage([]byte("last2")))
	rec.s.Close()
	if err := rec.s.Send(TextMessage([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if readText(t, c) != "4last1" || readText(t, c) != "4last2" {
		t.Error("queued messages not written before the close")
	}
	if code := readClose(t, c); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	if reason := rec.waitClose(t); reason != ReasonForcedClose {
		t.Errorf("reason %q", reason)
	}
	select {
	case <-rec.s.Closed():
	default:
		t.Error("Closed() not closed")
	}
}

func TestSessionClosePolling(t *testing.T) {
	h := newHarness(t, Options{}, false)
	// With no GET pending: the next GET gets what is queued and "1".
	sid := h.openPolling()
	rec := h.next()
	_ = rec.s.Send(TextMessage([]byte("bye")))
	rec.s.Close()
	if reason := rec.waitClose(t); reason != ReasonForcedClose {
		t.Errorf("reason %q", reason)
	}
	if r := h.get(sid); r.status != 200 || r.body != "4bye\x1e1" {
		t.Errorf("GET after Close: %d %q", r.status, r.body)
	}
	if r := h.get(sid); r.status != 400 {
		t.Errorf("second GET after Close: %d", r.status)
	}
	// With a GET pending: it gets "1".
	sid = h.openPolling()
	rec = h.next()
	pending := make(chan response, 1)
	go func() { pending <- h.get(sid) }()
	eventually(t, "the GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	rec.s.Close()
	if r := <-pending; r.body != "1" {
		t.Errorf("pending GET: %q", r.body)
	}
	if h.srv.Count() != 0 {
		t.Errorf("Count %d", h.srv.Count())
	}
}

func TestHandlerPanicClosesSession(t *testing.T) {
	h := newHarness(t, Options{}, false)
	h.onMsg = func(r *recorder, data []byte, binary bool) {
		if string(data) == "boom" {
			panic("boom")
		}
	}
	c, _ := h.dialWS()
	rec := h.next()
	send(t, c, "4boom")
	if reason := rec.waitClose(t); reason != ReasonTransportError {
		t.Errorf("reason %q", reason)
	}
	readClose(t, c)
}

func TestOnMessageNeverConcurrentAndOnCloseLast(t *testing.T) {
	h := newHarness(t, Options{}, false)
	var mu sync.Mutex
	inside := 0
	bad := false
	h.onMsg = func(r *recorder, data []byte, binary bool) {
		mu.Lock()
		inside++
		if inside > 1 {
			bad = true
		}
		mu.Unlock()
		if string(data) == "close" {
			r.s.Close() // from inside OnMessage: OnClose comes after it returns
		}
		time.Sleep(time.Millisecond)
		mu.Lock()
		inside--
		mu.Unlock()
	}
	c, _ := h.dialWS()
	rec := h.next()
	for i := 0; i < 20; i++ {
		send(t, c, "4m")
	}
	send(t, c, "4close")
	send(t, c, "4after")
	if reason := rec.waitClose(t); reason != ReasonForcedClose {
		t.Errorf("reason %q", reason)
	}
	n := 0
	for len(rec.msgs) > 0 {
		m := <-rec.msgs
		n++
		if m.data == "after" {
			t.Error("message delivered after Close")
		}
	}
	if n != 21 || bad {
		t.Errorf("%d messages, concurrent: %v", n, bad)
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t, Options{AllowOrigin: func(o string) bool { return o == "https://ok.example" }, AllowCredentials: true}, false)
	r := h.do("GET", "EIO=4&transport=polling", "", "Origin", "https://ok.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://ok.example" || r.header.Get("Access-Control-Allow-Credentials") != "true" || r.header.Get("Vary") != "Origin" {
		t.Errorf("allowed origin: %v", r.header)
	}
	r = h.do("GET", "EIO=4&transport=polling", "", "Origin", "https://evil.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("refused origin got %v", r.header)
	}
	r = h.do("OPTIONS", "EIO=4&transport=polling", "", "Origin", "https://ok.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://ok.example" || r.header.Get("Access-Control-Allow-Headers") != "content-type" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	// Errors carry the headers too.
	r = h.do("GET", "EIO=3&transport=polling", "", "Origin", "https://ok.example")
	if r.status != 400 || r.header.Get("Access-Control-Allow-Origin") != "https://ok.example" {
		t.Errorf("error answer: %d %v", r.status, r.header)
	}
}

func TestCompression(t *testing.T) {
	h := newHarness(t, Options{}, false)
	sid := h.openPolling()
	rec := h.next()
	big := strings.Repeat("abc", 1000)
	_ = rec.s.Send(TextMessage([]byte(big)))
	req, _ := http.NewRequest("GET", h.url+"?EIO=4&transport=polling&sid="+sid, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if string(b) != "4"+big {
		t.Errorf("decompressed %d bytes", len(b))
	}
	// Off: plain.
	h2 := newHarness(t, Options{DisableHTTPCompression: true}, false)
	sid = h2.openPolling()
	rec = h2.next()
	_ = rec.s.Send(TextMessage([]byte(big)))
	req, _ = http.NewRequest("GET", h2.url+"?EIO=4&transport=polling&sid="+sid, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp2, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.Header.Get("Content-Encoding") != "" {
		t.Errorf("compressed with DisableHTTPCompression")
	}
}

func TestServerCloseRefusesAndClosesEverything(t *testing.T) {
	before := goroutines()
	h := newHarness(t, Options{}, true)
	var conns []*websocket.Conn
	var recs []*recorder
	for i := 0; i < 5; i++ {
		c, _ := h.dialWS()
		conns = append(conns, c)
		recs = append(recs, h.next())
	}
	sid := h.openPolling()
	precs := h.next()
	pending := make(chan response, 1)
	go func() { pending <- h.get(sid) }()
	eventually(t, "the GET pending", func() bool {
		s := h.session(sid)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.poll != nil
	})
	// An upgrade in progress too.
	sid2 := h.openPolling()
	h.next()
	probe := h.dial("EIO=4&transport=websocket&sid=" + sid2)
	send(t, probe, "2probe")
	readText(t, probe)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if code := readClose(t, c); code != websocket.CloseGoingAway {
			t.Errorf("close code %d", code)
		}
	}
	for _, r := range recs {
		if reason := r.waitClose(t); reason != ReasonForcedClose {
			t.Errorf("reason %q", reason)
		}
	}
	if reason := precs.waitClose(t); reason != ReasonForcedClose {
		t.Errorf("reason %q", reason)
	}
	if r := <-pending; r.body != "1" {
		t.Errorf("pending GET: %q", r.body)
	}
	if r := h.do("GET", "EIO=4&transport=polling", ""); r.status != 503 {
		t.Errorf("after Close: %d", r.status)
	}
	if h.srv.Count() != 0 {
		t.Errorf("Count %d", h.srv.Count())
	}
	for _, c := range conns {
		c.Close()
	}
	probe.Close()
	h.hs.Close()
	http.DefaultClient.CloseIdleConnections()
	noLeak(t, before)
}

func TestOneWritePerFlush(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, _ := h.dialWS()
	rec := h.next()
	var mu sync.Mutex
	var writes []int
	hold := make(chan struct{})
	entered := make(chan struct{}, 10)
	setWriteHook(t, func(n int) {
		mu.Lock()
		writes = append(writes, n)
		first := len(writes) == 1
		mu.Unlock()
		if first {
			entered <- struct{}{}
			<-hold
		}
	})
	// One Send of three messages: one write.
	_ = rec.s.Send(TextMessage([]byte("a")), TextMessage([]byte("b")), BinaryMessage([]byte{1}))
	<-entered
	// Sends while that write is held: all in the next write.
	shared := TextMessage([]byte("shared"))
	for i := 0; i < 10; i++ {
		_ = rec.s.Send(shared)
	}
	close(hold)
	want := []string{"4a", "4b", "\x01"}
	for range 10 {
		want = append(want, "4shared")
	}
	for _, w := range want {
		_, b := readFrame(t, c)
		if string(b) != w {
			t.Fatalf("frame %q, want %q", b, w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 2 || writes[0] != 4+4+3 || writes[1] != 10*(2+7) {
		t.Errorf("writes %v, want [11 90]", writes)
	}
}

func TestMessageSharedAndEncodedOnce(t *testing.T) {
	m := TextMessage([]byte("hi"))
	f1, f2 := m.wsFrame(), m.wsFrame()
	if &f1[0] != &f2[0] || string(f1) != "\x81\x034hi" {
		t.Errorf("frame %q built twice or wrong", f1)
	}
	if string(m.pollForm()) != "4hi" || string(BinaryMessage([]byte{1, 2, 3, 4}).pollForm()) != "bAQIDBA==" {
		t.Error("polling forms")
	}
	big := BinaryMessage(make([]byte, 70000)).wsFrame()
	if big[0] != 0x82 || big[1] != 127 || len(big) != 70000+10 {
		t.Errorf("64-bit frame header % x", big[:10])
	}
	mid := TextMessage(make([]byte, 300)).wsFrame()
	if mid[1] != 126 || len(mid) != 301+4 {
		t.Errorf("16-bit frame header % x", mid[:4])
	}
}

func TestSlowConsumer(t *testing.T) {
	const bound = 256 << 10
	h := newHarness(t, Options{MaxBufferedBytes: bound, WriteTimeout: time.Minute}, true)
	// A client that never reads.
	stuck, _ := h.dialWS()
	stuckRec := h.next()
	other, _ := h.dialWS()
	h.next()
	msg := TextMessage(bytes.Repeat([]byte("x"), 16<<10))
	var err error
	sends := 0
	for sends = 0; sends < 100000; sends++ {
		if err = stuckRec.s.Send(msg); err != nil {
			break
		}
		stuckRec.s.mu.Lock()
		q := stuckRec.s.queued
		stuckRec.s.mu.Unlock()
		if q > bound {
			t.Fatalf("queued %d over the bound", q)
		}
	}
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("after %d sends: %v", sends, err)
	}
	if reason := stuckRec.waitClose(t); reason != ReasonSlowConsumer {
		t.Errorf("reason %q", reason)
	}
	if err := stuckRec.s.Send(msg); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after: %v", err)
	}
	t.Logf("ErrSlowConsumer after %d sends of 16 KiB", sends)
	// The other session is unaffected.
	send(t, other, "4still here")
	if got := readText(t, other); got != "4still here" {
		t.Errorf("other session: %q", got)
	}
	_ = stuck
}

// httpReq and recorderWriter: a minimal in-process round trip.
func httpReq(method, target string) *http.Request {
	r, _ := http.NewRequest(method, "http://example.com"+target, nil)
	r.RequestURI = target
	r.RemoteAddr = "127.0.0.1:1"
	return r
}

type recorderWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func newRecorderWriter() *recorderWriter { return &recorderWriter{h: http.Header{}} }

func (w *recorderWriter) Header() http.Header { return w.h }
func (w *recorderWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return w.buf.Write(b)
}
func (w *recorderWriter) WriteHeader(code int) { w.code = code }

func TestCloseDuringAccept(t *testing.T) {
	closed := make(chan string, 2)
	srv, err := NewServer(Options{}, func(s *Session) Handler {
		_ = s.Send(TextMessage([]byte("bye")))
		s.Close()
		return closeOnly(closed)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	w := newRecorderWriter()
	srv.ServeHTTP(w, httpReq("GET", "/engine.io/?EIO=4&transport=polling"))
	if body := w.buf.String(); w.code != 200 || !strings.HasPrefix(body, "0{") || !strings.HasSuffix(body, "\x1e4bye\x1e1") {
		t.Errorf("handshake of a session closed by accept: %d %q", w.code, body)
	}
	select {
	case reason := <-closed:
		if reason != ReasonForcedClose {
			t.Errorf("reason %q", reason)
		}
	case <-time.After(testTimeout):
		t.Fatal("no OnClose")
	}
	if srv.Count() != 0 {
		t.Errorf("Count %d", srv.Count())
	}
}

type closeOnly chan string

func (closeOnly) OnMessage([]byte, bool)  {}
func (c closeOnly) OnClose(reason string) { c <- reason }

// An idle WebSocket session owns one goroutine: its reader.
func TestIdleSessionOwnsOneGoroutine(t *testing.T) {
	h := newHarness(t, Options{}, true)
	const n = 20
	for i := 0; i < n; i++ {
		c, _ := h.dialWS()
		h.next()
		send(t, c, "4echo") // a flusher runs, then exits
		readText(t, c)
	}
	// Counted by what they run, not by runtime.NumGoroutine: other tests'
	// goroutines may still be ending.
	var total, readers int
	eventually(t, "one goroutine per idle session, its reader", func() bool {
		total, readers = sessionGoroutines()
		return total == n && readers == n
	})
}

// sessionGoroutines counts the goroutines running the engine's session
// code, and among them the WebSocket readers.
func sessionGoroutines() (total, readers int) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "internal/eio.(*Session)") && !strings.Contains(g, "internal/eio.(*wsConn)") {
			continue
		}
		total++
		if strings.Contains(g, "internal/eio.(*wsConn).readLoop") {
			readers++
		}
	}
	return total, readers
}

func TestCloseDuringAcceptWebSocket(t *testing.T) {
	closed := make(chan string, 2)
	srv, err := NewServer(Options{}, func(s *Session) Handler {
		_ = s.Send(TextMessage([]byte("bye")))
		s.Close()
		return closeOnly(closed)
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close(context.Background())
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parseOpen(t, readText(t, c))
	if got := readText(t, c); got != "4bye" {
		t.Errorf("got %q", got)
	}
	if code := readClose(t, c); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	if reason := <-closed; reason != ReasonForcedClose {
		t.Errorf("reason %q", reason)
	}
}

// TestSecondWebSocketWhileFirstOpens: a client that opens a second
// WebSocket with the same sid the moment its first one is accepted (the
// engine.io-protocol suite's "ignores WebSocket connection with same sid
// after upgrade") gets the second closed and keeps the first: the probe slot
// is taken before the first one's 101 is written. The write hook holds that
// 101 while the second one arrives.
func TestSecondWebSocketWhileFirstOpens(t *testing.T) {
	h := newHarness(t, Options{}, true)
	sid := h.openPolling()
	rec := h.next()
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	setWriteHook(t, func(int) {
		if armed.CompareAndSwap(true, false) {
			close(held)
			<-release
		}
	})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold() // a failure below must not leave the 101 held
	armed.Store(true)
	type dialed struct {
		c   *websocket.Conn
		err error
	}
	first := make(chan dialed, 1)
	go func() { // not h.dial: it may not fail the test from this goroutine
		c, _, err := websocket.DefaultDialer.Dial(h.wsURL("EIO=4&transport=websocket&sid="+sid), nil)
		first <- dialed{c, err}
	}()
	<-held // the first WebSocket is accepted, its 101 not yet written
	second := h.dial("EIO=4&transport=websocket&sid=" + sid)
	readClose(t, second)
	unhold()
	d := <-first
	if d.err != nil {
		t.Fatalf("the first WebSocket: %v", d.err)
	}
	c := d.c
	defer c.Close()
	send(t, c, "2probe")
	if got := readText(t, c); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	send(t, c, "5")
	_ = rec.s.Send(TextMessage([]byte("after")))
	if got := readText(t, c); got != "4after" {
		t.Errorf("first message after the switch %q", got)
	}
}
