package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// eventually polls cond until it holds, failing the test after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fastCluster has short heartbeats, so that the servers see each other
// quickly.
func fastCluster(url string) server.RedisConfig {
	return server.RedisConfig{
		URL:               url,
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  2 * time.Second,
		RequestTimeout:    3 * time.Second,
	}
}

// startClusterServer starts a server clustered over Redis at url, with
// metrics on a registry of its own.
func startClusterServer(t *testing.T, url string, setup func(*server.Server)) *testServer {
	t.Helper()
	return startClusterServerWith(t, server.Config{}, url, setup)
}

// startClusterServerWith is startClusterServer with a base config.
func startClusterServerWith(t *testing.T, cfg server.Config, url string, setup func(*server.Server)) *testServer {
	t.Helper()
	cfg.Registry = prometheus.NewRegistry()
	opt, err := server.ClusterOption(fastCluster(url), cfg.Recovery.Enabled, quiet(), cfg.Registry)
	if err != nil {
		t.Fatalf("cluster option: %v", err)
	}
	return startServer(t, cfg, setup, opt)
}

func readyz(t testing.TB, ts *testServer) int {
	code, _ := get(t, ts.URL+"/readyz")
	return code
}

// TestClusterReadyz: /readyz says 503 while Redis is unreachable (also from
// the start) and 200 once it answers again.
func TestClusterReadyz(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	proxy.Cut()
	ts := startClusterServer(t, "redis://"+proxy.Addr(), nil)
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "adapter not ready\n" {
		t.Errorf("/readyz with Redis unreachable from the start = %d %q", code, body)
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with Redis unreachable = %d", code)
	}
	proxy.Restore()
	eventually(t, "/readyz 200 once Redis is reachable", func() bool { return readyz(t, ts) == http.StatusOK })
	proxy.Cut()
	eventually(t, "/readyz 503 after the cut", func() bool { return readyz(t, ts) == http.StatusServiceUnavailable })
	proxy.Restore()
	eventually(t, "/readyz 200 after the restore", func() bool { return readyz(t, ts) == http.StatusOK })

	if err := ts.stop(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
	// Shutdown closed the transport: its connections to Redis are gone.
	eventually(t, "transport's connections closed", func() bool { return proxy.Conns() == 0 })
}

// TestClusterBroadcast: two Go servers on one Redis deliver each other's
// broadcasts to their clients, over every transport, and see each other's
// sockets.
func TestClusterBroadcast(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	setup := func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.Join("r")
			s.On("shout", func(e *server.Event) {
				if err := s.To("r").Emit("shout", e.Args...); err != nil {
					e.Ack(err.Error())
					return
				}
				e.Ack("sent")
			})
		})
	}
	a := startClusterServer(t, rs.URL(), setup)
	b := startClusterServer(t, rs.URL(), setup)
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	d := startDriver(t)
	// One client of each transport on each server.
	var onA, onB []string
	for _, mode := range transportModes {
		d.connected("a-"+mode.name, a.URL, mode.opts)
		settle(d, "a-"+mode.name, mode.name)
		onA = append(onA, "a-"+mode.name)
		d.connected("b-"+mode.name, b.URL, mode.opts)
		settle(d, "b-"+mode.name, mode.name)
		onB = append(onB, "b-"+mode.name)
	}
	all := append(slices.Clone(onA), onB...)

	if err := a.To("r").Emit("from-a", 1, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, id := range all {
		if got := d.waitEvent(id, "from-a").Args; !reflect.DeepEqual(got, []any{1.0, []byte{1, 2}}) {
			t.Errorf("%s got from-a %#v", id, got)
		}
	}
	if err := b.Emit("from-b", "x"); err != nil {
		t.Fatal(err)
	}
	for _, id := range all {
		d.waitEvent(id, "from-b")
	}
	// A client's broadcast, through its server, reaches the other server's
	// clients but not itself.
	if got := d.call("b-websocket", "shout", "hey"); !reflect.DeepEqual(got, []any{"sent"}) {
		t.Fatalf("shout ack = %v", got)
	}
	for _, id := range all {
		if id != "b-websocket" {
			d.waitEvent(id, "shout")
		}
	}
	if err := a.Emit("mark"); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("b-websocket", "mark")
	d.none(func(r report) bool { return r.ID == "b-websocket" && r.Event == "shout" }, "shout echoed to its sender")

	// Cluster-wide socket operations.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	eventually(t, "FetchSockets sees the 6 sockets of both servers", func() bool {
		socks, err := a.Of("/").FetchSockets(ctx)
		return err == nil && len(socks) == 6
	})
	b.Of("/").In("r").SocketsJoin("joined")
	eventually(t, "remote SocketsJoin", func() bool {
		socks, err := a.Of("/").In("joined").FetchSockets(ctx)
		return err == nil && len(socks) == 6
	})
	if err := a.To("joined").Emit("joined"); err != nil {
		t.Fatal(err)
	}
	for _, id := range all {
		d.waitEvent(id, "joined")
	}

	// A broadcast with acks collects the answers of both servers' clients.
	type result struct {
		args []any
		err  error
	}
	res := make(chan result, 1)
	go func() {
		a, err := a.To("r").EmitWithAck(ctx, "vote")
		res <- result{a, err}
	}()
	for _, id := range all {
		q := d.waitEvent(id, "vote")
		d.send(map[string]any{"op": "ack", "id": id, "n": *q.N, "args": []any{id}})
	}
	r := recv(t, res, "cluster EmitWithAck")
	var votes []string
	for _, v := range r.args {
		votes = append(votes, fmt.Sprint(v))
	}
	slices.Sort(votes)
	want := slices.Clone(all)
	slices.Sort(want)
	if r.err != nil || !slices.Equal(votes, want) {
		t.Errorf("cluster EmitWithAck = %q, %v; want %q", votes, r.err, want)
	}

	// Shutting one server down leaves the other serving its clients.
	if err := a.stop(t); err != nil {
		t.Errorf("Serve of a = %v", err)
	}
	for _, id := range onA {
		d.waitType(id, "disconnect")
	}
	if err := b.Emit("after", 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range onB {
		d.waitEvent(id, "after")
	}
	if m := metric(t, b, `sockstream_connected_sockets{namespace="/"}`); m != 3 {
		t.Errorf("b's connected sockets = %v, want 3", m)
	}
	// The adapter's metrics are on the server's /metrics: b published its
	// broadcast and received a's.
	eventually(t, "b counts its broadcast", func() bool {
		return metric(t, b, "sockstream_adapter_broadcasts_published_total") >= 1
	})
	if m := metric(t, b, "sockstream_adapter_broadcasts_received_total"); m < 1 {
		t.Errorf("b's sockstream_adapter_broadcasts_received_total = %v", m)
	}
}

// TestClusterOptionError: when the adapter cannot be built (here its
// metrics clash with ones already registered), the error says so and the
// transport already started is closed.
func TestClusterOptionError(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "sockstream_adapter_peers_alive", Help: "clash"}))
	_, err := server.ClusterOption(fastCluster("redis://"+proxy.Addr()), false, quiet(), reg)
	if err == nil || !strings.Contains(err.Error(), "cluster adapter") {
		t.Fatalf("ClusterOption with clashing metrics = %v, want a cluster adapter error", err)
	}
	eventually(t, "the transport's connections closed", func() bool { return proxy.Conns() == 0 })
}

// switchProxy forwards TCP connections to a target that can be changed:
// new connections go to the new target, as behind a load balancer.
type switchProxy struct {
	ln     net.Listener
	target atomic.Value // string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.target.Store(target)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *switchProxy) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", p.target.Load().(string), waitFor)
	if err != nil {
		return
	}
	defer u.Close()
	p.track(c)
	p.track(u)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(u, c)
		_ = u.Close()
		close(done)
	}()
	_, _ = io.Copy(c, u)
	_ = c.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// TestClusterRecovery: with recovery on, a clustered server keeps the
// session of a client that lost its connection in Redis; the client comes
// back, through a load balancer, to the other server, with its id and
// rooms, and gets the broadcasts made while it was away.
func TestClusterRecovery(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	cfg := server.Config{Recovery: server.RecoveryConfig{Enabled: true}}
	type conn struct {
		node      string
		s         *server.Socket
		recovered bool
	}
	conns := make(chan conn, 4)
	gone := make(chan string, 4)
	setup := func(node string) func(*server.Server) {
		return func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				if !s.Recovered() {
					s.Join("news")
				}
				s.OnDisconnect(func(reason string) { gone <- reason })
				conns <- conn{node, s, s.Recovered()}
			})
		}
	}
	a := startClusterServerWith(t, cfg, rs.URL(), setup("a"))
	b := startClusterServerWith(t, cfg, rs.URL(), setup("b"))
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	lb := newSwitchProxy(t, a.addr)
	d := startDriver(t)
	first := d.connected("c", "http://"+lb.ln.Addr().String(), map[string]any{
		"transports": []string{"websocket"}, "reconnection": true,
		"reconnectionDelay": 300, "reconnectionDelayMax": 300, "randomizationFactor": 0,
	})
	c := recv(t, conns, "connection")
	if c.node != "a" || c.recovered || first.Recovered {
		t.Fatalf("first connection on %s, recovered %v/%v", c.node, c.recovered, first.Recovered)
	}
	if err := b.To("news").Emit("n", 1); err != nil {
		t.Fatal(err)
	}
	if got := d.waitEvent("c", "n").Args; len(got) == 0 || got[0] != 1.0 {
		t.Fatalf("n = %v", got)
	}

	// The client loses its connection and comes back to b; both servers
	// broadcast while it is away.
	lb.target.Store(b.addr)
	d.send(map[string]any{"op": "close", "id": "c"})
	d.waitType("c", "disconnect")
	if r := recv(t, gone, "disconnection on the server"); r == "client namespace disconnect" {
		t.Fatalf("server-side reason %q is not recoverable", r)
	}
	if err := a.To("news").Emit("n", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.To("news").Emit("n", 3); err != nil {
		t.Fatal(err)
	}

	again := d.waitType("c", "connect")
	back := recv(t, conns, "reconnection")
	if back.node != "b" || !again.Recovered || !back.recovered {
		t.Fatalf("reconnection on %s, recovered: client %v, server %v", back.node, again.Recovered, back.recovered)
	}
	if again.Sid != first.Sid || back.s.ID() != c.s.ID() {
		t.Errorf("recovered with id %s (server %s), want %s", again.Sid, back.s.ID(), first.Sid)
	}
	if !slices.Contains(back.s.Rooms(), "news") {
		t.Errorf("recovered socket's rooms %q lack news", back.s.Rooms())
	}
	// Two servers' broadcasts have no order between them: the stream's
	// order (that of the XADDs, which Emit does not wait for) is the one
	// replayed.
	var missed []float64
	for range 2 {
		if got := d.waitEvent("c", "n").Args; len(got) > 0 {
			v, _ := got[0].(float64)
			missed = append(missed, v)
		}
	}
	slices.Sort(missed)
	if !slices.Equal(missed, []float64{2, 3}) {
		t.Errorf("missed packets = %v, want 2 and 3", missed)
	}
	if err := b.To("news").Emit("mark"); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("c", "mark")
	d.none(func(r report) bool { return r.Event == "n" }, "packet delivered twice")
	if m := metric(t, b, `sockstream_recovery_attempts_total{result="recovered"}`); m != 1 {
		t.Errorf("b's recovered attempts = %v, want 1", m)
	}
}
