package adapter_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
)

// fastConfig is a Config with short liveness timings for tests.
func fastConfig() adapter.Config {
	return adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
	}
}

// testLogger sends the adapter's log lines to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

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

// node is one socket.io server with the cluster adapter, on a loopback
// httptest server.
type node struct {
	t    *testing.T
	name string
	io   *socket.Server
	ts   *httptest.Server
	tr   *adaptertest.Transport
	b    *adapter.Builder
	reg  *prometheus.Registry
	url  string
	once sync.Once
}

type nodeOption func(*socket.ServerOptions, *adapter.Config)

func withCSR() nodeOption {
	return func(o *socket.ServerOptions, _ *adapter.Config) {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(60_000)
		csr.SetSkipMiddlewares(true)
		o.SetConnectionStateRecovery(csr)
	}
}

func withNoBatch() nodeOption { return nil } // marker handled in newNode

func newNode(t *testing.T, hub *adaptertest.Hub, name string, cfg adapter.Config, opts ...nodeOption) *node {
	t.Helper()
	n := &node{t: t, name: name, tr: hub.NewTransport(), reg: prometheus.NewRegistry()}
	so := socket.DefaultServerOptions()
	noBatch := false
	for _, o := range opts {
		if o == nil {
			noBatch = true
			continue
		}
		o(so, &cfg)
	}
	cfg.Registerer = n.reg
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t).With("node", name)
	}
	var tr adapter.Transport = n.tr
	if noBatch {
		tr = adaptertest.NoBatch(n.tr)
	}
	b, err := adapter.New(tr, cfg)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	n.b = b
	so.SetAdapter(b)
	n.io = socket.NewServer(nil, so)
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", n.io.ServeHandler(nil))
	n.ts = httptest.NewServer(mux)
	n.url = n.ts.URL
	n.setup("/")
	t.Cleanup(n.close)
	return n
}

// setup installs on namespace nspName the middleware the tests rely on: a
// socket joins the rooms of its "rooms" query parameter (comma separated)
// and gets {"user": <"user" query parameter>, "node": <node name>} as data,
// before the client sees "connect".
func (n *node) setup(nspName string) socket.Namespace {
	nsp := n.io.Of(nspName, nil)
	nsp.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		q := s.Handshake().Query
		if rooms := queryValue(q, "rooms"); rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				s.Join(socket.Room(r))
			}
		}
		s.SetData(map[string]any{"user": queryValue(q, "user"), "node": n.name})
		next(nil)
	})
	return nsp
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

// adapter returns the cluster adapter of a namespace of n.
func (n *node) adapter(nsp string) *adapter.NamespaceAdapter {
	a := n.b.Adapter(nsp)
	if a == nil {
		n.t.Fatalf("%s: no adapter for %s", n.name, nsp)
	}
	return a
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
		_ = n.tr.Close()
	})
}

// metric returns the value of a counter or gauge of n's registry (summed
// over the series matching labels).
func (n *node) metric(name string, labels map[string]string) float64 {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			match := true
			for k, v := range labels {
				if have[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

// newCluster starts n nodes on one hub and waits until they know each other.
func newCluster(t *testing.T, count int, cfg adapter.Config, opts ...nodeOption) (*adaptertest.Hub, []*node) {
	t.Helper()
	hub := adaptertest.NewHub()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, hub, fmt.Sprintf("n%d", i), cfg, opts...)
	}
	waitPeers(t, nodes, "/")
	return hub, nodes
}

// waitPeers waits until the adapter of nsp on every node sees the others.
func waitPeers(t *testing.T, nodes []*node, nsp string) {
	t.Helper()
	eventually(t, 5*time.Second, "nodes see each other on "+nsp, func() bool {
		for _, n := range nodes {
			a := n.b.Adapter(nsp)
			if a == nil || a.AlivePeers() != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// eventually polls cond until it holds or the deadline passes.
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

// fetch runs FetchSockets on an operator and returns its result.
func fetch(op *socket.BroadcastOperator) ([]*socket.RemoteSocket, error) {
	var out []*socket.RemoteSocket
	var err error
	op.FetchSockets()(func(s []*socket.RemoteSocket, e error) { out, err = s, e })
	return out, err
}

func socketIDs(sockets []*socket.RemoteSocket) []string {
	ids := make([]string, 0, len(sockets))
	for _, s := range sockets {
		ids = append(ids, string(s.Id()))
	}
	slices.Sort(ids)
	return ids
}

// ---- Node clients ----

// clientEvent is one line printed by testdata/adapter/clients.js.
type clientEvent struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Sid     string `json:"sid"`
	Event   string `json:"event"`
	Args    []any  `json:"args"`
	WithAck bool   `json:"withAck"`
	Seq     int    `json:"seq"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// clients is one Node process running socket.io-client instances.
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
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	script, _ := filepath.Abs(filepath.Join("..", "testdata", "adapter", "clients.js"))
	c := &clients{t: t, changed: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command("node", script)
	c.cmd.Stderr = &syncWriter{b: &c.stderr, mu: &c.mu}
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
			c.mu.Lock()
			c.events = append(c.events, ev)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	c.wait(t, "client process ready", 10*time.Second, func(ev clientEvent) bool { return ev.Type == "ready" })
	return c
}

type syncWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *syncWriter) Write(p []byte) (int, error) {
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

// connect connects client id to url (a namespace URL) and returns its sid.
// query holds the query parameters (rooms, user); extra more connect
// options (ack, auth, noAck...).
func (c *clients) connect(id, url string, query map[string]string, extra map[string]any) string {
	t := c.t
	t.Helper()
	cmd := map[string]any{"cmd": "connect", "id": id, "url": url, "query": query}
	for k, v := range extra {
		cmd[k] = v
	}
	if err := c.send(cmd); err != nil {
		t.Fatal(err)
	}
	ev := c.wait(t, "connect of "+id, 10*time.Second, func(ev clientEvent) bool {
		return ev.ID == id && (ev.Type == "connect" || ev.Type == "connect_error")
	})
	if ev.Type != "connect" {
		t.Fatalf("client %s: connect error: %s", id, ev.Message)
	}
	return ev.Sid
}

func (c *clients) emit(id, event string, args ...any) {
	c.t.Helper()
	if err := c.send(map[string]any{"cmd": "emit", "id": id, "event": event, "args": args}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *clients) disconnect(id string) {
	_ = c.send(map[string]any{"cmd": "disconnect", "id": id})
}

// wait returns the first event satisfying pred, waiting up to timeout.
func (c *clients) wait(t testing.TB, what string, timeout time.Duration, pred func(clientEvent) bool) clientEvent {
	t.Helper()
	evs := c.waitN(t, what, 1, timeout, pred)
	return evs[0]
}

// waitN waits until n events satisfy pred and returns them.
func (c *clients) waitN(t testing.TB, what string, n int, timeout time.Duration, pred func(clientEvent) bool) []clientEvent {
	t.Helper()
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
			t.Fatalf("node client process exited while waiting for %s (%d/%d)\n%s", what, len(got), n, c.stderrText())
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s: %d/%d", timeout, what, len(got), n)
		}
	}
}

func (c *clients) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// filter returns the events satisfying pred so far.
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

// receivers returns the sorted ids of the clients that got event name.
func (c *clients) receivers(name string) []string {
	var ids []string
	for _, ev := range c.filter(isEvent(name)) {
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

func isEvent(name string) func(clientEvent) bool {
	return func(ev clientEvent) bool { return ev.Type == "event" && ev.Event == name }
}

func isEventFor(id, name string) func(clientEvent) bool {
	return func(ev clientEvent) bool { return ev.Type == "event" && ev.Event == name && ev.ID == id }
}

// bin decodes a {"$bin": base64} value printed by the client script.
func bin(t *testing.T, v any) []byte {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("not binary: %#v", v)
	}
	s, _ := m["$bin"].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64 %q: %v", s, err)
	}
	return b
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}

// adapterGoroutines counts the goroutines running code of package adapter
// or of the in-process transport.
func adapterGoroutines() (int, string) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var sample strings.Builder
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sockstream/adapter.(*NamespaceAdapter)") ||
			strings.Contains(g, "sockstream/adapter/adaptertest.(*Transport)") {
			n++
			if sample.Len() < 4000 {
				sample.WriteString(g + "\n\n")
			}
		}
	}
	return n, sample.String()
}
