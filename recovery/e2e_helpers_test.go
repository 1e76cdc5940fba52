package recovery_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
	"github.com/sockstream/sockstream/recovery"
)

// ---- logging ----

type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// ---- in-process cluster with an in-memory packet log ----

// hubLog makes an adaptertest hub behave like the Redis stream for
// recovery: every durable broadcast a node publishes is appended, at the
// offset the hub gave it, to one MemoryLog all nodes restore from. The
// publications of all nodes are serialized so that the log receives the
// offsets in the hub's order, as a stream would.
type hubLog struct {
	hub *adaptertest.Hub
	log *recovery.MemoryLog
	mu  sync.Mutex
	err error // the first append that failed; checked at cleanup
}

type loggingTransport struct {
	*adaptertest.Transport
	hl *hubLog
}

func (t loggingTransport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	r := t.PublishBatch(ctx, []*adapter.Message{msg})
	return r[0].Offset, r[0].Err
}

func (t loggingTransport) PublishBatch(ctx context.Context, msgs []*adapter.Message) []adapter.PublishResult {
	t.hl.mu.Lock()
	defer t.hl.mu.Unlock()
	res := t.Transport.PublishBatch(ctx, msgs)
	for i, r := range res {
		d, ok := msgs[i].Data.(*adapter.BroadcastData)
		if r.Err != nil || r.Offset == "" || !ok || msgs[i].Type != adapter.Broadcast || d.RequestID != "" || d.Packet.ID != nil || d.Packet.Type != 2 {
			continue
		}
		if err := t.hl.log.AppendAt(recovery.Packet{Offset: r.Offset, Nsp: msgs[i].Nsp, UID: msgs[i].UID, Data: d.Packet.Data,
			Opts: recovery.PacketOptions{Rooms: d.Opts.Rooms, Except: d.Opts.Except, Volatile: d.Opts.Flags.Volatile},
		}); err != nil && t.hl.err == nil {
			t.hl.err = err
		}
	}
	return res
}

// ---- nodes ----

type node struct {
	t    *testing.T
	name string
	io   *socket.Server
	ts   *httptest.Server
	b    *adapter.Builder
	url  string
	once sync.Once
	stop func()
	// sessions is what the node's adapter persists to and restores from.
	sessions *recovery.Sessions
}

type nodeConfig struct {
	transport       adapter.Transport
	sessions        *recovery.Sessions
	maxDisconnect   time.Duration
	closeTransport  func()
	skipMiddlewares bool
}

func newNode(t *testing.T, name string, nc nodeConfig) *node {
	t.Helper()
	so := socket.DefaultServerOptions()
	csr := socket.DefaultConnectionStateRecovery()
	csr.SetMaxDisconnectionDuration(nc.maxDisconnect.Milliseconds())
	csr.SetSkipMiddlewares(nc.skipMiddlewares)
	so.SetConnectionStateRecovery(csr)
	b, err := adapter.New(nc.transport, adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		RequestTimeout:    5 * time.Second,
		Logger:            testLogger(t).With("node", name),
		Registerer:        prometheus.NewRegistry(),
		Sessions:          nc.sessions,
	})
	if err != nil {
		t.Fatal(err)
	}
	so.SetAdapter(b)
	n := &node{t: t, name: name, b: b, stop: nc.closeTransport, sessions: nc.sessions}
	n.io = socket.NewServer(nil, so)
	nsp := n.io.Of("/", nil)
	// The rooms of the "rooms" query parameter; a recovered socket skips
	// this (SkipMiddlewares) and gets its rooms from the session.
	nsp.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		if rooms := queryValue(s.Handshake().Query, "rooms"); rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				s.Join(socket.Room(r))
			}
		}
		s.SetData(map[string]any{"user": queryValue(s.Handshake().Query, "user")})
		next(nil)
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", n.io.ServeHandler(nil))
	n.ts = httptest.NewServer(mux)
	n.url = n.ts.URL
	t.Cleanup(n.close)
	return n
}

func queryValue(q map[string]any, k string) string {
	switch v := q[k].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	case []any:
		if len(v) > 0 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}

func (n *node) close() {
	n.once.Do(func() {
		done := make(chan struct{})
		go func() {
			n.io.Close(nil)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			n.t.Errorf("%s: server Close did not return", n.name)
		}
		n.ts.CloseClientConnections()
		n.ts.Close()
		if n.stop != nil {
			n.stop()
		}
	})
}

// socketRooms returns the rooms of socket sid on n, nil if n has no such
// socket.
func (n *node) socketRooms(sid string) []string {
	var rooms []string
	n.io.In(socket.Room(sid)).Local().FetchSockets()(func(ss []*socket.RemoteSocket, _ error) {
		for _, s := range ss {
			for _, r := range s.Rooms().Keys() {
				rooms = append(rooms, string(r))
			}
		}
	})
	return rooms
}

// socketData returns the data of socket sid on n.
func (n *node) socketData(sid string) any {
	var data any
	n.io.In(socket.Room(sid)).Local().FetchSockets()(func(ss []*socket.RemoteSocket, _ error) {
		for _, s := range ss {
			data = s.Data()
		}
	})
	return data
}

func waitPeers(t *testing.T, nodes ...*node) {
	t.Helper()
	eventually(t, 10*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			a := n.b.Adapter("/")
			if a == nil || a.AlivePeers() != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func attempts(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sockstream_recovery_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// restoreTime is the total time of the successful restores.
func restoreTime(t *testing.T, reg *prometheus.Registry) time.Duration {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sockstream_recovery_restore_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", "recovered") {
				return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
			}
		}
	}
	return 0
}

// persisted is how many sessions were persisted successfully.
func persisted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sockstream_recovery_sessions_persisted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", "ok") {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitPersisted waits until n sessions were persisted: the adapter writes
// them off the disconnection path, so a client reconnecting at once could
// otherwise come back before its session is stored.
func waitPersisted(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "the sessions are persisted", func() bool { return persisted(t, reg) >= float64(n) })
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

// ---- official clients ----

type clientEvent struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Sid       string `json:"sid"`
	Recovered bool   `json:"recovered"`
	Event     string `json:"event"`
	Args      []any  `json:"args"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	at        time.Time
}

type clients struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	events  []clientEvent
	changed chan struct{}
	exited  chan struct{}
	stderr  strings.Builder
}

func startClients(t *testing.T) *clients {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join("..", "testdata", "recovery", "clients.js"))
	c := &clients{t: t, changed: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command("node", script)
	c.cmd.Stderr = &lockedWriter{b: &c.stderr, mu: &c.mu}
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev clientEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			ev.at = time.Now()
			c.mu.Lock()
			c.events = append(c.events, ev)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	c.waitN("client process ready", 1, 10*time.Second, func(ev clientEvent) bool { return ev.Type == "ready" })
	return c
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (c *clients) stop() {
	_ = c.send(map[string]any{"cmd": "exit"})
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	_ = c.cmd.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.stderr.String(); s != "" && c.t.Failed() {
		c.t.Logf("node stderr:\n%s", s)
	}
}

func (c *clients) send(cmd map[string]any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

func (c *clients) do(cmd map[string]any) {
	c.t.Helper()
	if err := c.send(cmd); err != nil {
		c.t.Fatal(err)
	}
}

// connect connects client id to the main namespace of url and returns its
// connect event.
func (c *clients) connect(id, url string, query map[string]string) clientEvent {
	c.t.Helper()
	c.do(map[string]any{"cmd": "connect", "id": id, "url": url + "/", "query": query})
	return c.nextConnect(id, 0)
}

// nextConnect waits for the (n+1)-th connect event of id.
func (c *clients) nextConnect(id string, n int) clientEvent {
	c.t.Helper()
	evs := c.waitN("connect #"+fmt.Sprint(n+1)+" of "+id, n+1, 20*time.Second, func(ev clientEvent) bool {
		return ev.ID == id && (ev.Type == "connect" || ev.Type == "connect_error")
	})
	ev := evs[n]
	if ev.Type != "connect" {
		c.t.Fatalf("client %s: connect error: %s", id, ev.Message)
	}
	return ev
}

// drop closes the transport of client id and waits for its disconnection.
func (c *clients) drop(id string) {
	c.t.Helper()
	n := len(c.filter(func(ev clientEvent) bool { return ev.ID == id && ev.Type == "disconnect" }))
	c.do(map[string]any{"cmd": "drop", "id": id})
	c.waitN("disconnect of "+id, n+1, 10*time.Second, func(ev clientEvent) bool { return ev.ID == id && ev.Type == "disconnect" })
}

// reconnect reconnects client id, to url when not "".
func (c *clients) reconnect(id, url string) {
	c.t.Helper()
	cmd := map[string]any{"cmd": "reconnect", "id": id}
	if url != "" {
		cmd["url"] = url
	}
	c.do(cmd)
}

func (c *clients) waitN(what string, n int, timeout time.Duration, pred func(clientEvent) bool) []clientEvent {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		var got []clientEvent
		for _, ev := range c.events {
			if pred(ev) {
				got = append(got, ev)
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-c.exited:
			c.t.Fatalf("node client process exited while waiting for %s (%d/%d)", what, len(got), n)
		case <-deadline.C:
			c.t.Fatalf("timed out after %v waiting for %s: %d/%d", timeout, what, len(got), n)
		}
	}
}

func (c *clients) filter(pred func(clientEvent) bool) []clientEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []clientEvent
	for _, ev := range c.events {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func isEvent(id, name string) func(clientEvent) bool {
	return func(ev clientEvent) bool { return ev.Type == "event" && ev.ID == id && ev.Event == name }
}
