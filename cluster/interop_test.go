package cluster_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/recovery"
	"github.com/sockstream/sockstream/server"
)

// The mixed-cluster tests run one Go node (sockstream's server with the
// cluster adapter on the Redis Streams transport) and one Node node (socket.io
// with @socket.io/redis-streams-adapter 0.3.1, testdata/cluster/node-peer.js)
// on one real Redis, with official socket.io-client clients on both
// (testdata/siotest/clients.js, through internal/siotest), and check that
// every cluster operation started on one side acts on the other side's
// sockets.

const (
	goNodeName   = "go"
	nodeNodeName = "node"
	waitLong     = 10 * time.Second
)

// ---- Node processes ----

// peer is the Node reference node (testdata/cluster/node-peer.js): it
// answers each command carrying a "seq" with a line carrying the same seq.
type peer struct {
	*siotest.Proc[map[string]any]
	seq atomic.Int64
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

// call sends a command to the Node peer and returns its reply.
func (p *peer) call(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	seq := float64(p.seq.Add(1))
	cmd["seq"] = seq
	p.Do(t, cmd)
	reply := p.Wait(t, fmt.Sprintf("reply to %v", cmd["cmd"]), waitLong, func(ev map[string]any) bool { return ev["seq"] == seq })
	if reply["type"] == "error" {
		t.Fatalf("node peer: %v failed: %v", cmd["cmd"], reply["message"])
	}
	return reply
}

func str(v any) string { s, _ := v.(string); return s }

// ---- the mixed cluster ----

type goNode struct {
	srv   *server.Server
	tr    *cluster.Transport
	b     *adapter.Builder
	url   string
	close func() // idempotent; also run at cleanup
}

type mixed struct {
	redis   *redistest.Server
	node    *peer // the Node reference node
	nodeURL string
	nodeUID map[string]string // namespace -> uid of the Node adapter
	gonode  *goNode
	clients *siotest.Clients
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
	m.node = &peer{Proc: siotest.StartProc[map[string]any](t, "node peer", "testdata/cluster/node-peer.js",
		[]string{"DEBUG=socket.io-adapter,socket.io-redis-streams-adapter", "DEBUG_COLORS=0", "DEBUG_HIDE_DATE=1"}, string(cfg))}
	t.Cleanup(func() { checkNodeDebugLog(t, m.node.Stderr()) })
	ready := m.node.Wait(t, "node peer listening", waitLong, func(ev map[string]any) bool { return ev["type"] == "listening" })
	m.nodeURL = fmt.Sprintf("http://127.0.0.1:%v", ready["port"])
	m.nodeUID = map[string]string{}
	for k, v := range ready["uids"].(map[string]any) {
		m.nodeUID[k] = str(v)
	}

	m.gonode = startGoNode(t, m.redis.URL(), o)
	m.clients = siotest.StartClients(t)
	return m
}

func startGoNode(t *testing.T, redisURL string, o mixedOptions) *goNode {
	t.Helper()
	log := siotest.Logger(t).With("node", goNodeName)
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
		cfg.Sessions = &recovery.Sessions{Store: tr.SessionStore(), Log: tr.StreamLog(cluster.StreamLogOptions{}), Logger: log}
	}
	b, err := adapter.New(tr, cfg)
	if err != nil {
		_ = tr.Close()
		t.Fatalf("adapter.New: %v", err)
	}
	scfg := server.Config{Logger: log}
	if o.recovery {
		scfg.Recovery = server.RecoveryConfig{Enabled: true, MaxDisconnection: time.Minute, SkipMiddlewares: true}
	}
	// The server closes the transport at Shutdown, after its clients and
	// adapters: Close reports the transport's Close error too.
	srv := siotest.StartServer(t, goNodeName, scfg, server.WithAdapter(b, tr.Ready, tr.Close))
	var once sync.Once
	closeNode := func() {
		once.Do(func() {
			if err := srv.Close(); err != nil {
				t.Errorf("Go node shutdown: %v", err)
			}
		})
	}
	t.Cleanup(closeNode)
	g := &goNode{srv: srv.Srv, tr: tr, b: b, url: srv.URL, close: closeNode}
	for _, name := range o.nsps {
		// Same behavior as node-peer.js: rooms from the query, data
		// {user, node}.
		g.srv.Of(name).Use(siotest.JoinQueryRooms(func(q url.Values) any {
			return map[string]any{"user": q.Get("user"), "node": goNodeName}
		}))
	}
	siotest.Eventually(t, waitLong, "transport ready", tr.Ready)
	return g
}

// connect connects client id to the namespace nsp of baseURL and returns
// its sid.
func (m *mixed) connect(t *testing.T, id, baseURL, nsp, rooms string) string {
	t.Helper()
	return m.clients.Connect(t, id, baseURL+nsp, map[string]string{"rooms": rooms, "user": "user-" + id}, nil).Sid
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
				if m.clients.Count(siotest.IsEventFor(client, ev)) > 0 {
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
			if err := m.gonode.srv.Of(nsp).Emit(ev); err != nil {
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
		if err := m.gonode.srv.Of(nsp).Emit(ev); err != nil {
			t.Fatal(err)
		}
	} else {
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": nsp, "event": ev, "args": []any{}})
	}
	m.clients.WaitN(t, ev, want, waitLong, siotest.IsEvent(ev))
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

// ---- tests ----

var jsDate = regexp.MustCompile(`^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4} \(.+\)$`)

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
		if got := g.b.Adapter("/").ServerCount(); got != 2 {
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
					op := g.srv.To(c.rooms...).Except(c.except...)
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
				if got := m.clients.Receivers(ev); !slices.Equal(got, c.want) {
					t.Errorf("receivers %v, want %v", got, c.want)
				}
				for _, e := range m.clients.Filter(siotest.IsEvent(ev)) {
					if !siotest.EqualJSON(e.Args, c.wantReceived) {
						t.Errorf("client %v got %v, want %v", e.ID, e.Args, c.wantReceived)
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
		if got := m.clients.Receivers("bc-date"); !slices.Equal(got, all) {
			t.Fatalf("receivers %v", got)
		}
		want := []any{map[string]any{"$bin": "AQ=="}, "2023-11-14T22:13:20.500Z"}
		for _, e := range m.clients.Filter(siotest.IsEvent("bc-date")) {
			if !siotest.EqualJSON(e.Args, want) {
				t.Errorf("client %v got %v, want %v (a time.Time reaching the server's JSON encoder)", e.ID, e.Args, want)
			}
		}
	})

	t.Run("broadcastWithAck-from-go", func(t *testing.T) {
		type res struct {
			args []any
			err  error
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var r res
		r.args, r.err = g.srv.To("r1", "r2").Except("r2").EmitWithAck(ctx, "g-ask", "q")
		var ids []string
		for _, a := range r.args {
			m, _ := a.(map[string]any)
			ids = append(ids, str(m["id"]))
		}
		if slices.Sort(ids); r.err != nil || !slices.Equal(ids, []string{"a", "c"}) {
			t.Errorf("acks %v err %v, want from a (Node) and c (Go)", r.args, r.err)
		}
		for _, e := range m.clients.Filter(siotest.IsEvent("g-ask")) {
			if !e.WithAck || !siotest.EqualJSON(e.Args, []any{"q"}) {
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
		for _, e := range m.clients.Filter(siotest.IsEvent("n-ask")) {
			if !e.WithAck || !siotest.EqualJSON(e.Args, []any{map[string]any{"$bin": "AQ=="}}) {
				t.Errorf("client got %v", e)
			}
		}
	})

	t.Run("fetchSockets-from-go", func(t *testing.T) {
		sockets, err := siotest.Fetch(g.srv.Of("/").In())
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if ids := siotest.SocketIDs(sockets); !slices.Equal(ids, siotest.Sorted(sids["a"], sids["b"], sids["c"], sids["d"])) {
			t.Fatalf("fetched %v", ids)
		}
		sockets, err = siotest.Fetch(g.srv.In(sids["a"]))
		if err != nil || len(sockets) != 1 {
			t.Fatalf("fetch a: %v %v", len(sockets), err)
		}
		a := sockets[0]
		if rooms := siotest.Sorted(a.Rooms()...); !slices.Equal(rooms, siotest.Sorted(sids["a"], "r1")) {
			t.Errorf("rooms of a %v", rooms)
		}
		if !siotest.EqualJSON(a.Data(), map[string]any{"user": "user-a", "node": nodeNodeName}) {
			t.Errorf("data of a %#v", a.Data())
		}
		// The public Handshake has the Node socket's issued time as Time
		// (its handshake.time string is not exposed).
		h := a.Handshake()
		if h.Query.Get("user") != "user-a" || h.Query.Get("EIO") != "4" ||
			!strings.Contains(h.URL, "user=user-a") || h.Address == "" || h.Time.UnixMilli() <= 0 ||
			h.Headers == nil || h.Headers.Get("host") == "" {
			t.Errorf("handshake of a %+v", h)
		}
		// Rooms and except select the Node node's sockets.
		sockets, err = siotest.Fetch(g.srv.In("r2").Except("r1"))
		if err != nil || len(sockets) != 2 {
			t.Fatalf("fetch r2: %d %v", len(sockets), err)
		}
	})

	t.Run("remoteSocket-from-go", func(t *testing.T) {
		// A Node socket fetched by Go, driven from Go: emit, join, leave.
		sockets, err := siotest.Fetch(g.srv.In(sids["b"]))
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
		if got := m.clients.Receivers("direct"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("direct receivers %v", got)
		}
		siotest.Eventually(t, waitLong, "b in solo and out of r2 on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return slices.Equal(sortedStrings(rooms[sids["b"]]), siotest.Sorted(sids["b"], "solo"))
		})
		b.Join("r2")
		siotest.Eventually(t, waitLong, "b back in r2", func() bool {
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
		if r := sortedStrings(d["rooms"]); !slices.Equal(r, siotest.Sorted(sids["d"], "r2")) {
			t.Errorf("rooms of d %v", r)
		}
		if !siotest.EqualJSON(d["data"], map[string]any{"user": "user-d", "node": goNodeName}) {
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
			// to a Node node. (The Go server builds this in
			// server/local.go, nodeHandshake.)
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
			if host, _ := headers["host"].(string); !strings.HasPrefix(host, "127.0.0.1:") {
				t.Errorf("host header of d as Node sees it: %v, want 127.0.0.1:port", headers["host"])
			}
			// Date.prototype.toString(), as Node writes handshake.time.
			if !jsDate.MatchString(str(h["time"])) {
				t.Errorf("time of d as Node sees it: %q, want Date.prototype.toString()'s format", h["time"])
			}
		})
		reply = m.node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/", "rooms": []string{"r1"}})
		var ids []string
		for _, s := range reply["sockets"].([]any) {
			ids = append(ids, str(s.(map[string]any)["id"]))
		}
		if slices.Sort(ids); !slices.Equal(ids, siotest.Sorted(sids["a"], sids["c"])) {
			t.Errorf("Node fetched r1 %v", ids)
		}
	})

	t.Run("serverSideEmit-go-to-node", func(t *testing.T) {
		m.node.call(t, map[string]any{"cmd": "listen", "nsp": "/", "event": "g-ping"})
		m.node.call(t, map[string]any{"cmd": "listen", "nsp": "/", "event": "g-hello"})
		if err := g.srv.Of("/").ServerSideEmit("g-hello", "world", []byte{7}); err != nil {
			t.Fatal(err)
		}
		ev := m.node.Wait(t, "g-hello", waitLong, func(ev map[string]any) bool { return ev["type"] == "sse" && ev["event"] == "g-hello" })
		if !siotest.EqualJSON(ev["args"], []any{"world", map[string]any{"$bin": "Bw=="}}) || ev["withAck"] != false {
			t.Errorf("Node got %v", ev)
		}
		type res struct {
			args []any
			err  error
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		var r res
		r.args, r.err = g.srv.Of("/").ServerSideEmitWithAck(ctx, "g-ping", "q", []byte{1, 2})
		if r.err != nil || len(r.args) != 1 {
			t.Fatalf("acks %v err %v", r.args, r.err)
		}
		resp, _ := r.args[0].(map[string]any)
		args, _ := resp["args"].([]any)
		if resp["node"] != nodeNodeName || len(args) != 2 || args[0] != "q" || !reflect.DeepEqual(args[1], []byte{1, 2}) {
			t.Errorf("ack from Node %#v", r.args[0])
		}
	})

	t.Run("serverSideEmit-node-to-go", func(t *testing.T) {
		hello := make(chan []any, 1)
		g.srv.Of("/").OnServerSideEmit("n-hello", func(e *server.Event) {
			select {
			case hello <- e.Args:
			default:
			}
		})
		g.srv.Of("/").OnServerSideEmit("n-ping", func(e *server.Event) {
			if !e.HasAck() || len(e.Args) != 2 {
				t.Errorf("n-ping args %#v (ack asked: %v)", e.Args, e.HasAck())
				return
			}
			b, _ := e.Args[1].([]byte)
			e.Ack(map[string]any{"node": goNodeName, "bin": []byte{3, 4}, "got": e.Args[0], "echo": b})
		})
		m.node.call(t, map[string]any{"cmd": "serverSideEmit", "nsp": "/", "event": "n-hello", "args": []any{"world", 2}})
		args := siotest.Recv(t, hello, waitLong, "n-hello on the Go node")
		if !siotest.EqualJSON(args, []any{"world", 2}) {
			t.Errorf("Go got %v", args)
		}
		reply := m.node.call(t, map[string]any{"cmd": "serverSideEmit", "nsp": "/", "event": "n-ping",
			"args": []any{"q", map[string]any{"$bin": "CQg="}}, "ack": true})
		want := []any{map[string]any{"node": goNodeName, "bin": map[string]any{"$bin": "AwQ="}, "got": "q", "echo": map[string]any{"$bin": "CQg="}}}
		if reply["type"] != "acks" || !siotest.EqualJSON(reply["responses"], want) {
			t.Errorf("Node got %v, want acks %v", reply, want)
		}
	})

	t.Run("socketsJoin-leave", func(t *testing.T) {
		// From Go: r1 members (a on Node, c on Go) join j1.
		g.srv.In("r1").SocketsJoin("j1")
		siotest.Eventually(t, waitLong, "a in j1 on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return slices.Contains(sortedStrings(rooms[sids["a"]]), "j1") && !slices.Contains(sortedStrings(rooms[sids["b"]]), "j1")
		})
		// From Node: r2 members (b on Node, d on Go) join j2, and j1
		// members leave r1.
		m.node.call(t, map[string]any{"cmd": "socketsJoin", "nsp": "/", "rooms": []string{"r2"}, "join": []string{"j2"}})
		m.node.call(t, map[string]any{"cmd": "socketsLeave", "nsp": "/", "rooms": []string{"j1"}, "leave": []string{"r1"}})
		siotest.Eventually(t, waitLong, "d in j2 and c out of r1 on the Go node", func() bool {
			local, err := siotest.Fetch(g.srv.Of("/").Local().In("j2"))
			if err != nil || len(local) != 1 || local[0].ID() != sids["d"] {
				return false
			}
			inR1, err := siotest.Fetch(g.srv.Of("/").Local().In("r1"))
			return err == nil && len(inR1) == 0
		})
		// From Go: everyone leaves "solo" (b on Node joined it above).
		g.srv.Of("/").SocketsLeave("solo")
		siotest.Eventually(t, waitLong, "b out of solo on the Node node", func() bool {
			rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
			return !slices.Contains(sortedStrings(rooms[sids["b"]]), "solo")
		})
		m.node.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": []string{"j1", "j2"}, "event": "to-j", "args": []any{}})
		if err := g.srv.To("r1").Emit("to-r1"); err != nil {
			t.Fatal(err)
		}
		m.marker(t, false, "/", 4)
		m.marker(t, true, "/", 4)
		if got := m.clients.Receivers("to-j"); !slices.Equal(got, all) {
			t.Errorf("j1+j2 receivers %v", got)
		}
		if got := m.clients.Receivers("to-r1"); len(got) != 0 {
			t.Errorf("r1 should be empty, got %v", got)
		}
	})

	t.Run("disconnectSockets", func(t *testing.T) {
		isDisconnect := func(id string) func(siotest.Event) bool {
			return func(ev siotest.Event) bool { return ev.Type == "disconnect" && ev.ID == id }
		}
		// From Go: j2 members (b on Node, d on Go).
		g.srv.In("j2").DisconnectSockets(false)
		for _, id := range []string{"b", "d"} {
			ev := m.clients.Wait(t, "disconnect of "+id, waitLong, isDisconnect(id))
			if ev.Reason != "io server disconnect" {
				t.Errorf("%s: reason %v", id, ev.Reason)
			}
		}
		// From Node: everyone left (a on Node, c on Go), closing.
		m.node.call(t, map[string]any{"cmd": "disconnectSockets", "nsp": "/", "close": true})
		for _, id := range []string{"a", "c"} {
			m.clients.Wait(t, "disconnect of "+id, waitLong, isDisconnect(id))
		}
		siotest.Eventually(t, waitLong, "no socket left", func() bool {
			s, err := siotest.Fetch(g.srv.Of("/").In())
			return err == nil && len(s) == 0
		})
	})

	t.Run("node-node-leaves", func(t *testing.T) {
		// Node 0.3 sends no heartbeats: the Go node counts it through the
		// pub/sub subscription only, and must stop waiting for it as soon
		// as it is gone.
		m.node.Stop()
		siotest.Eventually(t, waitLong, "Go ServerCount back to 1", func() bool {
			return g.b.Adapter("/").ServerCount() == 1
		})
		// Waiting for it would end in a timeout error.
		if sockets, err := siotest.Fetch(g.srv.Of("/").In()); err != nil || len(sockets) != 0 {
			t.Errorf("fetch after the Node node left: %d sockets, %v", len(sockets), err)
		}
	})
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
		got := m.clients.Wait(t, ev+" on the Go client", waitLong, siotest.IsEventFor(goClient, ev))
		if !siotest.EqualJSON(got.Args, []any{nsp, map[string]any{"$bin": "AAE="}}) {
			t.Errorf("%s: Go client got %v", nsp, got.Args)
		}
		if n := xlen(t, m.redis, key); n != before+1 {
			t.Errorf("%s: Node wrote %d entries to %s", nsp, n-before, key)
		}
		if last := lastEntryUID(t, m.redis, key); last != m.nodeUID[nsp] {
			t.Errorf("%s: last entry of %s has uid %q, want the Node adapter's %q", nsp, key, last, m.nodeUID[nsp])
		}

		// Go -> Node, on the stream Node reads for that namespace.
		ev = "from-go-" + strings.Trim(nsp, "/")
		if err := g.srv.Of(nsp).Emit(ev, nsp); err != nil {
			t.Fatal(err)
		}
		m.clients.Wait(t, ev+" on the Go client", waitLong, siotest.IsEventFor(goClient, ev))
		siotest.Eventually(t, waitLong, "Go's entry in "+key, func() bool { return xlen(t, m.redis, key) == before+2 })
		if last := lastEntryUID(t, m.redis, key); last != g.b.Adapter(nsp).UID() {
			t.Errorf("%s: last entry of %s has uid %q, want the Go adapter's %q", nsp, key, last, g.b.Adapter(nsp).UID())
		}
		if key != "socket.io--1" {
			m.clients.Wait(t, ev+" on the Node client", waitLong, siotest.IsEventFor(nodeClient, ev))
		}
	}
	// Nothing went to the plain "socket.io" stream.
	if n := xlen(t, m.redis, "socket.io"); n != 0 {
		t.Errorf("%d entries in the stream socket.io", n)
	}

	for _, nsp := range nsps {
		if got := g.b.Adapter(nsp).ServerCount(); got != 2 {
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
		ev := m.clients.Wait(t, event+" on "+id, waitLong, siotest.IsEventFor(id, event))
		args, _ := ev.Args, true
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
			if err := g.srv.To("r1").Emit(ev, "x"); err != nil {
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
	m.clients.Drop(t, "a")
	siotest.Eventually(t, waitLong, "a's session in Redis", func() bool {
		v, err := m.redis.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})

	// Meanwhile the Go node broadcasts: to a's room (JSON entry), to all
	// with binary (MessagePack entry), and to a room a is not in.
	if err := g.srv.To("r1").Emit("missed-1", "one", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Of("/").Emit("missed-2", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.To("r2").Emit("not-for-a", "x"); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Except("r1").Emit("not-for-a-either", "x"); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"missed-1", "missed-2", "not-for-a-either"} {
		m.clients.Wait(t, ev+" on c or b", waitLong, siotest.IsEvent(ev))
	}
	siotest.Eventually(t, waitLong, "the Go node's entries in the stream", func() bool { return xlen(t, m.redis, "socket.io") >= 4 })

	m.clients.Reconnect(t, "a", "")
	ev := m.clients.NthConnect(t, "a", 1)
	if !ev.Recovered || ev.Sid != sidA {
		t.Fatalf("a not recovered: %v (sid was %s)", ev, sidA)
	}
	m.marker(t, true, "/", 3)
	var got []string
	for _, e := range m.clients.Filter(func(e siotest.Event) bool { return e.Type == "event" && e.ID == "a" }) {
		name := e.Event
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
		e := m.clients.Wait(t, ev, waitLong, siotest.IsEventFor("a", ev))
		args, _ := e.Args, true
		if len(args) != len(want)+1 || !siotest.EqualJSON(args[:len(want)], want) {
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
		siotest.Eventually(t, waitLong, "the Node node's entries in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+3 })
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
		siotest.Eventually(t, waitLong, "the entry in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+1 })
		m.connectRecovering(t, "a2", g.url, "a", sidA)
		// The client prints "connect" before the replayed packets: a
		// marker from the same node, sent after them, is behind them on
		// a2's connection (b, c and a2 are connected).
		m.marker(t, true, "/", 3)
		m.checkReplay(t, "a2", "x-missed-a", map[string][]any{"x-missed-a": {"a"}})
		siotest.Eventually(t, waitLong, "a in r1 on the Go node", func() bool {
			s, err := siotest.Fetch(g.srv.Of("/").Local().In("r1"))
			return err == nil && slices.ContainsFunc(s, func(r *server.RemoteSocket) bool { return r.ID() == sidA })
		})
		s, err := siotest.Fetch(g.srv.Of("/").Local().In(sidA))
		if err != nil || len(s) != 1 || !siotest.EqualJSON(s[0].Data(), map[string]any{"user": "user-a", "node": nodeNodeName}) {
			t.Errorf("a on the Go node: %d sockets, err %v", len(s), err)
		}
	})

	t.Run("go-session-restored-by-node", func(t *testing.T) {
		// c drops on the Go node and comes back on the Node node.
		m.dropAndWaitSession(t, "c")
		before := xlen(t, m.redis, "socket.io")
		if err := g.srv.To("r1").Emit("x-missed-c", []byte{5}); err != nil {
			t.Fatal(err)
		}
		siotest.Eventually(t, waitLong, "the entry in the stream", func() bool { return xlen(t, m.redis, "socket.io") == before+1 })
		m.connectRecovering(t, "c2", m.nodeURL, "c", sidC)
		m.marker(t, false, "/", 3) // b, a2 and c2 are connected
		m.checkReplay(t, "c2", "x-missed-c", map[string][]any{"x-missed-c": {map[string]any{"$bin": "BQ=="}}})
		rooms := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
		if got := sortedStrings(rooms[sidC]); !slices.Equal(got, siotest.Sorted(sidC, "r1")) {
			t.Errorf("rooms of c on the Node node: %v", got)
		}
	})
}

// dropAndWaitSession closes client id's connection and waits until its
// node has persisted its session.
func (m *mixed) dropAndWaitSession(t *testing.T, id string) {
	t.Helper()
	m.clients.Drop(t, id)
	siotest.Eventually(t, waitLong, id+"'s session in Redis", func() bool {
		v, err := m.redis.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})
}

// reconnect reconnects client id to its node and checks it got its session
// (sid) back.
func (m *mixed) reconnect(t *testing.T, id, sid string) {
	t.Helper()
	n := m.clients.Connects(id)
	m.clients.Reconnect(t, id, "")
	ev := m.clients.NthConnect(t, id, n)
	if !ev.Recovered || ev.Sid != sid {
		t.Fatalf("%s not recovered: %v (sid was %s)", id, ev, sid)
	}
}

// connectRecovering connects a new client id to baseURL with the session of
// the dropped client from, and checks it got that session (sid) back.
func (m *mixed) connectRecovering(t *testing.T, id, baseURL, from, sid string) {
	t.Helper()
	ev := m.clients.Connect(t, id, baseURL+"/", nil, map[string]any{"recoverFrom": from})
	if !ev.Recovered || ev.Sid != sid {
		t.Fatalf("%s did not recover %s's session: %v (sid was %s)", id, from, ev, sid)
	}
}

// checkReplay checks that the events of client id whose name starts with
// prefix are exactly want (in any order), each with an offset last.
func (m *mixed) checkReplay(t *testing.T, id, prefix string, want map[string][]any) {
	t.Helper()
	evs := m.clients.Filter(func(e siotest.Event) bool {
		return e.Type == "event" && e.ID == id && strings.HasPrefix(e.Event, prefix)
	})
	var names, wantNames []string
	for _, e := range evs {
		names = append(names, e.Event)
	}
	for name := range want {
		wantNames = append(wantNames, name)
	}
	if slices.Sort(names); !slices.Equal(names, siotest.Sorted(wantNames...)) {
		t.Fatalf("%s got %v after its recovery, want %v", id, names, siotest.Sorted(wantNames...))
	}
	for _, e := range evs {
		w := want[e.Event]
		args := e.Args
		if len(args) != len(w)+1 || !siotest.EqualJSON(args[:len(w)], w) || !isEntryID(str(args[len(w)])) {
			t.Errorf("%s got %s %v, want %v and the offset", id, e.Event, args, w)
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
