package cluster_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/recovery"
)

// The mixed-cluster tests run one Go node (zishang520's server with the
// cluster adapter on the Redis Streams transport) and one Node node (socket.io
// with @socket.io/redis-streams-adapter 0.3.1, testdata/cluster/node-peer.js)
// on one real Redis, with official socket.io-client clients on both
// (testdata/cluster/node-clients.js), and check that every cluster operation
// started on one side acts on the other side's sockets.

const (
	goNodeName   = "go"
	nodeNodeName = "node"
	waitLong     = 10 * time.Second
)

// ---- Node processes ----

// proc is a Node process that reads JSON commands on stdin and prints JSON
// lines on stdout, every one of which is kept.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	events  []map[string]any
	changed chan struct{}
	exited  chan struct{}
	stderr  strings.Builder
	seq     atomic.Int64
	once    sync.Once
}

func startProc(t *testing.T, name, script string, env []string, args ...string) *proc {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required by the mixed-cluster tests: %v", err)
	}
	path, err := filepath.Abs(filepath.Join("..", "testdata", "cluster", script))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command("node", append([]string{path}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = procStderr{p}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			p.mu.Lock()
			p.events = append(p.events, ev)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

type procStderr struct{ p *proc }

func (w procStderr) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	w.p.stderr.Write(b)
	return len(b), nil
}

func (p *proc) stop() { p.once.Do(p.doStop) }

func (p *proc) doStop() {
	_ = p.send(map[string]any{"cmd": "exit"})
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.stderr.String(); s != "" && p.t.Failed() {
		p.t.Logf("%s stderr:\n%s", p.name, s)
	}
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// checkNodeDebugLog fails the test for every line of the Node packages'
// debug log saying a message of the Go node could not be handled. Unknown
// types 1, 2 and 13 are expected: the heartbeats and ADAPTER_CLOSE of the
// Go adapter, which 0.3 does not use and ignores.
func checkNodeDebugLog(t *testing.T, log string) {
	t.Helper()
	bad := []string{"invalid format", "unknown response type", "error while", "something went wrong"}
	for _, line := range strings.Split(log, "\n") {
		if _, typ, ok := strings.Cut(line, "unknown message type: "); ok {
			if typ = strings.TrimSpace(typ); typ != "1" && typ != "2" && typ != "13" {
				t.Errorf("the Node node could not handle a message: %s", line)
			}
			continue
		}
		for _, b := range bad {
			if strings.Contains(line, b) {
				t.Errorf("the Node node could not handle a message: %s", line)
			}
		}
	}
}

func (p *proc) send(cmd map[string]any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encoding command: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing to %s: %w", p.name, err)
	}
	return nil
}

// waitN waits until n events satisfy pred and returns them.
func (p *proc) waitN(t testing.TB, what string, n int, pred func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		var got []map[string]any
		for _, ev := range p.events {
			if pred(ev) {
				got = append(got, ev)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-p.exited:
			p.mu.Lock()
			stderr := p.stderr.String()
			p.mu.Unlock()
			t.Fatalf("%s exited while waiting for %s (%d/%d)\n%s", p.name, what, len(got), n, stderr)
		case <-deadline.C:
			t.Fatalf("%s: timed out after %v waiting for %s: %d/%d", p.name, waitLong, what, len(got), n)
		}
	}
}

func (p *proc) wait(t testing.TB, what string, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	return p.waitN(t, what, 1, pred)[0]
}

// filter returns the events so far that satisfy pred.
func (p *proc) filter(pred func(map[string]any) bool) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, ev := range p.events {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// call sends a command to the Node peer and returns its reply.
func (p *proc) call(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	seq := float64(p.seq.Add(1))
	cmd["seq"] = seq
	if err := p.send(cmd); err != nil {
		t.Fatal(err)
	}
	reply := p.wait(t, fmt.Sprintf("reply to %v", cmd["cmd"]), func(ev map[string]any) bool { return ev["seq"] == seq })
	if reply["type"] == "error" {
		t.Fatalf("%s: %v failed: %v", p.name, cmd["cmd"], reply["message"])
	}
	return reply
}

func str(v any) string { s, _ := v.(string); return s }

// ---- the mixed cluster ----

type goNode struct {
	io    *socket.Server
	tr    *cluster.Transport
	b     *adapter.Builder
	url   string
	close func() // idempotent; also run at cleanup
}

type mixed struct {
	redis   *redistest.Server
	node    *proc // the Node reference node
	nodeURL string
	nodeUID map[string]string // namespace -> uid of the Node adapter
	gonode  *goNode
	clients *proc
}

// testLogger sends log lines to t.Log until the test ends.
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

type mixedOptions struct {
	streamCount int
	nsps        []string // created on both nodes at start
	recovery    bool     // connection state recovery on both nodes
}

// startMixed starts Redis, the Node node, the Go node and the client
// process.
func startMixed(t *testing.T, o mixedOptions) *mixed {
	t.Helper()
	m := &mixed{redis: redistest.StartStandalone(t)}

	cfg, _ := json.Marshal(map[string]any{
		"name": nodeNodeName, "port": 0, "redisUrl": m.redis.URL(), "streamCount": o.streamCount,
		"heartbeatInterval": 200, "heartbeatTimeout": 1000, "namespaces": o.nsps, "recovery": o.recovery,
	})
	// The Node packages report what they cannot handle (a message they fail
	// to decode, an unknown type, a failed publish) only as debug lines.
	m.node = startProc(t, "node-peer", "node-peer.js",
		[]string{"DEBUG=socket.io-adapter,socket.io-redis-streams-adapter", "DEBUG_COLORS=0", "DEBUG_HIDE_DATE=1"}, string(cfg))
	t.Cleanup(func() { checkNodeDebugLog(t, m.node.stderrText()) })
	ready := m.node.wait(t, "node peer listening", func(ev map[string]any) bool { return ev["type"] == "listening" })
	m.nodeURL = fmt.Sprintf("http://127.0.0.1:%v", ready["port"])
	m.nodeUID = map[string]string{}
	for k, v := range ready["uids"].(map[string]any) {
		m.nodeUID[k] = str(v)
	}

	m.gonode = startGoNode(t, m.redis.URL(), o)
	m.clients = startProc(t, "node-clients", "node-clients.js", nil)
	m.clients.wait(t, "clients ready", func(ev map[string]any) bool { return ev["type"] == "ready" })
	return m
}

func startGoNode(t *testing.T, redisURL string, o mixedOptions) *goNode {
	t.Helper()
	log := testLogger(t).With("node", goNodeName)
	tr, err := cluster.New(cluster.Options{
		URL:         redisURL,
		StreamCount: o.streamCount,
		BlockTime:   time.Second,
		Logger:      log,
		Registerer:  prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	cfg := adapter.Config{
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
		RequestTimeout:    3 * time.Second,
		Logger:            log,
		Registerer:        prometheus.NewRegistry(),
	}
	if o.recovery {
		// The transport's client and streams, and Node's key prefix:
		// sessions and offsets mean the same on both nodes.
		plog, err := recovery.NewStreamLog(tr.Client(), recovery.StreamLogOptions{StreamCount: o.streamCount, Logger: log})
		if err != nil {
			_ = tr.Close()
			t.Fatalf("recovery.NewStreamLog: %v", err)
		}
		cfg.Sessions = &recovery.Sessions{Store: recovery.NewRedisStore(tr.Client(), ""), Log: plog, Logger: log}
	}
	b, err := adapter.New(tr, cfg)
	if err != nil {
		_ = tr.Close()
		t.Fatalf("adapter.New: %v", err)
	}
	so := socket.DefaultServerOptions()
	so.SetAdapter(b)
	if o.recovery {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(60_000)
		csr.SetSkipMiddlewares(true)
		so.SetConnectionStateRecovery(csr)
	}
	g := &goNode{io: socket.NewServer(nil, so), tr: tr, b: b}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", g.io.ServeHandler(nil))
	ts := httptest.NewServer(mux)
	g.url = ts.URL
	var once sync.Once
	g.close = func() {
		once.Do(func() {
			// The server first (its adapters unsubscribe), then the
			// transport under them.
			done := make(chan struct{})
			go func() {
				g.io.Close(nil)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("Go server Close did not return")
			}
			ts.CloseClientConnections()
			ts.Close()
			if err := tr.Close(); err != nil {
				t.Errorf("transport Close: %v", err)
			}
		})
	}
	t.Cleanup(g.close)
	for _, name := range o.nsps {
		nsp := g.io.Of(name, nil)
		// Same behavior as node-peer.js: rooms from the query, data
		// {user, node}.
		nsp.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
			q := s.Handshake().Query
			if rooms := queryValue(q, "rooms"); rooms != "" {
				for _, r := range strings.Split(rooms, ",") {
					s.Join(socket.Room(r))
				}
			}
			s.SetData(map[string]any{"user": queryValue(q, "user"), "node": goNodeName})
			next(nil)
		})
	}
	eventually(t, waitLong, "transport ready", tr.Ready)
	return g
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

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connect connects client id to the namespace nsp of baseURL and returns
// its sid.
func (m *mixed) connect(t *testing.T, id, baseURL, nsp, rooms string) string {
	t.Helper()
	if err := m.clients.send(map[string]any{"cmd": "connect", "id": id, "url": baseURL + nsp,
		"query": map[string]string{"rooms": rooms, "user": "user-" + id}}); err != nil {
		t.Fatal(err)
	}
	ev := m.clients.wait(t, "connect of "+id, func(ev map[string]any) bool {
		return ev["id"] == id && (ev["type"] == "connect" || ev["type"] == "connect_error")
	})
	if ev["type"] != "connect" {
		t.Fatalf("client %s: %v", id, ev["message"])
	}
	return str(ev["sid"])
}

func isEvent(name string) func(map[string]any) bool {
	return func(ev map[string]any) bool { return ev["type"] == "event" && ev["event"] == name }
}

// receivers returns the sorted ids of the clients that got event name.
func (m *mixed) receivers(name string) []string {
	var ids []string
	for _, ev := range m.clients.filter(isEvent(name)) {
		ids = append(ids, str(ev["id"]))
	}
	slices.Sort(ids)
	return ids
}

// syncNodes makes sure each node reads what the other publishes in nsp:
// the Node adapter starts its XREAD at "$" in the background, with nothing
// telling when, so a broadcast published before that is never seen. Each
// side broadcasts numbered probes until the given client of the other side
// gets one. With nodeClient "", only the Node -> Go direction is checked
// (for a stream Node nodes do not read).
func (m *mixed) syncNodes(t *testing.T, nsp, goClient, nodeClient string) {
	t.Helper()
	probe := func(what, client string, publish func(ev string)) {
		deadline := time.Now().Add(waitLong)
		for i := 0; ; i++ {
			ev := fmt.Sprintf("sync-%s-%s-%d", strings.Trim(nsp, "/"), what, i)
			publish(ev)
			got := false
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if len(m.clients.filter(func(e map[string]any) bool { return isEvent(ev)(e) && e["id"] == client })) > 0 {
					got = true
					break
				}
			}
			if got {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no probe of %s reached client %s in %v", nsp, what, client, waitLong)
			}
		}
	}
	if nodeClient != "" {
		probe("go2node", nodeClient, func(ev string) {
			if err := m.gonode.io.Of(nsp, nil).Emit(ev); err != nil {
				t.Fatal(err)
			}
		})
	}
	probe("node2go", goClient, func(ev string) {
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": nsp, "event": ev, "args": []any{}})
	})
}

// marker broadcasts a sentinel from one side to every client of nsp and
// waits until all want clients got it: a broadcast sent before it by the
// same node on the same stream has reached them by then.
func (m *mixed) marker(t *testing.T, fromGo bool, nsp string, want int) {
	t.Helper()
	ev := fmt.Sprintf("marker-%d", m.node.seq.Add(1))
	if fromGo {
		if err := m.gonode.io.Of(nsp, nil).Emit(ev); err != nil {
			t.Fatal(err)
		}
	} else {
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": nsp, "event": ev, "args": []any{}})
	}
	m.clients.waitN(t, ev, want, isEvent(ev))
}

func fetch(op *socket.BroadcastOperator) ([]*socket.RemoteSocket, error) {
	var out []*socket.RemoteSocket
	var err error
	op.FetchSockets()(func(s []*socket.RemoteSocket, e error) { out, err = s, e })
	return out, err
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return reflect.DeepEqual(x, y)
}

func sortedStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, str(e))
		}
	case []string:
		out = slices.Clone(x)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// ---- tests ----

func TestMixedCluster(t *testing.T) {
	t.Parallel()
	m := startMixed(t, mixedOptions{streamCount: 1, nsps: []string{"/"}})
	g := m.gonode
	// a, b on the Node node; c, d on the Go node; a and c in r1, b and d in r2.
	sids := map[string]string{
		"a": m.connect(t, "a", m.nodeURL, "/", "r1"),
		"b": m.connect(t, "b", m.nodeURL, "/", "r2"),
		"c": m.connect(t, "c", g.url, "/", "r1"),
		"d": m.connect(t, "d", g.url, "/", "r2"),
	}
	m.syncNodes(t, "/", "c", "a")
	all := []string{"a", "b", "c", "d"}

	t.Run("serverCount", func(t *testing.T) {
		if got := g.io.Of("/", nil).Adapter().ServerCount(); got != 2 {
			t.Errorf("Go ServerCount %d, want 2", got)
		}
		if got := m.node.call(t, map[string]any{"cmd": "serverCount", "nsp": "/"})["count"]; got != 2.0 {
			t.Errorf("Node serverCount %v, want 2", got)
		}
	})

	binArg := []byte{0, 1, 2, 254, 255}
	// Characters JSON encoders disagree on (escaping of <>&, U+2028) and
	// one outside the BMP (a surrogate pair in JavaScript).
	const tricky = "é\u2028<>&\"\\\n\U0001F600"
	cases := []struct {
		name         string
		rooms        []string
		except       []string
		want         []string
		args         []any // as sent by Go
		nodeArgs     []any // the same, as node-peer.js reads them
		wantReceived []any // as the clients print them
	}{
		{"all", nil, nil, all, []any{"x", 1.5, map[string]any{"k": []any{true, nil}}, tricky},
			nil, []any{"x", 1.5, map[string]any{"k": []any{true, nil}}, tricky}},
		{"room", []string{"r1"}, nil, []string{"a", "c"}, []any{"r1 only"}, nil, []any{"r1 only"}},
		{"rooms-except", []string{"r1", "r2"}, []string{"r1"}, []string{"b", "d"}, []any{}, nil, []any{}},
		{"except", nil, []string{"r2"}, []string{"a", "c"}, []any{}, nil, []any{}},
		{"binary", []string{"r2"}, nil, []string{"b", "d"},
			[]any{binArg, map[string]any{"nested": []byte("hi"), "n": 300}},
			[]any{map[string]any{"$bin": base64.StdEncoding.EncodeToString(binArg)}, map[string]any{"nested": map[string]any{"$bin": "aGk="}, "n": 300}},
			[]any{map[string]any{"$bin": base64.StdEncoding.EncodeToString(binArg)}, map[string]any{"nested": map[string]any{"$bin": "aGk="}, "n": 300}}},
	}
	for _, side := range []string{"go", "node"} {
		for _, c := range cases {
			t.Run("broadcast-from-"+side+"/"+c.name, func(t *testing.T) {
				ev := "bc-" + side + "-" + c.name
				if side == "go" {
					op := g.io.To(toRooms(c.rooms)...).Except(toRooms(c.except)...)
					if err := op.Emit(ev, c.args...); err != nil {
						t.Fatal(err)
					}
				} else {
					args := c.nodeArgs
					if args == nil {
						args = c.args
					}
					m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": orEmpty(c.rooms),
						"except": orEmpty(c.except), "event": ev, "args": args})
				}
				m.marker(t, side == "go", "/", len(all))
				if got := m.receivers(ev); !slices.Equal(got, c.want) {
					t.Errorf("receivers %v, want %v", got, c.want)
				}
				for _, e := range m.clients.filter(isEvent(ev)) {
					if !equalJSON(e["args"], c.wantReceived) {
						t.Errorf("client %v got %v, want %v", e["id"], e["args"], c.wantReceived)
					}
				}
			})
		}
	}

	t.Run("broadcast-from-node/date-with-binary", func(t *testing.T) {
		// With binary in it, the Node node MessagePack-encodes the entry, a
		// Date as the timestamp extension; JSON (the Node node's own
		// clients) turns it into its ISO string: the Go node's clients
		// must get the very same string, not encoding/json's RFC 3339 of
		// the time.Time the codec decodes it to.
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "event": "bc-date",
			"args": []any{map[string]any{"$bin": "AQ=="}, map[string]any{"$date": "2023-11-14T22:13:20.5Z"}}})
		m.marker(t, false, "/", len(all))
		if got := m.receivers("bc-date"); !slices.Equal(got, all) {
			t.Fatalf("receivers %v", got)
		}
		want := []any{map[string]any{"$bin": "AQ=="}, "2023-11-14T22:13:20.500Z"}
		for _, e := range m.clients.filter(isEvent("bc-date")) {
			if !equalJSON(e["args"], want) {
				t.Errorf("client %v got %v, want %v (a time.Time reaching zishang520's JSON encoder)", e["id"], e["args"], want)
			}
		}
	})

	t.Run("broadcastWithAck-from-go", func(t *testing.T) {
		type res struct {
			args []any
			err  error
		}
		ch := make(chan res, 1)
		err := g.io.To("r1", "r2").Except("r2").Timeout(5*time.Second).Emit("g-ask", "q", socket.Ack(func(args []any, err error) {
			ch <- res{args, err}
		}))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			var ids []string
			for _, a := range r.args {
				m, _ := a.(map[string]any)
				ids = append(ids, str(m["id"]))
			}
			if slices.Sort(ids); r.err != nil || !slices.Equal(ids, []string{"a", "c"}) {
				t.Errorf("acks %v err %v, want from a (Node) and c (Go)", r.args, r.err)
			}
		case <-time.After(waitLong):
			t.Fatal("no acks")
		}
		for _, e := range m.clients.filter(isEvent("g-ask")) {
			if e["withAck"] != true || !equalJSON(e["args"], []any{"q"}) {
				t.Errorf("client got %v", e)
			}
		}
	})

	t.Run("broadcastWithAck-from-node", func(t *testing.T) {
		reply := m.node.call(t, map[string]any{"cmd": "broadcastWithAck", "nsp": "/", "except": []string{"r1"},
			"event": "n-ask", "args": []any{map[string]any{"$bin": "AQ=="}}, "timeout": 5000})
		var ids []string
		for _, a := range reply["responses"].([]any) {
			ids = append(ids, str(a.(map[string]any)["id"]))
		}
		if slices.Sort(ids); reply["type"] != "acks" || !slices.Equal(ids, []string{"b", "d"}) {
			t.Errorf("Node got %v, want acks from b (Node) and d (Go)", reply)
		}
		for _, e := range m.clients.filter(isEvent("n-ask")) {
			if e["withAck"] != true || !equalJSON(e["args"], []any{map[string]any{"$bin": "AQ=="}}) {
				t.Errorf("client got %v", e)
			}
		}
	})

	t.Run("fetchSockets-from-go", func(t *testing.T) {
		sockets, err := fetch(g.io.In())
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		var ids []string
		for _, s := range sockets {
			ids = append(ids, string(s.Id()))
		}
		if slices.Sort(ids); !slices.Equal(ids, sorted(sids["a"], sids["b"], sids["c"], sids["d"])) {
			t.Fatalf("fetched %v", ids)
		}
		sockets, err = fetch(g.io.In(socket.Room(sids["a"])))
		if err != nil || len(sockets) != 1 {
			t.Fatalf("fetch a: %v %v", len(sockets), err)
		}
		a := sockets[0]
		var rooms []string
		for _, r := range a.Rooms().Keys() {
			rooms = append(rooms, string(r))
		}
		if slices.Sort(rooms); !slices.Equal(rooms, sorted(sids["a"], "r1")) {
			t.Errorf("rooms of a %v", rooms)
		}
		if !equalJSON(a.Data(), map[string]any{"user": "user-a", "node": nodeNodeName}) {
			t.Errorf("data of a %#v", a.Data())
		}
		h := a.Handshake()
		if h == nil {
			t.Fatal("no handshake")
		}
		if queryValue(h.Query, "user") != "user-a" || queryValue(h.Query, "EIO") != "4" ||
			!strings.Contains(h.Url, "user=user-a") || h.Address == "" || h.Issued == 0 ||
			h.Time == "" || h.Headers == nil || h.Headers["host"] == nil {
			t.Errorf("handshake of a %+v", h)
		}
		// Rooms and except select the Node node's sockets.
		sockets, err = fetch(g.io.In("r2").Except("r1"))
		if err != nil || len(sockets) != 2 {
			t.Fatalf("fetch r2: %d %v", len(sockets), err)
		}
	})

	t.Run("remoteSocket-from-go", func(t *testing.T) {
		// A Node socket fetched by Go, driven from Go: emit, join, leave.
		sockets, err := fetch(g.io.In(socket.Room(sids["b"])))
		if err != nil || len(sockets) != 1 {
			t.Fatalf("fetch b: %d %v", len(sockets), err)
		}
		b := sockets[0]
		if err := b.Emit("direct", "to-b"); err != nil {
			t.Fatal(err)
		}
		b.Join("solo")
		b.Leave("r2")
		m.marker(t, true, "/", 4)
		if got := m.receivers("direct"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("direct receivers %v", got)
		}
		eventually(t, waitLong, "b in solo and out of r2 on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return slices.Equal(sortedStrings(rooms[sids["b"]]), sorted(sids["b"], "solo"))
		})
		b.Join("r2")
		eventually(t, waitLong, "b back in r2", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return slices.Contains(sortedStrings(rooms[sids["b"]]), "r2")
		})
	})

	t.Run("fetchSockets-from-node", func(t *testing.T) {
		reply := m.node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/"})
		got := map[string]map[string]any{}
		for _, s := range reply["sockets"].([]any) {
			s := s.(map[string]any)
			got[str(s["id"])] = s
		}
		if len(got) != 4 {
			t.Fatalf("Node fetched %d sockets: %v", len(got), reply["sockets"])
		}
		d, ok := got[sids["d"]]
		if !ok {
			t.Fatalf("Node did not fetch d (%s) of the Go node", sids["d"])
		}
		if r := sortedStrings(d["rooms"]); !slices.Equal(r, sorted(sids["d"], "r2")) {
			t.Errorf("rooms of d %v", r)
		}
		if !equalJSON(d["data"], map[string]any{"user": "user-d", "node": goNodeName}) {
			t.Errorf("data of d %v", d["data"])
		}
		h, _ := d["handshake"].(map[string]any)
		if h == nil || !strings.Contains(str(h["url"]), "user=user-d") || str(h["address"]) == "" ||
			str(h["time"]) == "" || h["issued"] == nil || h["issued"] == 0.0 || h["headers"] == nil || h["query"] == nil {
			t.Errorf("handshake of d %v", h)
		}
		t.Run("node-shape", func(t *testing.T) {
			// Node code reads handshake.query.user and
			// handshake.headers.connection as strings: Node's
			// querystring and http give a string for a single value, and
			// header names in lower case; handshake.address is the
			// client's IP, without a port. A Go socket must look the same
			// to a Node node. (The Go adapter builds this in
			// adapter/convert.go, socketInfo, from zishang520's
			// handshake.)
			q, _ := h["query"].(map[string]any)
			headers, _ := h["headers"].(map[string]any)
			if q["user"] != "user-d" || q["EIO"] != "4" || q["transport"] != "websocket" {
				t.Errorf("query of d as Node sees it: %v, want single values as strings (user: \"user-d\")", q)
			}
			if headers["connection"] != "Upgrade" || headers["upgrade"] != "websocket" {
				t.Errorf("headers of d as Node sees them: %v, want lower-case names and string values (connection: \"Upgrade\")", headers)
			}
			if h["address"] != "127.0.0.1" {
				t.Errorf("address of d as Node sees it: %v, want the IP alone (127.0.0.1)", h["address"])
			}
		})
		reply = m.node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/", "rooms": []string{"r1"}})
		var ids []string
		for _, s := range reply["sockets"].([]any) {
			ids = append(ids, str(s.(map[string]any)["id"]))
		}
		if slices.Sort(ids); !slices.Equal(ids, sorted(sids["a"], sids["c"])) {
			t.Errorf("Node fetched r1 %v", ids)
		}
	})

	t.Run("serverSideEmit-go-to-node", func(t *testing.T) {
		m.node.call(t, map[string]any{"cmd": "listen", "nsp": "/", "event": "g-ping"})
		m.node.call(t, map[string]any{"cmd": "listen", "nsp": "/", "event": "g-hello"})
		if err := g.io.ServerSideEmit("g-hello", "world", []byte{7}); err != nil {
			t.Fatal(err)
		}
		ev := m.node.wait(t, "g-hello", func(ev map[string]any) bool { return ev["type"] == "sse" && ev["event"] == "g-hello" })
		if !equalJSON(ev["args"], []any{"world", map[string]any{"$bin": "Bw=="}}) || ev["withAck"] != false {
			t.Errorf("Node got %v", ev)
		}
		type res struct {
			args []any
			err  error
		}
		ch := make(chan res, 1)
		if err := g.io.ServerSideEmitWithAck("g-ping", "q", []byte{1, 2})(func(args []any, err error) { ch <- res{args, err} }); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-ch:
			if r.err != nil || len(r.args) != 1 {
				t.Fatalf("acks %v err %v", r.args, r.err)
			}
			resp, _ := r.args[0].(map[string]any)
			args, _ := resp["args"].([]any)
			if resp["node"] != nodeNodeName || len(args) != 2 || args[0] != "q" || !reflect.DeepEqual(args[1], []byte{1, 2}) {
				t.Errorf("ack from Node %#v", r.args[0])
			}
		case <-time.After(waitLong):
			t.Fatal("no ack from the Node node")
		}
	})

	t.Run("serverSideEmit-node-to-go", func(t *testing.T) {
		hello := make(chan []any, 1)
		g.io.On("n-hello", func(args ...any) {
			select {
			case hello <- args:
			default:
			}
		})
		g.io.On("n-ping", func(args ...any) {
			ack, ok := args[len(args)-1].(socket.Ack)
			if !ok || len(args) != 3 {
				t.Errorf("n-ping args %#v", args)
				return
			}
			b, _ := args[1].([]byte)
			ack([]any{map[string]any{"node": goNodeName, "bin": []byte{3, 4}, "got": args[0], "echo": b}}, nil)
		})
		m.node.call(t, map[string]any{"cmd": "serverSideEmit", "nsp": "/", "event": "n-hello", "args": []any{"world", 2}})
		select {
		case args := <-hello:
			if !equalJSON(args, []any{"world", 2}) {
				t.Errorf("Go got %v", args)
			}
		case <-time.After(waitLong):
			t.Fatal("n-hello never reached the Go node")
		}
		reply := m.node.call(t, map[string]any{"cmd": "serverSideEmit", "nsp": "/", "event": "n-ping",
			"args": []any{"q", map[string]any{"$bin": "CQg="}}, "ack": true})
		want := []any{map[string]any{"node": goNodeName, "bin": map[string]any{"$bin": "AwQ="}, "got": "q", "echo": map[string]any{"$bin": "CQg="}}}
		if reply["type"] != "acks" || !equalJSON(reply["responses"], want) {
			t.Errorf("Node got %v, want acks %v", reply, want)
		}
	})

	t.Run("socketsJoin-leave", func(t *testing.T) {
		// From Go: r1 members (a on Node, c on Go) join j1.
		g.io.In("r1").SocketsJoin("j1")
		eventually(t, waitLong, "a in j1 on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return slices.Contains(sortedStrings(rooms[sids["a"]]), "j1") && !slices.Contains(sortedStrings(rooms[sids["b"]]), "j1")
		})
		// From Node: r2 members (b on Node, d on Go) join j2, and j1
		// members leave r1.
		m.node.call(t, map[string]any{"cmd": "socketsJoin", "nsp": "/", "rooms": []string{"r2"}, "join": []string{"j2"}})
		m.node.call(t, map[string]any{"cmd": "socketsLeave", "nsp": "/", "rooms": []string{"j1"}, "leave": []string{"r1"}})
		eventually(t, waitLong, "d in j2 and c out of r1 on the Go node", func() bool {
			local, err := fetch(g.io.Local().In("j2"))
			if err != nil || len(local) != 1 || string(local[0].Id()) != sids["d"] {
				return false
			}
			inR1, err := fetch(g.io.Local().In("r1"))
			return err == nil && len(inR1) == 0
		})
		// From Go: everyone leaves "solo" (b on Node joined it above).
		g.io.SocketsLeave("solo")
		eventually(t, waitLong, "b out of solo on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return !slices.Contains(sortedStrings(rooms[sids["b"]]), "solo")
		})
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"j1", "j2"}, "event": "to-j", "args": []any{}})
		_ = g.io.To("r1").Emit("to-r1")
		m.marker(t, false, "/", 4)
		m.marker(t, true, "/", 4)
		if got := m.receivers("to-j"); !slices.Equal(got, all) {
			t.Errorf("j1+j2 receivers %v", got)
		}
		if got := m.receivers("to-r1"); len(got) != 0 {
			t.Errorf("r1 should be empty, got %v", got)
		}
	})

	t.Run("disconnectSockets", func(t *testing.T) {
		isDisconnect := func(id string) func(map[string]any) bool {
			return func(ev map[string]any) bool { return ev["type"] == "disconnect" && ev["id"] == id }
		}
		// From Go: j2 members (b on Node, d on Go).
		g.io.In("j2").DisconnectSockets(false)
		for _, id := range []string{"b", "d"} {
			ev := m.clients.wait(t, "disconnect of "+id, isDisconnect(id))
			if ev["reason"] != "io server disconnect" {
				t.Errorf("%s: reason %v", id, ev["reason"])
			}
		}
		// From Node: everyone left (a on Node, c on Go), closing.
		m.node.call(t, map[string]any{"cmd": "disconnectSockets", "nsp": "/", "close": true})
		for _, id := range []string{"a", "c"} {
			m.clients.wait(t, "disconnect of "+id, isDisconnect(id))
		}
		eventually(t, waitLong, "no socket left", func() bool {
			s, err := fetch(g.io.In())
			return err == nil && len(s) == 0
		})
	})

	t.Run("node-node-leaves", func(t *testing.T) {
		// Node 0.3 sends no heartbeats: the Go node counts it through the
		// pub/sub subscription only, and must stop waiting for it as soon
		// as it is gone.
		m.node.stop()
		eventually(t, waitLong, "Go ServerCount back to 1", func() bool {
			return g.io.Of("/", nil).Adapter().ServerCount() == 1
		})
		// Waiting for it would end in a timeout error.
		if sockets, err := fetch(g.io.In()); err != nil || len(sockets) != 0 {
			t.Errorf("fetch after the Node node left: %d sockets, %v", len(sockets), err)
		}
	})
}

func toRooms(rs []string) []socket.Room {
	out := make([]socket.Room, len(rs))
	for i, r := range rs {
		out[i] = socket.Room(r)
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// With streamCount 2 both implementations put each namespace on the stream
// JavaScript's hash picks: "/" (hash 47) on socket.io-1, "/a" (1554) on
// socket.io-0, "/orders-namespace" (-2133015902, index -0, which JavaScript
// prints "0") on socket.io-0 too, and "/zzzzzzzz" (-961036753, index -1) on
// socket.io--1, which Node nodes write but never read: the Go node must
// still get what the Node node publishes there.
func TestMixedClusterStreamCount2(t *testing.T) {
	t.Parallel()
	nsps := []string{"/", "/a", "/zzzzzzzz", "/orders-namespace"}
	streams := map[string]string{"/": "socket.io-1", "/a": "socket.io-0", "/zzzzzzzz": "socket.io--1",
		"/orders-namespace": "socket.io-0"}
	for nsp, key := range streams {
		if got := cluster.StreamKey("socket.io", 2, nsp); got != key {
			t.Fatalf("StreamKey(%q) = %q, want %q", nsp, got, key)
		}
	}
	m := startMixed(t, mixedOptions{streamCount: 2, nsps: nsps})
	g := m.gonode
	sids := map[string]string{}
	for i, nsp := range nsps {
		for _, id := range []string{fmt.Sprintf("n%d", i), fmt.Sprintf("g%d", i)} {
			url := g.url
			if id[0] == 'n' {
				url = m.nodeURL
			}
			sids[id] = m.connect(t, id, url, nsp, "")
		}
	}
	for i, nsp := range nsps {
		nodeClient := fmt.Sprintf("n%d", i)
		if streams[nsp] == "socket.io--1" {
			nodeClient = ""
		}
		m.syncNodes(t, nsp, fmt.Sprintf("g%d", i), nodeClient)
	}

	for i, nsp := range nsps {
		nodeClient, goClient := fmt.Sprintf("n%d", i), fmt.Sprintf("g%d", i)
		key := streams[nsp]
		before := xlen(t, m.redis, key)

		// Node -> Go, on every stream, the negative one included.
		ev := "from-node-" + strings.Trim(nsp, "/")
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": nsp, "event": ev,
			"args": []any{nsp, map[string]any{"$bin": "AAE="}}})
		got := m.clients.wait(t, ev+" on the Go client", func(e map[string]any) bool { return isEvent(ev)(e) && e["id"] == goClient })
		if !equalJSON(got["args"], []any{nsp, map[string]any{"$bin": "AAE="}}) {
			t.Errorf("%s: Go client got %v", nsp, got["args"])
		}
		if n := xlen(t, m.redis, key); n != before+1 {
			t.Errorf("%s: Node wrote %d entries to %s", nsp, n-before, key)
		}
		if last := lastEntryUID(t, m.redis, key); last != m.nodeUID[nsp] {
			t.Errorf("%s: last entry of %s has uid %q, want the Node adapter's %q", nsp, key, last, m.nodeUID[nsp])
		}

		// Go -> Node, on the stream Node reads for that namespace.
		ev = "from-go-" + strings.Trim(nsp, "/")
		if err := g.io.Of(nsp, nil).Emit(ev, nsp); err != nil {
			t.Fatal(err)
		}
		m.clients.wait(t, ev+" on the Go client", func(e map[string]any) bool { return isEvent(ev)(e) && e["id"] == goClient })
		eventually(t, waitLong, "Go's entry in "+key, func() bool { return xlen(t, m.redis, key) == before+2 })
		if last := lastEntryUID(t, m.redis, key); last != g.b.Adapter(nsp).UID() {
			t.Errorf("%s: last entry of %s has uid %q, want the Go adapter's %q", nsp, key, last, g.b.Adapter(nsp).UID())
		}
		if key != "socket.io--1" {
			m.clients.wait(t, ev+" on the Node client", func(e map[string]any) bool { return isEvent(ev)(e) && e["id"] == nodeClient })
		}
	}
	// Nothing went to the plain "socket.io" stream.
	if n := xlen(t, m.redis, "socket.io"); n != 0 {
		t.Errorf("%d entries in the stream socket.io", n)
	}

	for _, nsp := range nsps {
		if got := g.io.Of(nsp, nil).Adapter().ServerCount(); got != 2 {
			t.Errorf("%s: Go ServerCount %d, want 2", nsp, got)
		}
		if got := m.node.call(t, map[string]any{"cmd": "serverCount", "nsp": nsp})["count"]; got != 2.0 {
			t.Errorf("%s: Node serverCount %v, want 2", nsp, got)
		}
	}

	// The Go node leaves: the Node node stops counting it at once, so its
	// requests no longer wait for it (they would end in a timeout error).
	g.close()
	for i, nsp := range nsps {
		if got := m.node.call(t, map[string]any{"cmd": "serverCount", "nsp": nsp})["count"]; got != 1.0 {
			t.Errorf("%s: Node serverCount %v after the Go node left, want 1", nsp, got)
		}
		reply := m.node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": nsp})
		if s, _ := reply["sockets"].([]any); len(s) != 1 || str(s[0].(map[string]any)["id"]) != sids[fmt.Sprintf("n%d", i)] {
			t.Errorf("%s: Node fetched %v after the Go node left", nsp, reply["sockets"])
		}
	}
}

func xlen(t *testing.T, r *redistest.Server, key string) int64 {
	t.Helper()
	v, err := r.Do("XLEN", key)
	if err != nil {
		t.Fatalf("XLEN %s: %v", key, err)
	}
	n, ok := v.(int64)
	if !ok {
		t.Fatalf("XLEN %s: %#v", key, v)
	}
	return n
}

// lastEntryUID returns the uid field of the last entry of stream key.
func lastEntryUID(t *testing.T, r *redistest.Server, key string) string {
	t.Helper()
	v, err := r.Do("XREVRANGE", key, "+", "-", "COUNT", "1")
	if err != nil {
		t.Fatalf("XREVRANGE %s: %v", key, err)
	}
	entries, _ := v.([]any)
	if len(entries) != 1 {
		t.Fatalf("XREVRANGE %s: %#v", key, v)
	}
	entry, _ := entries[0].([]any)
	if len(entry) != 2 {
		t.Fatalf("XREVRANGE %s: %#v", key, v)
	}
	fields, _ := entry[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "uid" {
			return str(fields[i+1])
		}
	}
	return ""
}

// With connection state recovery on both nodes, every broadcast carries its
// stream entry id as last argument, the same on the clients of both nodes,
// and a Node node restores a session with the broadcasts the Go node
// published meanwhile: Node's restore code reads the Go node's entries
// (JSON and MessagePack ones) back from the stream.
func TestMixedClusterRecovery(t *testing.T) {
	t.Parallel()
	m := startMixed(t, mixedOptions{streamCount: 1, nsps: []string{"/"}, recovery: true})
	g := m.gonode
	sidA := m.connect(t, "a", m.nodeURL, "/", "r1")
	m.connect(t, "b", m.nodeURL, "/", "r2")
	sidC := m.connect(t, "c", g.url, "/", "r1")
	m.syncNodes(t, "/", "c", "a")

	// offsetOf returns the last argument of what client id got for event,
	// checking it is an entry id.
	offsetOf := func(t *testing.T, id, event string) string {
		t.Helper()
		ev := m.clients.wait(t, event+" on "+id, func(e map[string]any) bool { return isEvent(event)(e) && e["id"] == id })
		args, _ := ev["args"].([]any)
		if len(args) == 0 {
			t.Fatalf("%s got %s without arguments", id, event)
		}
		off := str(args[len(args)-1])
		if !isEntryID(off) {
			t.Fatalf("%s got %s with args %v: no offset last", id, event, args)
		}
		return off
	}
	for _, side := range []string{"go", "node"} {
		ev := "live-" + side
		if side == "go" {
			if err := g.io.To("r1").Emit(ev, "x"); err != nil {
				t.Fatal(err)
			}
		} else {
			m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"r1"}, "event": ev, "args": []any{"x"}})
		}
		if oa, oc := offsetOf(t, "a", ev), offsetOf(t, "c", ev); oa != oc {
			t.Errorf("%s: offset %s on the Node client, %s on the Go client", ev, oa, oc)
		}
	}

	// a drops its connection: the Node node persists its session.
	if err := m.clients.send(map[string]any{"cmd": "drop", "id": "a"}); err != nil {
		t.Fatal(err)
	}
	m.clients.wait(t, "a disconnected", func(e map[string]any) bool { return e["type"] == "disconnect" && e["id"] == "a" })
	eventually(t, waitLong, "a's session in Redis", func() bool {
		v, err := m.redis.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})

	// Meanwhile the Go node broadcasts: to a's room (JSON entry), to all
	// with binary (MessagePack entry), and to a room a is not in.
	if err := g.io.To("r1").Emit("missed-1", "one", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := g.io.Of("/", nil).Emit("missed-2", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := g.io.To("r2").Emit("not-for-a", "x"); err != nil {
		t.Fatal(err)
	}
	if err := g.io.Except("r1").Emit("not-for-a-either", "x"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"missed-1", "missed-2", "not-for-a-either"} {
		m.clients.wait(t, ev+" on c or b", isEvent(ev))
	}
	eventually(t, waitLong, "the Go node's entries in the stream", func() bool { return xlen(t, m.redis, "socket.io") >= 4 })

	if err := m.clients.send(map[string]any{"cmd": "reconnect", "id": "a"}); err != nil {
		t.Fatal(err)
	}
	ev := m.clients.waitN(t, "a reconnected", 2, func(e map[string]any) bool { return e["type"] == "connect" && e["id"] == "a" })[1]
	if ev["recovered"] != true || ev["sid"] != sidA {
		t.Fatalf("a not recovered: %v (sid was %s)", ev, sidA)
	}
	m.marker(t, true, "/", 3)
	var got []string
	for _, e := range m.clients.filter(func(e map[string]any) bool { return e["type"] == "event" && e["id"] == "a" }) {
		name := str(e["event"])
		if strings.HasPrefix(name, "missed-") || strings.HasPrefix(name, "not-for-a") {
			got = append(got, name)
		}
	}
	if !slices.Equal(got, []string{"missed-1", "missed-2"}) {
		t.Fatalf("a got %v after its recovery, want [missed-1 missed-2]", got)
	}
	for ev, want := range map[string][]any{
		"missed-1": {"one", map[string]any{"n": 1}},
		"missed-2": {map[string]any{"$bin": "AQID"}},
	} {
		e := m.clients.wait(t, ev, func(e map[string]any) bool { return isEvent(ev)(e) && e["id"] == "a" })
		args, _ := e["args"].([]any)
		if len(args) != len(want)+1 || !equalJSON(args[:len(want)], want) {
			t.Errorf("a got %s %v, want %v and the offset", ev, args, want)
			continue
		}
		if oa, oc := str(args[len(want)]), offsetOf(t, "c", ev); ev == "missed-1" && oa != oc {
			t.Errorf("%s: offset %s replayed to a, %s live on c", ev, oa, oc)
		}
	}

	t.Run("go-restores-node-entries", func(t *testing.T) {
		// c drops, the Node node publishes, c comes back to the Go node.
		m.dropAndWaitSession(t, "c")
		before := xlen(t, m.redis, "socket.io")
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"r1"}, "event": "n-missed-1", "args": []any{"one"}})
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "event": "n-missed-2",
			"args": []any{map[string]any{"$bin": "AQID"}, map[string]any{"$date": "2023-11-14T22:13:20Z"}}})
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"r2"}, "event": "n-not-for-c", "args": []any{}})
		eventually(t, waitLong, "the Node node's entries in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+3 })
		m.reconnect(t, "c", sidC)
		m.marker(t, false, "/", 3)
		m.checkReplay(t, "c", "n-", map[string][]any{
			"n-missed-1": {"one"},
			"n-missed-2": {map[string]any{"$bin": "AQID"}, "2023-11-14T22:13:20.000Z"},
		})
	})

	t.Run("node-session-restored-by-go", func(t *testing.T) {
		// a drops on the Node node and comes back on the Go node.
		m.dropAndWaitSession(t, "a")
		before := xlen(t, m.redis, "socket.io")
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"r1"}, "event": "x-missed-a", "args": []any{"a"}})
		eventually(t, waitLong, "the entry in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+1 })
		m.connectRecovering(t, "a2", g.url, "a", sidA)
		m.checkReplay(t, "a2", "x-missed-a", map[string][]any{"x-missed-a": {"a"}})
		eventually(t, waitLong, "a in r1 on the Go node", func() bool {
			s, err := fetch(g.io.Local().In("r1"))
			return err == nil && slices.ContainsFunc(s, func(r *socket.RemoteSocket) bool { return string(r.Id()) == sidA })
		})
		s, err := fetch(g.io.Local().In(socket.Room(sidA)))
		if err != nil || len(s) != 1 || !equalJSON(s[0].Data(), map[string]any{"user": "user-a", "node": nodeNodeName}) {
			t.Errorf("a on the Go node: %d sockets, err %v", len(s), err)
		}
	})

	t.Run("go-session-restored-by-node", func(t *testing.T) {
		// c drops on the Go node and comes back on the Node node.
		m.dropAndWaitSession(t, "c")
		before := xlen(t, m.redis, "socket.io")
		if err := g.io.To("r1").Emit("x-missed-c", []byte{5}); err != nil {
			t.Fatal(err)
		}
		eventually(t, waitLong, "the entry in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+1 })
		m.connectRecovering(t, "c2", m.nodeURL, "c", sidC)
		m.checkReplay(t, "c2", "x-missed-c", map[string][]any{"x-missed-c": {map[string]any{"$bin": "BQ=="}}})
		rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
		if got := sortedStrings(rooms[sidC]); !slices.Equal(got, sorted(sidC, "r1")) {
			t.Errorf("rooms of c on the Node node: %v", got)
		}
	})
}

// dropAndWaitSession closes client id's connection and waits until its
// node has persisted its session.
func (m *mixed) dropAndWaitSession(t *testing.T, id string) {
	t.Helper()
	n := len(m.clients.filter(func(e map[string]any) bool { return e["type"] == "disconnect" && e["id"] == id }))
	if err := m.clients.send(map[string]any{"cmd": "drop", "id": id}); err != nil {
		t.Fatal(err)
	}
	m.clients.waitN(t, id+" disconnected", n+1, func(e map[string]any) bool { return e["type"] == "disconnect" && e["id"] == id })
	eventually(t, waitLong, id+"'s session in Redis", func() bool {
		v, err := m.redis.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})
}

// reconnect reconnects client id to its node and checks it got its session
// (sid) back.
func (m *mixed) reconnect(t *testing.T, id, sid string) {
	t.Helper()
	n := len(m.clients.filter(func(e map[string]any) bool { return e["type"] == "connect" && e["id"] == id }))
	if err := m.clients.send(map[string]any{"cmd": "reconnect", "id": id}); err != nil {
		t.Fatal(err)
	}
	ev := m.clients.waitN(t, id+" reconnected", n+1, func(e map[string]any) bool { return e["type"] == "connect" && e["id"] == id })[n]
	if ev["recovered"] != true || ev["sid"] != sid {
		t.Fatalf("%s not recovered: %v (sid was %s)", id, ev, sid)
	}
}

// connectRecovering connects a new client id to baseURL with the session of
// the dropped client from, and checks it got that session (sid) back.
func (m *mixed) connectRecovering(t *testing.T, id, baseURL, from, sid string) {
	t.Helper()
	if err := m.clients.send(map[string]any{"cmd": "connect", "id": id, "url": baseURL + "/", "recoverFrom": from}); err != nil {
		t.Fatal(err)
	}
	ev := m.clients.wait(t, "connect of "+id, func(e map[string]any) bool {
		return e["id"] == id && (e["type"] == "connect" || e["type"] == "connect_error")
	})
	if ev["recovered"] != true || ev["sid"] != sid {
		t.Fatalf("%s did not recover %s's session: %v (sid was %s)", id, from, ev, sid)
	}
}

// checkReplay checks that the events of client id whose name starts with
// prefix are exactly want (in any order), each with an offset last.
func (m *mixed) checkReplay(t *testing.T, id, prefix string, want map[string][]any) {
	t.Helper()
	evs := m.clients.filter(func(e map[string]any) bool {
		return e["type"] == "event" && e["id"] == id && strings.HasPrefix(str(e["event"]), prefix)
	})
	var names, wantNames []string
	for _, e := range evs {
		names = append(names, str(e["event"]))
	}
	for name := range want {
		wantNames = append(wantNames, name)
	}
	if slices.Sort(names); !slices.Equal(names, sorted(wantNames...)) {
		t.Fatalf("%s got %v after its recovery, want %v", id, names, sorted(wantNames...))
	}
	for _, e := range evs {
		w := want[str(e["event"])]
		args, _ := e["args"].([]any)
		if len(args) != len(w)+1 || !equalJSON(args[:len(w)], w) || !isEntryID(str(args[len(w)])) {
			t.Errorf("%s got %s %v, want %v and the offset", id, e["event"], args, w)
		}
	}
}

// isEntryID reports whether s looks like a stream entry id.
func isEntryID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	isDigits := func(x string) bool {
		return x != "" && strings.Trim(x, "0123456789") == ""
	}
	return ok && isDigits(ms) && isDigits(seq)
}
