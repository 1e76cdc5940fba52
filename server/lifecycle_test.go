package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// get fetches url and returns the status and body.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: waitFor, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// metric returns the value of series (name{labels} as the text format
// writes it) on the /metrics page of ts, or -1 when it is absent.
func metric(t testing.TB, ts *testServer, series string) float64 {
	t.Helper()
	code, body := get(t, ts.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if name, value := line[:max(i, 0)], line[i+1:]; i > 0 && name == series {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return -1
}

// TestHealthReadyMetrics: /healthz and /readyz answer, and /metrics follows
// the traffic.
func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	var es *echoServer
	ts := startServer(t, server.Config{}, func(srv *server.Server) { es = newEchoServer(srv) })
	if code, body := get(t, ts.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, ts.URL+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	const (
		connected   = `sockstream_connected_sockets{namespace="/"}`
		connections = `sockstream_connections_total{namespace="/"}`
		emits       = `sockstream_socket_emits_total{namespace="/"}`
		left        = `sockstream_disconnections_total{namespace="/",reason="client namespace disconnect"}`
	)
	if v := metric(t, ts, "go_goroutines"); v <= 0 {
		t.Errorf("go_goroutines = %v: the runtime collector is missing", v)
	}

	d := startDriver(t)
	d.connected("a", ts.URL, transportModes[0].opts)
	d.connected("b", ts.URL, transportModes[1].opts)
	s := recv(t, es.sockets, "connection")
	recv(t, es.sockets, "connection")
	if v := metric(t, ts, connected); v != 2 {
		t.Errorf("%s = %v after two connections, want 2", connected, v)
	}
	if v := metric(t, ts, connections); v != 2 {
		t.Errorf("%s = %v, want 2", connections, v)
	}
	for range 3 {
		if err := s.Emit("tick"); err != nil {
			t.Fatal(err)
		}
	}
	if v := metric(t, ts, emits); v != 3 {
		t.Errorf("%s = %v after 3 emits, want 3", emits, v)
	}
	d.send(map[string]any{"op": "disconnect", "id": "a"})
	recv(t, es.disconnects, "disconnect")
	if v := metric(t, ts, connected); v != 1 {
		t.Errorf("%s = %v after a disconnection, want 1", connected, v)
	}
	if v := metric(t, ts, left); v != 1 {
		_, body := get(t, ts.URL+"/metrics")
		t.Errorf("%s = %v, want 1\n%s", left, v, body)
	}
	if v := metric(t, ts, connections); v != 2 {
		t.Errorf("%s = %v, want still 2", connections, v)
	}
}

// TestCustomRegistry: the server registers its metrics on Config.Registry
// and serves it; a second server on the same registry is refused.
func TestCustomRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_extra_total", Help: "A metric of the program's own."})
	reg.MustRegister(extra)
	extra.Add(7)
	ts := startServer(t, server.Config{Registry: reg}, nil)
	if ts.Registry() != reg {
		t.Error("Registry() is not Config.Registry")
	}
	if v := metric(t, ts, "app_extra_total"); v != 7 {
		t.Errorf("app_extra_total = %v, want 7", v)
	}
	if v := metric(t, ts, "go_goroutines"); v != -1 {
		t.Errorf("go_goroutines = %v: collectors added to a registry the program gave", v)
	}
	if _, err := server.New(server.Config{Registry: reg, Logger: quiet()}); err == nil {
		t.Error("a second server on the same registry: no error")
	}
}

// TestReadyzAdapter: /readyz follows the readiness of the adapter's backend.
func TestReadyzAdapter(t *testing.T) {
	t.Parallel()
	var ready = make(chan bool, 1)
	ready <- false
	isReady := func() bool {
		v := <-ready
		ready <- v
		return v
	}
	ts := startServer(t, server.Config{}, nil, server.WithAdapter(nil, isReady, nil))
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "adapter not ready\n" {
		t.Errorf("/readyz with the adapter down = %d %q", code, body)
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz with the adapter down = %d, want 200", code)
	}
	<-ready
	ready <- true
	if code, _ := get(t, ts.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz with the adapter up = %d", code)
	}
}

// TestShutdown: Shutdown disconnects every client (which then may reconnect
// elsewhere), turns /readyz to 503 while the disconnect handlers run,
// refuses new clients, closes the adapter, and Serve returns nil.
func TestShutdown(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		draining := make(chan string, 4)
		handled := make(chan struct{}, 4)
		release := make(chan struct{})
		closed := make(chan struct{})
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				s.OnDisconnect(func(reason string) {
					draining <- reason
					<-release
				})
				handled <- struct{}{}
			})
		}, server.WithAdapter(nil, nil, func() error { close(closed); return nil }))
		d := startDriver(t)
		for _, id := range []string{"a", "b"} {
			d.connected(id, ts.URL, opts)
			settle(d, id, mode)
			// The client sees its CONNECT reply before the server's
			// connection handler has run.
			recv(t, handled, "connection handler")
		}
		ts.cancel()
		for range 2 {
			if r := recv(t, draining, "disconnect handler"); r != "server shutting down" {
				t.Errorf("server-side reason %q, want server shutting down", r)
			}
		}
		for _, id := range []string{"a", "b"} {
			// As Node's io.close(): the transport closes without a
			// DISCONNECT packet, so that the client reconnects (to another
			// node of the cluster) rather than staying away. A polling
			// client between two polls (no GET held to carry the CLOSE)
			// sees its next poll refused, "transport error", as with Node.
			r := d.waitType(id, "disconnect")
			if r.Reason != "transport close" && !(mode == "polling" && r.Reason == "transport error") {
				t.Errorf("client %s disconnected with %q, want transport close", id, r.Reason)
			}
		}
		if code, body := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "shutting down\n" {
			t.Errorf("/readyz while draining = %d %q", code, body)
		}
		if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
			t.Errorf("/healthz while draining = %d", code)
		}
		d.connect("late", ts.URL, opts)
		d.waitType("late", "connect_error")
		select {
		case <-closed:
			t.Error("adapter closed before the disconnect handlers returned")
		default:
		}
		select {
		case err := <-ts.done:
			t.Fatalf("Serve returned %v before the disconnect handlers did", err)
		default:
		}
		close(release)
		err := recv(t, ts.done, "Serve's return")
		ts.done <- err
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		recv(t, closed, "adapter close")
		if err := ts.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown = %v", err)
		}
		if _, err := get2(ts.URL + "/healthz"); err == nil {
			t.Error("listener still open after Serve returned")
		}
	})
}

func get2(url string) (int, error) {
	c := &http.Client{Timeout: waitFor, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestShutdownDeadline: a handler that never returns does not hold Shutdown
// past its context; the error says what was cut short.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	entered := make(chan struct{}, 1)
	ready := make(chan struct{}, 1)
	t.Cleanup(func() { close(stuck) })
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.OnDisconnect(func(string) {
				entered <- struct{}{}
				<-stuck
			})
			ready <- struct{}{}
		})
	})
	d := startDriver(t)
	d.connected("a", ts.URL, transportModes[0].opts)
	// The client sees its CONNECT reply before the server's connection
	// handler has run: shut down only once the handler is in place.
	recv(t, ready, "connection handler")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := ts.Shutdown(ctx)
	recv(t, entered, "disconnect handler")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a stuck handler = %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(fmt.Sprint(err), "handlers") {
		t.Errorf("Shutdown error %q does not say the handlers were cut short", err)
	}
	serveErr := recv(t, ts.done, "Serve's return")
	ts.done <- serveErr
}

// goroutines returns the stacks of the live goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		f := strings.Fields(head)
		if len(f) >= 2 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

// TestNoGoroutineLeak: after Shutdown, none of the goroutines a server
// started for its clients (WebSocket, polling, upgraded) is left, nor those
// of the cluster adapter and its Redis transport. Not parallel, so that no
// other test's goroutines come and go meanwhile.
func TestNoGoroutineLeak(t *testing.T) {
	rs := redistest.StartStandalone(t)
	session := func(t *testing.T) {
		var es *echoServer
		// Pings every 200ms, so that heartbeat timers run; a pong may take
		// its time on a loaded machine without ending a session.
		cfg := server.Config{PingInterval: 200 * time.Millisecond, PingTimeout: 5 * time.Second}
		setup := func(srv *server.Server) { es = newEchoServer(srv) }
		var ts *testServer
		if strings.HasSuffix(t.Name(), "clustered") {
			cfg.Recovery.Enabled = true
			ts = startClusterServerWith(t, cfg, rs.URL(), setup)
			eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
		} else {
			ts = startServer(t, cfg, setup)
		}
		d := startDriver(t)
		for _, mode := range transportModes {
			d.connected(mode.name, ts.URL, mode.opts)
			settle(d, mode.name, mode.name)
			recv(t, es.sockets, "connection")
			d.call(mode.name, "echo", "x", bin([]byte{1}))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_, _ = ts.To("nobody-answers").EmitWithAck(ctx, "x")
			cancel()
		}
		if err := ts.Emit("all", 1); err != nil {
			t.Error(err)
		}
		d.send(map[string]any{"op": "disconnect", "id": "websocket"})
		recv(t, es.disconnects, "disconnect")
		if err := ts.stop(t); err != nil {
			t.Errorf("Serve = %v", err)
		}
	}
	// The first runs start whatever the libraries start once per process.
	t.Run("warmup", session)
	t.Run("warmup-clustered", session)
	before := goroutines()
	t.Run("single", session)
	t.Run("clustered", session)

	buf := make([]byte, 64)
	self := strings.Fields(string(buf[:runtime.Stack(buf, false)]))[1]
	deadline := time.Now().Add(waitFor)
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; !ok && id != self {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(leaked)
			t.Fatalf("%d goroutines left %v after Shutdown:\n\n%s", len(leaked), waitFor, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRun: Run listens on Config.Addr, serves until its context ends and
// returns nil after the graceful shutdown; an address in use is an error
// naming it.
func TestRun(t *testing.T) {
	t.Parallel()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := server.New(server.Config{Addr: addr, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	eventually(t, "Run serving /healthz", func() bool {
		code, err := get2("http://" + addr + "/healthz")
		return err == nil && code == http.StatusOK
	})

	other, err := server.New(server.Config{Addr: addr, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Run(context.Background()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Run on an address in use = %v, want an error naming %s", err, addr)
	}
	if err := other.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of the server that could not listen = %v", err)
	}

	cancel()
	if err := recv(t, done, "Run's return"); err != nil {
		t.Errorf("Run = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), ln); !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("Serve after shutdown = %v, want ErrServerClosed", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("Serve after shutdown left its listener open")
	}
}

// TestCORS, as Node's cors package: a configured origin, however written,
// is reflected; others and "null" are not; credentials only with a list and
// CORSCredentials; "*" is a literal * without credentials; without
// CORSOrigins no cross-origin page is allowed.
func TestCORS(t *testing.T) {
	t.Parallel()
	type answer struct{ origin, credentials, vary string }
	ask := func(ts *testServer, origin string) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		c := &http.Client{Timeout: waitFor, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return answer{resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"), resp.Header.Get("Vary")}
	}
	list := startServer(t, server.Config{CORSOrigins: []string{"HTTPS://App.Example/", "http://localhost:8080"}}, nil)
	if got := ask(list, "https://app.example"); got != (answer{"https://app.example", "", "Origin"}) {
		t.Errorf("listed origin: %+v, want it reflected with Vary: Origin and no credentials", got)
	}
	if got := ask(list, "http://localhost:8080"); got.origin != "http://localhost:8080" {
		t.Errorf("second listed origin: %+v", got)
	}
	for _, o := range []string{"https://evil.example", "null"} {
		if got := ask(list, o); got.origin != "" || got.credentials != "" {
			t.Errorf("origin %s, not listed: %+v", o, got)
		}
	}

	creds := startServer(t, server.Config{CORSOrigins: []string{"https://app.example", "null"}, CORSCredentials: true}, nil)
	if got := ask(creds, "https://app.example"); got.origin != "https://app.example" || got.credentials != "true" {
		t.Errorf("CORSCredentials, listed origin: %+v, want it reflected with credentials", got)
	}
	if got := ask(creds, "null"); got.origin != "null" {
		t.Errorf("null, listed: %+v", got)
	}
	if got := ask(creds, "https://evil.example"); got.origin != "" || got.credentials != "" {
		t.Errorf("CORSCredentials, other origin: %+v", got)
	}

	none := startServer(t, server.Config{}, nil)
	if got := ask(none, "https://app.example"); got != (answer{}) {
		t.Errorf("no CORSOrigins: %+v", got)
	}

	anyOrigin := startServer(t, server.Config{CORSOrigins: []string{"*"}}, nil)
	for _, o := range []string{"https://app.example", "https://evil.example", "null"} {
		if got := ask(anyOrigin, o); got.origin != "*" || got.credentials != "" {
			t.Errorf("CORSOrigins *, origin %s: %+v, want a literal * without credentials", o, got)
		}
	}
	// The preflight of a cross-origin POST.
	req, err := http.NewRequest(http.MethodOptions, anyOrigin.URL+"/socket.io/?EIO=4&transport=polling&sid=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := (&http.Client{Timeout: waitFor}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight with *: %s %v", resp.Status, resp.Header)
	}
}
