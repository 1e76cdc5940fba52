package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

// e2eNode is one zishang520 Socket.IO server with the cluster adapter on a
// Redis Streams transport, on a loopback httptest server.
type e2eNode struct {
	name string
	tr   *Transport
	b    *adapter.Builder
	io   *socket.Server
	ts   *httptest.Server
	url  string
}

func startE2ENode(t *testing.T, name, redisURL string) *e2eNode {
	t.Helper()
	n := &e2eNode{name: name}
	n.tr = startTransport(t, name, fastOpts(redisURL))
	b, err := adapter.New(n.tr, adapter.Config{
		HeartbeatInterval: 500 * time.Millisecond,
		HeartbeatTimeout:  1500 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
		Logger:            tLogger(t, name),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.b = b
	so := socket.DefaultServerOptions()
	so.SetAdapter(b)
	n.io = socket.NewServer(nil, so)
	// A socket joins the rooms of its "rooms" query parameter.
	n.io.Of("/", nil).Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		if rooms := firstQuery(s.Handshake().Query, "rooms"); rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				s.Join(socket.Room(r))
			}
		}
		s.SetData(map[string]any{"node": name})
		next(nil)
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", n.io.ServeHandler(nil))
	n.ts = httptest.NewServer(mux)
	n.url = n.ts.URL
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			n.io.Close(nil)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: server Close did not return", name)
		}
		n.ts.CloseClientConnections()
		n.ts.Close()
		_ = n.tr.Close()
	})
	return n
}

func firstQuery(q map[string]any, k string) string {
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

// e2eEvent is one line printed by testdata/cluster/transport-clients.js.
type e2eEvent struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Sid     string `json:"sid"`
	Event   string `json:"event"`
	Args    []any  `json:"args"`
	WithAck bool   `json:"withAck"`
	Message string `json:"message"`
}

// e2eClients is one Node process running socket.io-client instances.
type e2eClients struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	events  []e2eEvent
	changed chan struct{}
	exited  chan struct{}
	stderr  strings.Builder
}

func startE2EClients(t *testing.T) *e2eClients {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found: run `make test`, which installs it: %v", err)
	}
	script, err := filepath.Abs(filepath.Join("..", "testdata", "cluster", "transport-clients.js"))
	if err != nil {
		t.Fatal(err)
	}
	c := &e2eClients{t: t, changed: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command("node", script)
	c.cmd.Stderr = lockedWriter{c}
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
			var ev e2eEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
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
	c.waitN("client process ready", 1, 15*time.Second, func(ev e2eEvent) bool { return ev.Type == "ready" })
	return c
}

type lockedWriter struct{ c *e2eClients }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.stderr.Write(p)
}

func (c *e2eClients) stop() {
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

func (c *e2eClients) send(cmd map[string]any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

func (c *e2eClients) connect(id, url, rooms string) string {
	c.t.Helper()
	if err := c.send(map[string]any{"cmd": "connect", "id": id, "url": url, "query": map[string]string{"rooms": rooms}}); err != nil {
		c.t.Fatal(err)
	}
	ev := c.waitN("connect of "+id, 1, 10*time.Second, func(ev e2eEvent) bool {
		return ev.ID == id && (ev.Type == "connect" || ev.Type == "connect_error")
	})[0]
	if ev.Type != "connect" {
		c.t.Fatalf("client %s: %s", id, ev.Message)
	}
	return ev.Sid
}

func (c *e2eClients) waitN(what string, n int, timeout time.Duration, pred func(e2eEvent) bool) []e2eEvent {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		got := c.filter(pred)
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-c.exited:
			c.t.Fatalf("client process exited while waiting for %s (%d/%d)", what, len(got), n)
		case <-deadline.C:
			c.t.Fatalf("timed out after %v waiting for %s: %d/%d", timeout, what, len(got), n)
		}
	}
}

func (c *e2eClients) filter(pred func(e2eEvent) bool) []e2eEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []e2eEvent
	for _, ev := range c.events {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func eventNamed(name string) func(e2eEvent) bool {
	return func(ev e2eEvent) bool { return ev.Type == "event" && ev.Event == name }
}

// receivers returns the sorted ids of the clients that got event name.
func (c *e2eClients) receivers(name string) []string {
	var ids []string
	for _, ev := range c.filter(eventNamed(name)) {
		ids = append(ids, ev.ID)
	}
	sort.Strings(ids)
	return ids
}

// waitPeers waits until every node counts all of them.
func waitPeers(t *testing.T, nodes []*e2eNode) {
	t.Helper()
	waitFor(t, 10*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			a := n.b.Adapter("/")
			if a == nil || a.AlivePeers() != len(nodes)-1 || n.io.Of("/", nil).Adapter().ServerCount() != int64(len(nodes)) {
				return false
			}
		}
		return true
	})
}

// TestE2EOperations runs two, then three Go nodes on one Redis with six
// official clients spread over them, and checks every cluster operation
// across them.
func TestE2EOperations(t *testing.T) {
	t.Parallel()
	for _, count := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d-nodes", count), func(t *testing.T) {
			t.Parallel()
			testE2EOperations(t, count)
		})
	}
}

func testE2EOperations(t *testing.T, count int) {
	s := redistest.StartStandalone(t)
	var nodes []*e2eNode
	for i := range count {
		nodes = append(nodes, startE2ENode(t, fmt.Sprintf("n%d", i), s.URL()))
	}
	waitPeers(t, nodes)
	c := startE2EClients(t)
	sids := map[string]string{}
	for _, l := range []struct {
		id    string
		node  int
		rooms string
	}{{"a", 0, "r1"}, {"b", 0, ""}, {"c", 1, "r1"}, {"d", 1, "r2"}, {"e", 2, "r2"}, {"f", 2, ""}} {
		sids[l.id] = c.connect(l.id, nodes[l.node%count].url+"/", l.rooms)
	}
	all := []string{"a", "b", "c", "d", "e", "f"}
	// Joins are broadcast too: wait until every node sees all sockets.
	waitFor(t, 10*time.Second, "six sockets seen from every node", func() bool {
		for _, n := range nodes {
			var got []*socket.RemoteSocket
			n.io.FetchSockets()(func(s []*socket.RemoteSocket, err error) { got = s })
			if len(got) != 6 {
				return false
			}
		}
		return true
	})

	t.Run("broadcast", func(t *testing.T) {
		nodes[0].io.Emit("hello", 1, "two")
		nodes[1].io.To("r1").Emit("to-r1")
		nodes[count-1].io.Except("r1").Emit("not-r1")
		nodes[0].io.To("r2").Except(socket.Room(sids["e"])).Emit("r2-not-e")
		for _, n := range nodes {
			n.io.Emit("sentinel-" + n.name)
			c.waitN("sentinel", 6, 10*time.Second, eventNamed("sentinel-"+n.name))
		}
		for name, want := range map[string][]string{
			"hello":    all,
			"to-r1":    {"a", "c"},
			"not-r1":   {"b", "d", "e", "f"},
			"r2-not-e": {"d"},
		} {
			if got := c.receivers(name); !slices.Equal(got, want) {
				t.Errorf("%s received by %v, want %v", name, got, want)
			}
		}
	})

	t.Run("fetchSockets", func(t *testing.T) {
		var got []*socket.RemoteSocket
		var ferr error
		nodes[1].io.In("r1").FetchSockets()(func(s []*socket.RemoteSocket, err error) { got, ferr = s, err })
		var ids []string
		for _, s := range got {
			ids = append(ids, string(s.Id()))
		}
		sort.Strings(ids)
		want := []string{sids["a"], sids["c"]}
		sort.Strings(want)
		if ferr != nil || !slices.Equal(ids, want) {
			t.Errorf("FetchSockets(r1) = %v, %v; want %v", ids, ferr, want)
		}
	})

	t.Run("serverSideEmit-ack", func(t *testing.T) {
		for _, n := range nodes {
			n.io.On("ping", func(args ...any) {
				args[len(args)-1].(socket.Ack)([]any{"pong-" + n.name}, nil)
			})
		}
		ch := make(chan []any, 1)
		errc := make(chan error, 1)
		if err := nodes[count-1].io.ServerSideEmitWithAck("ping")(func(args []any, err error) { ch <- args; errc <- err }); err != nil {
			t.Fatal(err)
		}
		select {
		case args := <-ch:
			var got []string
			for _, a := range args {
				got = append(got, fmt.Sprint(a))
			}
			sort.Strings(got)
			var want []string
			for i := range count - 1 {
				want = append(want, fmt.Sprintf("pong-n%d", i))
			}
			if err := <-errc; err != nil || !slices.Equal(got, want) {
				t.Errorf("responses %v, %v", got, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no serverSideEmit responses")
		}
	})

	t.Run("broadcast-ack", func(t *testing.T) {
		ch := make(chan []any, 1)
		errc := make(chan error, 1)
		_ = nodes[1].io.Timeout(5*time.Second).Emit("question", socket.Ack(func(args []any, err error) { ch <- args; errc <- err }))
		select {
		case args := <-ch:
			var got []string
			for _, a := range args {
				m, _ := a.(map[string]any)
				got = append(got, fmt.Sprint(m["id"]))
			}
			sort.Strings(got)
			if err := <-errc; err != nil || !slices.Equal(got, all) {
				t.Errorf("acks from %v, %v", got, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no broadcast acks")
		}
	})

	t.Run("serverCount", func(t *testing.T) {
		for _, n := range nodes {
			if got := n.io.Of("/", nil).Adapter().ServerCount(); got != int64(count) {
				t.Errorf("%s: ServerCount %d", n.name, got)
			}
		}
	})
}

// TestE2ENothingLost is the headline test: Redis is cut off from one node
// for several seconds while another keeps broadcasting a numbered
// sequence; every client on every node receives every number exactly
// once, in order.
func TestE2ENothingLost(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	sender := startE2ENode(t, "sender", s.URL())
	cut := startE2ENode(t, "cut", "redis://"+p.Addr())
	nodes := []*e2eNode{sender, cut}
	waitPeers(t, nodes)
	c := startE2EClients(t)
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		c.connect(id, nodes[i%2].url+"/", "")
	}

	const total = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			sender.io.Emit("seq", i)
			time.Sleep(15 * time.Millisecond)
		}
	}()
	c.waitN("first numbers", 6*20, 10*time.Second, eventNamed("seq"))
	p.Cut()
	waitFor(t, 10*time.Second, "cut node not ready", func() bool { return !cut.tr.Ready() })
	time.Sleep(2500 * time.Millisecond) // the cut lasts while numbers flow
	p.Restore()
	<-done
	evs := c.waitN("every number on every client", 6*total, 30*time.Second, eventNamed("seq"))
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	evs = c.filter(eventNamed("seq"))
	byClient := map[string][]int{}
	for _, ev := range evs {
		if len(ev.Args) != 1 {
			t.Fatalf("%s got %v", ev.ID, ev.Args)
		}
		f, _ := ev.Args[0].(float64)
		byClient[ev.ID] = append(byClient[ev.ID], int(f))
	}
	for _, id := range ids {
		got := byClient[id]
		if len(got) != total {
			t.Errorf("%s received %d numbers, want %d", id, len(got), total)
		}
		for i, v := range got {
			if v != i {
				t.Errorf("%s: number %d at position %d (lost, duplicated or out of order)", id, v, i)
				break
			}
		}
	}
	if v := value(cut.tr.metrics.readerErrors.WithLabelValues("socket.io")); v == 0 {
		t.Errorf("the cut was not noticed by the reader")
	}
}
