package hostile

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

// maxPayload is the MaxPayload of the servers of these tests: small, so
// that the cases around it are quick.
const maxPayload = 10_000

// echoOfSize is an EVENT "echo" with ack id 1 whose Engine.IO packet
// ("4" + Socket.IO packet) is exactly n bytes.
func echoOfSize(n int) string {
	head, tail := `421["echo","`, `"]`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestEngineIOWebSocket sends malformed Engine.IO packets and frames over
// WebSocket: each closes its connection only, with the reason and close
// code below, and a client connected meanwhile is still served.
func TestEngineIOWebSocket(t *testing.T) {
	t.Parallel()
	type frame struct {
		binary bool
		data   string
	}
	cases := []struct {
		name   string
		frames []frame
		reason string
		code   int
	}{
		{"unknown packet type", []frame{{data: "9"}}, "parse error", 1000},
		{"unknown packet type with payload", []frame{{data: "x42[\"echo\"]"}}, "parse error", 1000},
		{"empty text frame", []frame{{data: ""}}, "parse error", 1000},
		{"b without base64", []frame{{data: "b!!!not base64"}}, "parse error", 1000},
		{"b prefix over websocket", []frame{{data: "bAQID"}}, "parse error", 1000},
		{"ping from the client", []frame{{data: "2"}}, "transport error", 1000},
		{"binary where text is expected", []frame{{binary: true, data: "\x01\x02\x03"}}, "forced close", 1000},
		{"empty binary frame", []frame{{binary: true}}, "forced close", 1000},
		{"invalid UTF-8 in a text frame", []frame{{data: "42[\"echo\",\"\xff\xfe\"]"}}, "transport error", 1007},
		{"lone surrogate in a text frame", []frame{{data: "42[\"echo\",\"\xed\xa0\x80\"]"}}, "transport error", 1007},
		{"MaxPayload+1", []frame{{data: echoOfSize(maxPayload + 1)}}, "transport error", 1009},
		{"binary MaxPayload+1", []frame{{data: `451-["echo",{"_placeholder":true,"num":0}]`}, {binary: true, data: strings.Repeat("b", maxPayload+1)}}, "transport error", 1009},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxPayload: maxPayload}, nil)
			g := h.good(t)
			ctx := ctxFor(t)
			bad := h.joinWS(t, ctx, "bad", false)
			for _, f := range c.frames {
				var err error
				if f.binary {
					err = bad.SendBinary([]byte(f.data))
				} else {
					err = bad.Send(f.data)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if code := wsClosed(t, ctx, bad); code != c.code {
				t.Errorf("close code %d, want %d", code, c.code)
			}
			h.wantReason(t, "bad", c.reason)
			g.alive(t)
			h.waitSessions(t, 1)
		})
	}

	t.Run("MaxPayload exactly", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		c := h.joinWS(t, ctx, "edge", false)
		if err := c.Send(echoOfSize(maxPayload)); err != nil {
			t.Fatal(err)
		}
		f, err := c.ReadText(ctx)
		if err != nil || !strings.HasPrefix(f, `431["xxx`) {
			t.Fatalf("ack of a message of MaxPayload bytes: %.20q, %v", f, err)
		}
		h.noReason(t, "edge")
		g.alive(t)
	})

	// Frames only a raw client writes.
	raw := []struct {
		name  string
		write func(w *rawWS) error
		code  int
	}{
		{"length announced far over MaxPayload, never sent", func(w *rawWS) error {
			return w.header(true, 1, 1<<62)
		}, 1009},
		{"length announced over MaxPayload by one, never sent", func(w *rawWS) error {
			return w.header(true, 2, maxPayload+1)
		}, 1009},
		{"fragments adding up to MaxPayload+1", func(w *rawWS) error {
			half := echoOfSize(maxPayload + 1)
			if err := w.header(false, 1, uint64(len(half)/2)); err != nil {
				return err
			}
			if _, err := w.conn.Write([]byte(half[:len(half)/2])); err != nil {
				return err
			}
			if err := w.header(true, 0, uint64(len(half)-len(half)/2)); err != nil {
				return err
			}
			_, err := w.conn.Write([]byte(half[len(half)/2:]))
			return err
		}, 1009},
		{"unmasked frame", func(w *rawWS) error {
			_, err := w.conn.Write([]byte{0x81, 0x01, '6'})
			return err
		}, 1002},
		{"reserved bits", func(w *rawWS) error {
			_, err := w.conn.Write([]byte{0x81 | 0x40, 0x81, 0, 0, 0, 0, '6'})
			return err
		}, 1002},
		{"continuation without a start", func(w *rawWS) error {
			return w.frame(0, []byte("6"))
		}, 1002},
		{"unknown opcode", func(w *rawWS) error {
			return w.frame(3, []byte("6"))
		}, 1002},
		{"control frame over 125 bytes", func(w *rawWS) error {
			return w.frame(9, make([]byte, 126))
		}, 1002},
		{"fragmented control frame", func(w *rawWS) error {
			if err := w.header(false, 9, 1); err != nil {
				return err
			}
			_, err := w.conn.Write([]byte("x"))
			return err
		}, 1002},
		{"new message inside a fragmented one", func(w *rawWS) error {
			if err := w.header(false, 1, 1); err != nil {
				return err
			}
			if _, err := w.conn.Write([]byte("4")); err != nil {
				return err
			}
			return w.frame(1, []byte("6"))
		}, 1002},
	}
	for _, c := range raw {
		t.Run("raw/"+c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxPayload: maxPayload}, nil)
			g := h.good(t)
			w := h.dialRawWS(t)
			if err := w.frame(1, []byte(connectPacket("bad", false))); err != nil {
				t.Fatal(err)
			}
			h.joined(t, "bad")
			if err := c.write(w); err != nil {
				t.Fatal(err)
			}
			if code := w.closeCode(t); code != c.code {
				t.Errorf("close code %d, want %d", code, c.code)
			}
			h.wantReason(t, "bad", "transport error")
			g.alive(t)
			h.waitSessions(t, 1)
		})
	}
}

// TestEngineIOPolling sends malformed payloads, bodies and requests over
// HTTP long-polling: each is answered with the status below and closes
// its own session only (or none, where Node ignores the input).
func TestEngineIOPolling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		body   string
		status int
		reason string // "" : the session stays open
	}{
		{"unknown packet type", "9", 400, "parse error"},
		{"unknown type after good packets", "6\x1e6\x1ex", 400, "parse error"},
		{"empty body", "", 200, ""},
		{"separator only", "\x1e", 200, ""},
		{"separators only", "\x1e\x1e\x1e", 200, ""},
		{"trailing separator", `42["echo",1]` + "\x1e", 200, ""},
		{"leading separator", "\x1e" + `42["echo",1]`, 200, ""},
		{"b without base64", "b!!!not base64", 400, "parse error"},
		{"b with truncated base64", "bAQI", 400, "parse error"},
		{"binary where text is expected", "bAQID", 200, "forced close"},
		{"ping from the client", "2", 200, "transport error"},
		{"close packet", "1", 200, "transport close"},
		{"Socket.IO garbage", "4garbage", 200, "forced close"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxPayload: maxPayload}, nil)
			g := h.good(t)
			ctx := ctxFor(t)
			p := h.joinPoll(t, ctx, "bad", false)
			r, err := p.Post(ctx, c.body)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.status {
				t.Errorf("POST %q: %d %q, want %d", c.body, r.Status, r.Body, c.status)
			}
			if c.reason != "" {
				h.wantReason(t, "bad", c.reason)
			} else {
				// Still served: the CONNECT reply, then an ack.
				pollUntil(t, ctx, p, "40{")
				pollAck(t, ctx, p)
				h.noReason(t, "bad")
			}
			g.alive(t)
		})
	}

	t.Run("invalid UTF-8 is replaced", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "bad", false)
		if r, err := p.Post(ctx, "421[\"echo\",\"\xff\xfe\"]"); err != nil || r.Status != 200 {
			t.Fatalf("POST: %v %v", r, err)
		}
		got := pollUntil(t, ctx, p, "431[")
		h.noReason(t, "bad")
		g.alive(t)
		// Node (req.setEncoding("utf8")) replaces each maximal invalid
		// subpart by U+FFFD: "\xff\xfe" is two of them.
		if !strings.Contains(got, "431[\"\uFFFD\uFFFD\"]") {
			t.Errorf("ack %q, want each invalid byte replaced by U+FFFD", got)
		}
	})

	t.Run("MaxPayload exactly", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "edge", false)
		if r, err := p.Post(ctx, echoOfSize(maxPayload)); err != nil || r.Status != 200 {
			t.Fatalf("POST of MaxPayload bytes: %v %v", r, err)
		}
		pollUntil(t, ctx, p, `431["xxx`)
		h.noReason(t, "edge")
		g.alive(t)
	})

	tooLarge := []struct {
		name string
		post func(ctx context.Context, p *eiotest.Poller) (eiotest.Response, error)
	}{
		{"MaxPayload+1", func(ctx context.Context, p *eiotest.Poller) (eiotest.Response, error) {
			return p.Post(ctx, echoOfSize(maxPayload+1))
		}},
		{"chunked MaxPayload+1", func(ctx context.Context, p *eiotest.Poller) (eiotest.Response, error) {
			return p.PostReader(ctx, io.MultiReader(strings.NewReader(echoOfSize(maxPayload+1))))
		}},
		{"chunked, endless", func(ctx context.Context, p *eiotest.Poller) (eiotest.Response, error) {
			return p.PostReader(ctx, io.MultiReader(strings.NewReader(`42["echo","`), endless{}))
		}},
	}
	for _, c := range tooLarge {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxPayload: maxPayload}, nil)
			g := h.good(t)
			ctx := ctxFor(t)
			p := h.joinPoll(t, ctx, "bad", false)
			r, err := c.post(ctx, p)
			// The server may close the connection before it has read the
			// whole body: the client may then see the 413 or a reset.
			if err == nil && r.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("POST over MaxPayload: %d %q, want 413", r.Status, r.Body)
			}
			h.wantReason(t, "bad", "transport error")
			g.alive(t)
		})
	}

	t.Run("chunked under MaxPayload", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "edge", false)
		r, err := p.PostReader(ctx, io.MultiReader(strings.NewReader(echoOfSize(maxPayload))))
		if err != nil || r.Status != 200 {
			t.Fatalf("chunked POST of MaxPayload bytes: %v %v", r, err)
		}
		pollUntil(t, ctx, p, `431["xxx`)
		h.noReason(t, "edge")
		g.alive(t)
	})

	t.Run("Content-Length over MaxPayload, no body", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		p := h.joinPoll(t, ctxFor(t), "bad", false)
		_, br := h.rawHTTP(t, h.postHead(p.SID, "Content-Length: "+itoa(1<<40)+"\r\n"))
		if st, _ := readStatus(t, br); st != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", st)
		}
		h.wantReason(t, "bad", "transport error")
		g.alive(t)
	})

	t.Run("Content-Length longer than the body", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		p := h.joinPoll(t, ctxFor(t), "bad", false)
		conn, br := h.rawHTTP(t, h.postHead(p.SID, "Content-Length: 100\r\n")+`42["echo"]`)
		_ = conn.(interface{ CloseWrite() error }).CloseWrite()
		if st, _ := readStatus(t, br); st != http.StatusBadRequest {
			t.Errorf("status %d, want 400", st)
		}
		h.wantReason(t, "bad", "transport error")
		g.alive(t)
	})

	t.Run("Content-Length shorter than the body", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "edge", false)
		first := `421["echo",1]`
		_, br := h.rawHTTP(t, h.postHead(p.SID, "Content-Length: "+itoa(len(first))+"\r\n")+first+"GARBAGE / HTTP/1.1\r\n\r\n")
		if st, body := readStatus(t, br); st != 200 || body != "ok" {
			t.Errorf("the POST as its Content-Length says: %d %q, want 200 ok", st, body)
		}
		// What follows is a request of its own, and not a valid one.
		if st, _ := readStatus(t, br); st != http.StatusBadRequest {
			t.Errorf("the bytes past Content-Length: %d, want 400", st)
		}
		pollUntil(t, ctx, p, "431[1]")
		h.noReason(t, "edge")
		g.alive(t)
	})

	t.Run("binary content type", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		p := h.joinPoll(t, ctxFor(t), "bad", false)
		body := "\x04\x01\x02"
		_, br := h.rawHTTP(t, strings.Replace(h.postHead(p.SID, "Content-Length: 3\r\n"), "text/plain;charset=UTF-8", "application/octet-stream", 1)+body)
		if st, _ := readStatus(t, br); st != http.StatusBadRequest {
			t.Errorf("status %d, want 400", st)
		}
		h.wantReason(t, "bad", "transport error")
		g.alive(t)
	})

	t.Run("concurrent GETs", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "bad", false)
		pollUntil(t, ctx, p, "40{")
		first := make(chan eiotest.Response, 1)
		go func() {
			r, _ := p.Get(ctx)
			first <- r
		}()
		// The two GETs overlap: neither can be answered before the other
		// arrives, but by the close of the session.
		r, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Whichever came second is refused; the other gets the close
		// packet.
		r2 := <-first
		if r.Status == 200 {
			r, r2 = r2, r
		}
		if r.Status != http.StatusBadRequest || r2.Status != 200 || r2.Body != "1" {
			t.Errorf("overlapping GETs answered %d %q and %d %q, want 400 and 200 \"1\" (the close packet)", r.Status, r.Body, r2.Status, r2.Body)
		}
		h.wantReason(t, "bad", "transport error")
		g.alive(t)
	})

	t.Run("concurrent POSTs", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "bad", false)
		h.joined(t, "bad")
		// A POST stalled mid-body holds the session's POST slot.
		conn, br := h.rawHTTP(t, h.postHead(p.SID, "Content-Length: 100\r\n")+`42["ec`)
		var r eiotest.Response
		var err error
		waitUntil(t, "the second POST is refused", func() bool {
			r, err = p.Post(ctx, `42["echo"]`)
			return err != nil || r.Status != 200
		})
		if err != nil || r.Status != http.StatusBadRequest {
			t.Errorf("second POST: %v %v, want 400", r, err)
		}
		h.wantReason(t, "bad", "transport error")
		_ = conn.Close()
		_ = br
		g.alive(t)
	})

	queries := []struct {
		name, method, query string
		status              int
		body                string
	}{
		{"EIO=3", "GET", "EIO=3&transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"no EIO", "GET", "transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"EIO=4x", "GET", "EIO=4x&transport=polling", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"unknown transport", "GET", "EIO=4&transport=flash", 400, `{"code":0,"message":"Transport unknown"}`},
		{"no transport", "GET", "EIO=4", 400, `{"code":0,"message":"Transport unknown"}`},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", 400, `{"code":3,"message":"Bad request"}`},
		{"unknown sid", "GET", "EIO=4&transport=polling&sid=nope", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"unknown sid POST", "POST", "EIO=4&transport=polling&sid=nope", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"POST handshake", "POST", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"JSONP handshake", "GET", "EIO=4&transport=polling&j=0", 400, `{"code":3,"message":"Bad request"}`},
		{"PUT", "PUT", "EIO=4&transport=polling", 400, `{"code":2,"message":"Bad handshake method"}`},
	}
	for _, c := range queries {
		t.Run("query/"+c.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, server.Config{MaxPayload: maxPayload}, nil)
			g := h.good(t)
			ctx := ctxFor(t)
			p := &eiotest.Poller{URL: h.url}
			r, err := p.Do(ctx, c.method, c.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.status || r.Body != c.body {
				t.Errorf("%s ?%s: %d %s, want %d %s", c.method, c.query, r.Status, r.Body, c.status, c.body)
			}
			g.alive(t)
			h.waitSessions(t, 1)
		})
	}

	t.Run("query/JSONP on a session", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "jsonp", false)
		for _, m := range []string{"GET", "POST"} {
			var body io.Reader
			if m == "POST" {
				body = strings.NewReader("d=" + `42["echo"]`)
			}
			r, err := p.Do(ctx, m, "EIO=4&transport=polling&j=0&sid="+p.SID, body)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"code":3,"message":"Bad request"}`; r.Status != 400 || r.Body != want {
				t.Errorf("%s with j=: %d %s, want 400 %s", m, r.Status, r.Body, want)
			}
		}
		// Refused requests are not the session's: it goes on.
		pollUntil(t, ctx, p, "40{")
		pollAck(t, ctx, p)
		h.noReason(t, "jsonp")
		g.alive(t)
	})

	t.Run("query/upgrade with EIO=3", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxPayload: maxPayload}, nil)
		g := h.good(t)
		_, br := h.rawHTTP(t, "GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nHost: "+h.addr+
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		if st, body := readStatus(t, br); st != 400 || body != "Unsupported protocol version" {
			t.Errorf("upgrade with EIO=3: %d %q, want 400 Unsupported protocol version", st, body)
		}
		g.alive(t)
	})
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// pollUntil GETs until a packet starting with prefix arrives and returns
// the payload that held it.
func pollUntil(t testing.TB, ctx context.Context, p *eiotest.Poller, prefix string) string {
	t.Helper()
	for {
		r, err := p.Get(ctx)
		if err != nil {
			t.Fatalf("GET waiting for %q: %v", prefix, err)
		}
		if r.Status != 200 {
			t.Fatalf("GET waiting for %q: %d %q", prefix, r.Status, r.Body)
		}
		for _, pk := range strings.Split(r.Body, "\x1e") {
			if strings.HasPrefix(pk, prefix) {
				return r.Body
			}
			if pk == "1" {
				t.Fatalf("session closed while waiting for %q", prefix)
			}
		}
	}
}

// pollAck is an ack round trip over polling.
func pollAck(t testing.TB, ctx context.Context, p *eiotest.Poller) {
	t.Helper()
	if r, err := p.Post(ctx, `4277["echo","ok"]`); err != nil || r.Status != 200 {
		t.Fatalf("POST echo: %v %v", r, err)
	}
	pollUntil(t, ctx, p, `4377["ok"]`)
}
