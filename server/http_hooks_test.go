package server_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// handshake opens an Engine.IO polling session with a raw request and
// returns the answer (its body read).
func handshake(t *testing.T, base, query string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/socket.io/?EIO=4&transport=polling"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// TestAllowRequest: a refusal is Node's answer (403
// {"code":4,"message":...}), the official client gets a connect_error over
// both transports, the connection-error handlers see it, and an allowed
// request connects.
func TestAllowRequest(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{AllowRequest: func(r *http.Request) error {
		if r.URL.Query().Get("token") != "good" {
			return errors.New("bad token")
		}
		return nil
	}})
	var mu sync.Mutex
	var refused []*server.ConnectionError
	srv.Srv.OnConnectionError(func(e *server.ConnectionError) {
		mu.Lock()
		refused = append(refused, e)
		mu.Unlock()
	})
	res, body := handshake(t, srv.URL, "&token=bad", nil)
	if res.StatusCode != http.StatusForbidden || body != `{"code":4,"message":"bad token"}` || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("refusal: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	c := siotest.StartClients(t)
	for _, tr := range []string{"polling", "websocket"} {
		c.Do(t, map[string]any{"cmd": "connect", "id": tr, "url": srv.URL + "/", "transports": []string{tr}})
		ev := c.Wait(t, "connect error over "+tr, apiWait, func(ev siotest.Event) bool {
			return ev.ID == tr && (ev.Type == "connect" || ev.Type == "connect_error")
		})
		if ev.Type != "connect_error" {
			t.Errorf("%s: %s, want connect_error", tr, ev.Type)
		}
	}
	c.Connect(t, "ok", srv.URL+"/", map[string]string{"token": "good"}, map[string]any{"transports": []string{"polling", "websocket"}})
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 3 {
		t.Fatalf("%d connection errors, want 3 (raw, polling, websocket)", len(refused))
	}
	for _, e := range refused {
		if e.Code != 4 || e.Message != "Forbidden" || e.Context["message"] != "bad token" || e.Request == nil {
			t.Errorf("connection error %+v", e)
		}
	}
}

// TestConnectionError: the other refusals reach the handlers with Node's
// codes and context.
func TestConnectionError(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	errs := make(chan *server.ConnectionError, 4)
	srv.Srv.OnConnectionError(func(e *server.ConnectionError) { errs <- e })
	for _, tc := range []struct {
		query   string
		code    int
		message string
		key     string
		value   any
	}{
		{"&EIO=4&sid=nope", 1, "Session ID unknown", "sid", "nope"},
		{"&EIO=3", 5, "Unsupported protocol version", "protocol", "3"},
	} {
		res, err := http.Get(srv.URL + "/socket.io/?transport=polling" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		e := siotest.Recv(t, errs, apiWait, "connection error for "+tc.query)
		if res.StatusCode != http.StatusBadRequest || e.Code != tc.code || e.Message != tc.message || e.Context[tc.key] != tc.value {
			t.Errorf("%s: %d, %+v", tc.query, res.StatusCode, e)
		}
	}
	res, err := http.Get(srv.URL + "/socket.io/?EIO=4&transport=carrier-pigeon")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e := siotest.Recv(t, errs, apiWait, "unknown transport")
	if e.Code != 0 || e.Message != "Transport unknown" || e.Context["transport"] != "carrier-pigeon" {
		t.Errorf("unknown transport: %+v", e)
	}
}

// TestHeaderHooksAndCookie: the handshake's answer carries the session
// cookie and the headers of OnInitialHeaders and OnHeaders, the later
// polling requests those of OnHeaders only; the official client connects
// through it.
func TestHeaderHooksAndCookie(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{Cookie: &server.CookieConfig{}})
	srv.Srv.OnInitialHeaders(func(h http.Header, r *http.Request) {
		h.Set("X-Initial", "1")
		if !strings.HasPrefix(h.Get("Set-Cookie"), "io=") {
			h.Set("X-Cookie-Missing", "1")
		}
	})
	srv.Srv.OnHeaders(func(h http.Header, r *http.Request) { h.Set("X-Every", r.Method) })
	res, body := handshake(t, srv.URL, "", nil)
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil || open.SID == "" {
		t.Fatalf("handshake answer %q: %v", body, err)
	}
	want := "io=" + open.SID + "; Path=/; HttpOnly; SameSite=Lax"
	if got := res.Header.Get("Set-Cookie"); got != want {
		t.Errorf("Set-Cookie %q, want %q", got, want)
	}
	if res.Header.Get("X-Initial") != "1" || res.Header.Get("X-Every") != "GET" || res.Header.Get("X-Cookie-Missing") != "" {
		t.Errorf("handshake headers %v", res.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/socket.io/?EIO=4&transport=polling&sid="+open.SID, strings.NewReader("40"))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	post, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.Header.Get("X-Every") != "POST" || post.Header.Get("X-Initial") != "" || post.Header.Get("Set-Cookie") != "" {
		t.Errorf("POST headers %v", post.Header)
	}
	// A WebSocket handshake: the hooks' headers are in its 101 response,
	// as Node adds them there (no cookie: Node sets it on polling only).
	ws, wsRes, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	if wsRes.Header.Get("X-Initial") != "1" || wsRes.Header.Get("X-Every") != "GET" || wsRes.Header.Get("Set-Cookie") != "" {
		t.Errorf("WebSocket 101 headers %v", wsRes.Header)
	}
	c := siotest.StartClients(t)
	c.Connect(t, "a", srv.URL+"/", nil, map[string]any{"transports": []string{"polling", "websocket"}})
}

// TestHTTPCompression: a polling answer of at least the threshold is
// compressed when the client accepts gzip (as Node's httpCompression),
// unless DisableHTTPCompression.
func TestHTTPCompression(t *testing.T) {
	t.Parallel()
	for _, disabled := range []bool{false, true} {
		srv := siotest.StartServer(t, "n0", server.Config{DisableHTTPCompression: disabled, HTTPCompressionThreshold: 100})
		big := strings.Repeat("x", 500)
		srv.Srv.OnConnection(func(s *server.Socket) { _ = s.Emit("big", big) })
		_, body := handshake(t, srv.URL, "", nil)
		var open struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil {
			t.Fatal(err)
		}
		poll := func(method, payload string) (*http.Response, string) {
			req, _ := http.NewRequest(method, srv.URL+"/socket.io/?EIO=4&transport=polling&sid="+open.SID, strings.NewReader(payload))
			req.Header.Set("Accept-Encoding", "gzip")
			res, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var r io.Reader = res.Body
			if res.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				r = zr
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			return res, string(b)
		}
		poll(http.MethodPost, "40")
		// The CONNECT answer, then the big event (maybe in one payload).
		got := ""
		var enc []string
		for i := 0; i < 2 && !strings.Contains(got, big); i++ {
			res, b := poll(http.MethodGet, "")
			got += b
			enc = append(enc, res.Header.Get("Content-Encoding"))
		}
		if !strings.Contains(got, `42["big","`+big+`"]`) {
			t.Fatalf("disabled=%v: no big event in %q", disabled, got)
		}
		last := enc[len(enc)-1]
		if disabled && last != "" || !disabled && last != "gzip" {
			t.Errorf("disabled=%v: Content-Encoding %q", disabled, last)
		}
	}
}

// TestAckTimeouts: every method that waits for acknowledgements ends with
// an error wrapping ErrAckTimeout when they do not come in time.
func TestAckTimeouts(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	start := func(name string) *siotest.Server {
		return siotest.StartServer(t, name, server.Config{Logger: quiet(), Redis: fastCluster(rs.URL())})
	}
	n0, n1 := start("n0"), start("n1")
	n1.Srv.Of("/").OnServerSideEmit("silent", func(e *server.Event) {}) // never answers
	n1.Srv.Of("/").OnServerSideEmit("hello", func(e *server.Event) { e.Ack("n1") })
	siotest.Eventually(t, apiWait, "n0 hears n1", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := n0.Srv.Of("/").ServerSideEmitWithAck(ctx, "hello")
		return err == nil && len(res) == 1
	})
	// The client that never answers is on the other node (n1).
	c := siotest.StartClients(t)
	c.Connect(t, "a", n1.URL+"/", nil, map[string]any{"noAck": true})
	s := n1.Srv.Sockets()[0]
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, server.ErrAckTimeout) || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, adapter.ErrTimeout) {
			t.Errorf("%s: %v, want ErrAckTimeout", what, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := s.EmitWithAck(ctx, "q")
	check("Socket.EmitWithAck", err)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = n0.Srv.To(s.ID()).EmitWithAck(ctx2, "q")
	check("Broadcast.EmitWithAck", err)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	_, err = n0.Srv.Of("/").ServerSideEmitWithAck(ctx3, "silent")
	check("ServerSideEmitWithAck", err)
}
