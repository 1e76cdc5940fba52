package eio

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testTimeout bounds every wait of the tests: generous, since the tests
// must pass on a loaded machine; nothing waits for it on success.
const testTimeout = 20 * time.Second

// recorder is a Handler recording what it receives; echo makes it send
// every message back.
type recorder struct {
	s    *Session
	echo bool
	msgs chan rmsg
	// closed receives the close reason (once).
	closed chan string
	onMsg  func(r *recorder, data []byte, binary bool)
}

type rmsg struct {
	data   string
	binary bool
}

func (r *recorder) OnMessage(data []byte, binary bool) {
	if r.onMsg != nil {
		r.onMsg(r, data, binary)
	}
	if r.echo {
		if binary {
			_ = r.s.Send(BinaryMessage(data))
		} else {
			_ = r.s.Send(TextMessage(data))
		}
	}
	select {
	case r.msgs <- rmsg{string(data), binary}:
	default:
	}
}

func (r *recorder) OnClose(reason string) { r.closed <- reason }

// harness is a Server under httptest with its sessions' recorders.
type harness struct {
	t        *testing.T
	srv      *Server
	hs       *httptest.Server
	url      string // http://…/engine.io/
	sessions chan *recorder
	echo     bool
	onMsg    func(r *recorder, data []byte, binary bool)
}

func newHarness(t *testing.T, opts Options, echo bool) *harness {
	t.Helper()
	h := &harness{t: t, sessions: make(chan *recorder, 1000), echo: echo}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := NewServer(opts, func(s *Session) Handler {
		r := &recorder{s: s, echo: h.echo, msgs: make(chan rmsg, 1000), closed: make(chan string, 1), onMsg: h.onMsg}
		h.sessions <- r
		return r
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	h.hs = httptest.NewServer(mux)
	h.url = h.hs.URL + "/engine.io/"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
		h.hs.CloseClientConnections()
		h.hs.Close()
	})
	return h
}

// next returns the recorder of the next session opened.
func (h *harness) next() *recorder {
	h.t.Helper()
	select {
	case r := <-h.sessions:
		return r
	case <-time.After(testTimeout):
		h.t.Fatal("no session opened")
		return nil
	}
}

func (r *recorder) wait(t *testing.T) rmsg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(testTimeout):
		t.Fatal("no message")
		return rmsg{}
	}
}

func (r *recorder) waitClose(t *testing.T) string {
	t.Helper()
	select {
	case reason := <-r.closed:
		return reason
	case <-time.After(testTimeout):
		t.Fatal("OnClose not called")
		return ""
	}
}

type response struct {
	status int
	body   string
	header http.Header
}

func (h *harness) do(method, query, body string, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+"?"+query, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		h.t.Fatalf("%s ?%s: %v", method, query, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

func parseOpen(t *testing.T, s string) openPacket {
	t.Helper()
	if !strings.HasPrefix(s, "0") {
		t.Fatalf("open packet %q", s)
	}
	var o openPacket
	if err := json.Unmarshal([]byte(s[1:]), &o); err != nil {
		t.Fatalf("open packet %q: %v", s, err)
	}
	return o
}

// openPolling makes a polling handshake and returns the sid.
func (h *harness) openPolling() string {
	h.t.Helper()
	r := h.do("GET", "EIO=4&transport=polling", "")
	if r.status != 200 {
		h.t.Fatalf("handshake: %d %s", r.status, r.body)
	}
	return parseOpen(h.t, r.body).SID
}

func (h *harness) get(sid string) response {
	return h.do("GET", "EIO=4&transport=polling&sid="+sid, "")
}

func (h *harness) post(sid, body string) response {
	return h.do("POST", "EIO=4&transport=polling&sid="+sid, body, "Content-Type", "text/plain;charset=UTF-8")
}

func (h *harness) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(h.url, "http") + "?" + query
}

// dialWS opens a WebSocket session and reads its open packet.
func (h *harness) dialWS() (*websocket.Conn, openPacket) {
	h.t.Helper()
	c := h.dial("EIO=4&transport=websocket")
	return c, parseOpen(h.t, readText(h.t, c))
}

func (h *harness) dial(query string) *websocket.Conn {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, h.wsURL(query), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		h.t.Fatalf("dial %s: %v (%d)", query, err, status)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

func readFrame(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return mt, b
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	mt, b := readFrame(t, c)
	if mt != websocket.TextMessage {
		t.Fatalf("frame type %d (%q), want text", mt, b)
	}
	return string(b)
}

// readClose reads until the connection closes and returns the close code
// (websocket.CloseAbnormalClosure when it closed without a close frame).
func readClose(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		if strings.Contains(err.Error(), "timeout") {
			t.Fatal("connection not closed")
		}
		return websocket.CloseAbnormalClosure
	}
}

func send(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// eventually waits, polling, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessionOf returns the server's session with sid.
func (h *harness) session(sid string) *Session {
	return h.srv.lookup(sid)
}

var hookMu sync.Mutex

// setWriteHook installs testHookWrite for the test (tests using it do not
// run in parallel).
func setWriteHook(t *testing.T, f func(n int)) {
	hookMu.Lock()
	testHookWrite.Store(&f)
	t.Cleanup(func() {
		testHookWrite.Store(nil)
		hookMu.Unlock()
	})
}

func goroutines() int { return runtime.NumGoroutine() }

// noLeak waits until no more goroutines run than before, and dumps them if
// that never happens.
func noLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for goroutines() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, %d before the test:\n%s", goroutines(), before, buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
