package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockstream/sockstream/server"
)

// limRawGet sends a GET for path on c (keep-alive) and reads its answer.
func limRawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// limDial opens a connection to ts, closed when the test ends, with a
// deadline of waitFor.
func limDial(t *testing.T, ts *testServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	return c, bufio.NewReader(c)
}

// limExpectEOF waits for the server to close c.
func limExpectEOF(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: the connection was not closed by the server: %v", what, err)
	}
}

// limHandshake opens a polling session and returns its sid.
func limHandshake(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: waitFor}).Get(ts.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var open struct{ Sid string }
	if resp.StatusCode != http.StatusOK || len(body) == 0 || body[0] != '0' || json.Unmarshal(body[1:], &open) != nil {
		t.Fatalf("handshake: %s %q", resp.Status, body)
	}
	return open.Sid
}

// limGoroutines reports whether a goroutine runs a function whose name
// contains fn.
func limGoroutines(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), fn)
		}
		buf = make([]byte, 2*len(buf))
	}
}

// limWaitFor waits, at most waitFor, for cond.
func limWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleTimeout: a keep-alive connection that carries no more requests
// is closed by the server.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{IdleTimeout: 50 * time.Millisecond}, nil)
	c, br := limDial(t, ts)
	if resp := limRawGet(t, c, br, "/healthz"); resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/healthz: %s, close %v", resp.Status, resp.Close)
	}
	limExpectEOF(t, br, "idle keep-alive connection")
}

// TestReadTimeoutStalledPost: a polling POST whose body stops coming is cut
// after ReadTimeout: 400, the connection closed, the session ended, and the
// goroutine that read it gone.
func TestReadTimeoutStalledPost(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{ReadTimeout: 100 * time.Millisecond}, nil)
	sid := limHandshake(t, ts)
	c, br := limDial(t, ts)
	if _, err := fmt.Fprintf(c, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: test\r\n"+
		"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 100\r\n\r\n40", sid); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("stalled POST: no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("stalled POST: %s, want 400", resp.Status)
	}
	limExpectEOF(t, br, "stalled POST")
	limWaitFor(t, "the goroutine of the stalled POST ends", func() bool { return !limGoroutines("(*Session).servePost") })
	limWaitFor(t, "the session of the stalled POST ends", func() bool { return limMetric(t, ts, "sockstream_engine_connections", "") == 0 })
}

// TestReadTimeoutSparesLongLived: ReadTimeout does not cut a WebSocket, nor
// a long-polling GET waiting for its ping.
func TestReadTimeoutSparesLongLived(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{ReadTimeout: 100 * time.Millisecond, PingInterval: 300 * time.Millisecond, PingTimeout: waitFor}, nil)

	// Polling: the GET waits PingInterval (> ReadTimeout) for the ping.
	sid := limHandshake(t, ts)
	resp, err := (&http.Client{Timeout: waitFor}).Get(ts.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "2" {
		t.Errorf("long poll past ReadTimeout: %s %q, want the ping", resp.Status, body)
	}

	// WebSocket: two pings answered (2 × PingInterval > ReadTimeout), then
	// a namespace joined.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	read := func() string {
		t.Helper()
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("WebSocket past ReadTimeout: %v", err)
		}
		return string(m)
	}
	if m := read(); !strings.HasPrefix(m, "0{") {
		t.Fatalf("open packet: %q", m)
	}
	for range 2 {
		if m := read(); m != "2" {
			t.Fatalf("want a ping, got %q", m)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	for {
		m := read()
		if strings.HasPrefix(m, "40{") {
			break
		}
		if m != "2" {
			t.Fatalf("want the CONNECT answer, got %q", m)
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
	}
}

// TestMaxConnections: over the cap, a Socket.IO handshake gets 503 and the
// connection is closed, while /healthz and /readyz are served; once a
// connection closes, handshakes succeed again.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{MaxConnections: 2}, nil)
	var held []net.Conn
	for range 2 {
		c, br := limDial(t, ts)
		if resp := limRawGet(t, c, br, "/healthz"); resp.StatusCode != http.StatusOK {
			t.Fatalf("within the cap: /healthz %s", resp.Status)
		}
		held = append(held, c)
	}
	const handshake = "/socket.io/?EIO=4&transport=polling"
	c, br := limDial(t, ts)
	if resp := limRawGet(t, c, br, handshake); resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Errorf("over the cap: handshake %s (close %v), want 503 and the connection closed", resp.Status, resp.Close)
	}
	limExpectEOF(t, br, "connection over the cap")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		c, br := limDial(t, ts)
		if resp := limRawGet(t, c, br, path); resp.StatusCode != http.StatusOK {
			t.Errorf("over the cap: %s %s, want 200", path, resp.Status)
		}
	}
	refused := limMetric(t, ts, "sockstream_tcp_connections_refused_total", "max_connections")
	if refused != 1 {
		t.Errorf("sockstream_tcp_connections_refused_total{reason=max_connections} = %v, want 1", refused)
	}

	held[0].Close()
	limWaitFor(t, "a handshake succeeds once a connection closed", func() bool {
		c, br := limDial(t, ts)
		defer c.Close()
		return limRawGet(t, c, br, handshake).StatusCode == http.StatusOK
	})
}

// limMetric is the value of a counter or gauge of ts's registry, the one
// with the label value label ("" for a metric without labels).
func limMetric(t *testing.T, ts *testServer, name, label string) float64 {
	t.Helper()
	mfs, err := ts.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("%s{%s} not found", name, label)
	return 0
}

// TestMaxHeaderBytes: headers over the bound get 431.
func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{MaxHeaderBytes: 1024}, nil)
	get := func(size int) int {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Filler", strings.Repeat("a", size))
		resp, err := (&http.Client{Timeout: waitFor}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(500); got != http.StatusOK {
		t.Errorf("headers within the bound: %d", got)
	}
	// net/http allows 4 KiB of slack over MaxHeaderBytes.
	if got := get(8 << 10); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers over the bound: %d, want 431", got)
	}
}

// TestMetricsAddr: with MetricsAddr, Run serves /metrics there, and only
// there, until it shuts down.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	addr, metricsAddr := limFreeAddr(t), limFreeAddr(t)
	srv, err := server.New(server.Config{Addr: addr, MetricsAddr: metricsAddr, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("Run did not return")
		}
	}()
	client := &http.Client{Timeout: waitFor}
	get := func(url string) (int, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	limWaitFor(t, "Run serves", func() bool {
		code, _, err := get("http://" + addr + "/healthz")
		return err == nil && code == http.StatusOK
	})
	limWaitFor(t, "Run serves the metrics", func() bool {
		_, _, err := get("http://" + metricsAddr + "/metrics")
		return err == nil
	})
	if code, body, _ := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "sockstream_engine_connections") {
		t.Errorf("MetricsAddr /metrics: %d %.100q", code, body)
	}
	if code, _, _ := get("http://" + addr + "/metrics"); code != http.StatusNotFound {
		t.Errorf("Addr /metrics with MetricsAddr set: %d, want 404", code)
	}
	if code, _, _ := get("http://" + metricsAddr + "/healthz"); code != http.StatusNotFound {
		t.Errorf("MetricsAddr /healthz: %d, want 404", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- nil
	case <-time.After(waitFor):
		t.Fatal("Run did not return after its context ended")
	}
	if c, err := net.Dial("tcp", metricsAddr); err == nil {
		c.Close()
		t.Error("the metrics listener is still open after Run returned")
	}
}

// limFreeAddr is a loopback address with a port free a moment ago.
func limFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMaxAttachmentBytes: a packet whose attachments pass
// MaxAttachmentBytes closes its client's connection when the attachment
// that passes it arrives; one within it is delivered.
func TestMaxAttachmentBytes(t *testing.T) {
	t.Parallel()
	got := make(chan int, 1)
	ts := startServer(t, server.Config{MaxAttachmentBytes: 1000}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("bin", func(e *server.Event) {
				a, _ := e.Arg(0).([]byte)
				b, _ := e.Arg(1).([]byte)
				got <- len(a) + len(b)
			})
		})
	})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	expect := func(prefix string) {
		t.Helper()
		_, m, err := ws.ReadMessage()
		if err != nil || !strings.HasPrefix(string(m), prefix) {
			t.Fatalf("want %q: %q %v", prefix, m, err)
		}
	}
	send := func(typ int, m []byte) {
		t.Helper()
		if err := ws.WriteMessage(typ, m); err != nil {
			t.Fatal(err)
		}
	}
	expect("0{")
	send(websocket.TextMessage, []byte("40"))
	expect("40{")
	header := []byte(`452-["bin",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	// Within the bound: 1000 bytes.
	send(websocket.TextMessage, header)
	send(websocket.BinaryMessage, make([]byte, 400))
	send(websocket.BinaryMessage, make([]byte, 600))
	select {
	case n := <-got:
		if n != 1000 {
			t.Errorf("event within the bound: %d bytes", n)
		}
	case <-time.After(waitFor):
		t.Fatal("the event within the bound was not delivered")
	}
	// Over it: the second attachment closes the connection.
	send(websocket.TextMessage, header)
	send(websocket.BinaryMessage, make([]byte, 600))
	send(websocket.BinaryMessage, make([]byte, 401))
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			break // closed
		}
		if string(m) != "1" && string(m) != "2" {
			t.Fatalf("after the attachments over the bound: %q", m)
		}
	}
	select {
	case n := <-got:
		t.Errorf("an event over the bound was delivered (%d bytes)", n)
	default:
	}
	limWaitFor(t, "the session ends", func() bool { return limMetric(t, ts, "sockstream_engine_connections", "") == 0 })
}

// TestInvalidUTF8Path: a path that is not UTF-8 (the overlong encoding of
// "../") is 400, not the 500 of an http.FileServerFS on the Mux.
func TestInvalidUTF8Path(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		page, err := fs.Sub(fstest.MapFS{"web/index.html": {Data: []byte("hi")}}, "web")
		if err != nil {
			t.Fatal(err)
		}
		srv.Mux().Handle("/", http.FileServerFS(page))
	})
	c, br := limDial(t, ts)
	for path, want := range map[string]int{
		"/%c0%ae%c0%ae/etc/passwd": http.StatusBadRequest,
		"/%ff":                     http.StatusBadRequest,
		"/":                        http.StatusOK,
		"/missing":                 http.StatusNotFound,
	} {
		if resp := limRawGet(t, c, br, path); resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}
