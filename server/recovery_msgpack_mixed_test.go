package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// Connection state recovery under the msgpack parser across a mixed
// cluster: one Go node and one Node reference node (socket.io 4.8.1 with
// socket.io-msgpack-parser and @socket.io/redis-streams-adapter 0.3.1,
// testdata/cluster/node-peer.js) over one real Redis stream. A session
// persisted by one implementation is restored by the other, which replays
// from the stream what both nodes broadcast meanwhile, binary included.
//
// What Node cannot do, and how the tests avoid it: a node delivers its
// own broadcasts as soon as they are written to the stream and the other
// node's when its reader gets them, so a client can be sent packets out of
// stream order, and its last offset then does not say exactly what it got.
// The Go node resolves this with the delivery marks it keeps in its
// sessions (adapter.DeliveryMark); Node's restoreSession (adapter.js of
// redis-streams-adapter 0.3.1) replays every entry after the offset and
// ignores the marks, and the sessions Node persists have none, so the Go
// node restores them by the offset alone too. Before the cut, the tests
// therefore make the client's last packet the newest one meant for it: a
// marker from its own node, broadcast once it got everything else.

// mpmNodeName and mpmGoName are the node names the sockets' data carries.
const (
	mpmNodeName = "node"
	mpmGoName   = "go"
)

// mpmPeer is the Node reference node, driven by JSON lines.
type mpmPeer struct {
	*siotest.Proc[map[string]any]
	url string
	seq atomic.Int64
}

// call sends cmd and returns the reply carrying its seq.
func (p *mpmPeer) call(t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	seq := float64(p.seq.Add(1))
	cmd["seq"] = seq
	p.Do(t, cmd)
	reply := p.Wait(t, fmt.Sprintf("reply to %v", cmd["cmd"]), waitFor, func(ev map[string]any) bool { return ev["seq"] == seq })
	if reply["type"] == "error" {
		t.Fatalf("node peer: %v failed: %v", cmd["cmd"], reply["message"])
	}
	return reply
}

// broadcast emits event with args (binary as {"$bin": base64}) to rooms
// minus except from the Node node. Its reply comes before the entry is
// written: only a client's receipt tells that it is in the stream.
func (p *mpmPeer) broadcast(t *testing.T, rooms, except []string, event string, args []any) {
	t.Helper()
	p.call(t, map[string]any{"cmd": "broadcast", "nsp": "/", "rooms": rooms, "except": except, "event": event, "args": args})
}

// mpmCluster is the mixed cluster of one test.
type mpmCluster struct {
	redis   *redistest.Server
	node    *mpmPeer
	gonode  *testServer
	conns   chan mpConn // the Go node's connections of client c1
	clients *siotest.Clients
	opts    map[string]any // the client options: msgpack, the transports
}

// startMpmCluster starts Redis, the Node node and the Go node (both with
// recovery and the msgpack parser), the client process, and a probe client
// on each node, in rooms news and probe; it returns once each node reads
// what the other writes to the stream.
func startMpmCluster(t *testing.T, transports []string) *mpmCluster {
	t.Helper()
	m := &mpmCluster{
		redis: redistest.StartStandalone(t),
		conns: make(chan mpConn, 4),
		opts:  map[string]any{"parser": "msgpack", "transports": transports},
	}
	cfg, err := json.Marshal(map[string]any{
		"name": mpmNodeName, "redisUrl": m.redis.URL(), "recovery": true, "parser": "msgpack",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The adapter's debug lines (sessions restored, entries it cannot
	// decode) are shown with the process's stderr when a test fails.
	proc := siotest.StartProc[map[string]any](t, "node peer", "testdata/cluster/node-peer.js",
		[]string{"DEBUG=socket.io-redis-streams-adapter", "DEBUG_COLORS=0", "DEBUG_HIDE_DATE=1"}, string(cfg))
	m.node = &mpmPeer{Proc: proc}
	t.Cleanup(func() {
		for _, bad := range []string{"invalid format", "error while", "something went wrong"} {
			if strings.Contains(proc.Stderr(), bad) {
				t.Errorf("the Node node logged %q", bad)
			}
		}
	})
	ready := proc.Wait(t, "node peer listening", waitFor, func(ev map[string]any) bool { return ev["type"] == "listening" })
	m.node.url = fmt.Sprintf("http://127.0.0.1:%v", ready["port"])

	// As node-peer.js: rooms from the query, data {user, node}; a
	// recovered socket has both from its session. Only c1 is reported.
	m.gonode = startClusterServerWith(t,
		server.Config{Parser: server.ParserMsgpack, Recovery: server.RecoveryConfig{Enabled: true}},
		m.redis.URL(), func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				q := s.Handshake().Query
				if !s.Recovered() {
					if rooms := q.Get("rooms"); rooms != "" {
						s.Join(strings.Split(rooms, ",")...)
					}
					s.SetData(map[string]any{"user": q.Get("user"), "node": mpmGoName})
				}
				if q.Get("user") == "u1" {
					m.conns <- mpConn{mpmGoName, s}
				}
			})
		})
	eventually(t, "/readyz 200", func() bool { return readyz(t, m.gonode) == http.StatusOK })

	m.clients = siotest.StartClients(t)
	m.clients.Connect(t, "pg", m.gonode.URL, map[string]string{"rooms": "news,probe", "user": "probe"}, m.opts)
	m.clients.Connect(t, "pn", m.node.url, map[string]string{"rooms": "news,probe", "user": "probe"}, m.opts)
	// The Node adapter starts reading its stream at "$" in the background,
	// with nothing telling when: an entry written before that is never
	// delivered by it. Each node broadcasts numbered probes until the
	// other node's probe client gets one.
	m.sync(t, "pn", func(ev string) {
		if err := m.gonode.To("probe").Emit(ev); err != nil {
			t.Fatal(err)
		}
	})
	m.sync(t, "pg", func(ev string) { m.node.broadcast(t, []string{"probe"}, nil, ev, []any{}) })
	return m
}

// sync publishes probes until client got one. The wait between two tries
// only paces the retries: what ends the loop is the client's receipt.
func (m *mpmCluster) sync(t *testing.T, client string, publish func(ev string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	isSync := func(ev siotest.Event) bool {
		return ev.Type == "event" && ev.ID == client && strings.HasPrefix(ev.Event, "sync-")
	}
	for i := 0; ; i++ {
		publish(fmt.Sprintf("sync-%s-%d", client, i))
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if m.clients.Count(isSync) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe reached client %s within %v", client, waitFor)
		}
	}
}

// emitGo and emitNode broadcast i of event to room news from their node,
// with the noise of mpEmit (another room, news excluded).
func (m *mpmCluster) emitGo(t *testing.T, event string, i int) { mpEmit(t, m.gonode, event, i) }

func (m *mpmCluster) emitNode(t *testing.T, event string, i int) {
	t.Helper()
	m.node.broadcast(t, []string{"news"}, nil, event, mpWire(mpPayload(i)).([]any))
	m.node.broadcast(t, []string{"elsewhere"}, nil, "noise", []any{i})
	m.node.broadcast(t, []string{"news"}, []string{"news"}, "noise", []any{i})
}

// emitBoth broadcasts [from, to) from both nodes: tg from the Go node, tn
// from the Node node.
func (m *mpmCluster) emitBoth(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m.emitGo(t, "tg", i)
		m.emitNode(t, "tn", i)
	}
}

// waitBoth waits until client id got n of each node's broadcasts.
func (m *mpmCluster) waitBoth(t *testing.T, id string, n int) {
	t.Helper()
	for _, ev := range []string{"tg", "tn"} {
		m.clients.WaitN(t, fmt.Sprintf("%d %s on %s", n, ev, id), n, waitFor, siotest.IsEventFor(id, ev))
	}
}

// finish broadcasts the live packets after the reconnection and each
// node's end marker (behind its own broadcasts in the stream), then checks
// what c1 got over the whole test: each node's mpTotal broadcasts exactly
// once, in its order, binary intact, each with an offset; the cut marker
// once; nothing else.
func (m *mpmCluster) finish(t *testing.T) {
	t.Helper()
	m.emitBoth(t, mpBefore+mpMissed, mpTotal)
	if err := m.gonode.To("news").Emit("tg-end", true); err != nil {
		t.Fatal(err)
	}
	m.node.broadcast(t, []string{"news"}, nil, "tn-end", []any{true})
	for _, ev := range []string{"tg-end", "tn-end"} {
		m.clients.Wait(t, ev, waitFor, siotest.IsEventFor("c1", ev))
	}
	g := mpCheckSequence(t, m.clients, "c1", "tg", mpTotal)
	n := mpCheckSequence(t, m.clients, "c1", "tn", mpTotal)
	want := []string{"cut", "tg", "tg-end", "tn", "tn-end"}
	others := 0
	for _, ev := range m.clients.Filter(func(ev siotest.Event) bool { return ev.Type == "event" && ev.ID == "c1" }) {
		if !slices.Contains(want, ev.Event) {
			others++
			t.Errorf("c1 got %q %.200v, not meant for it", ev.Event, ev.Args)
		}
	}
	if cuts := m.clients.Count(siotest.IsEventFor("c1", "cut")); cuts != 1 {
		t.Errorf("c1 got the cut marker %d times, want 1", cuts)
	}
	t.Logf("c1 got %d %q and %d %q (each %d before the cut, %d missed, %d live after), %d others",
		g.got, g.event, n.got, n.event, mpBefore, mpMissed, mpAfter, others)
}

// TestMsgpackRecoveryMixedGoToNode: a msgpack client of the Go node gets
// broadcasts of both nodes, loses its transport (the Go node persists its
// session), misses broadcasts of both with binary in many shapes (Buffers
// in objects, a 70 kB one), and comes back to the Node node, which
// restores the session from Redis: recovered on both ends, same id, rooms
// and data back, each node's missed packets once, in that node's order,
// binary intact, then the live ones.
func TestMsgpackRecoveryMixedGoToNode(t *testing.T) {
	t.Parallel()
	for _, mode := range mpRecoveryModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testMsgpackRecoveryMixedGoToNode(t, mode.transports)
		})
	}
}

func testMsgpackRecoveryMixedGoToNode(t *testing.T, transports []string) {
	m := startMpmCluster(t, transports)
	c := m.clients
	first := c.Connect(t, "c1", m.gonode.URL, map[string]string{"rooms": "news", "user": "u1"}, m.opts)
	if c0 := recv(t, m.conns, "connection"); first.Recovered || c0.s.Recovered() {
		t.Fatal("the first connection says recovered")
	}

	m.emitBoth(t, 0, mpBefore)
	m.waitBoth(t, "c1", mpBefore)
	// The cut marker, written after every packet c1 got and delivered
	// after it: c1's offset is the newest entry meant for it, so that the
	// Node node's replay (every entry after the offset) is exact.
	if err := m.gonode.To("news").Emit("cut"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "the cut marker", waitFor, siotest.IsEventFor("c1", "cut"))

	c.Drop(t, "c1")
	eventually(t, "the session persisted", func() bool { return metric(t, m.gonode, mpPersistedOK) >= 1 })
	m.emitBoth(t, mpBefore, mpBefore+mpMissed)
	// Node has no handover between its replay and its live delivery: a
	// missed entry its reader gets after the socket is back would come
	// twice. Its probe client, in news, getting them all says its reader
	// is past them (its own ones: written, since delivered after).
	m.waitBoth(t, "pn", mpBefore+mpMissed)

	c.Reconnect(t, "c1", m.node.url)
	second := c.NthConnect(t, "c1", 1)
	if !second.Recovered || second.Sid != first.Sid {
		t.Fatalf("reconnection to the Node node: recovered %v, sid %s, want recovered with %s", second.Recovered, second.Sid, first.Sid)
	}
	m.node.Wait(t, "the Node node's recovered connection", waitFor, func(ev map[string]any) bool {
		return ev["type"] == "connection" && ev["id"] == first.Sid && ev["recovered"] == true
	})
	rooms, _ := m.node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
	got, _ := rooms[first.Sid].([]any)
	if !slices.Contains(got, any("news")) {
		t.Errorf("rooms of c1 on the Node node = %v, want news among them", got)
	}
	sockets, _ := m.node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/", "rooms": []string{first.Sid}, "local": true})["sockets"].([]any)
	if len(sockets) != 1 {
		t.Fatalf("the Node node has %d sockets %s, want 1", len(sockets), first.Sid)
	}
	if data := sockets[0].(map[string]any)["data"]; !siotest.EqualJSON(data, map[string]any{"user": "u1", "node": mpmGoName}) {
		t.Errorf("data of c1 on the Node node = %v, want the Go node's", data)
	}

	m.finish(t)
}

// TestMsgpackRecoveryMixedNodeToGo is the reverse: the client starts on
// the Node node, which persists its session, and comes back to the Go
// node, which restores it from Redis and replays both nodes' entries.
func TestMsgpackRecoveryMixedNodeToGo(t *testing.T) {
	t.Parallel()
	for _, mode := range mpRecoveryModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testMsgpackRecoveryMixedNodeToGo(t, mode.transports)
		})
	}
}

func testMsgpackRecoveryMixedNodeToGo(t *testing.T, transports []string) {
	m := startMpmCluster(t, transports)
	c := m.clients
	first := c.Connect(t, "c1", m.node.url, map[string]string{"rooms": "news", "user": "u1"}, m.opts)
	m.node.Wait(t, "the Node node's connection", waitFor, func(ev map[string]any) bool {
		return ev["type"] == "connection" && ev["id"] == first.Sid && ev["recovered"] == false
	})
	if first.Recovered {
		t.Fatal("the first connection says recovered")
	}

	m.emitBoth(t, 0, mpBefore)
	m.waitBoth(t, "c1", mpBefore)
	// As in GoToNode: a Node session has no delivery marks, so the Go node
	// restores it by the offset alone, which the marker makes exact.
	m.node.broadcast(t, []string{"news"}, nil, "cut", []any{})
	c.Wait(t, "the cut marker", waitFor, siotest.IsEventFor("c1", "cut"))

	c.Drop(t, "c1")
	// The Node node has no metrics: its session in Redis is the witness
	// (the probes are connected, so it is the only one).
	eventually(t, "the session persisted", func() bool {
		v, err := m.redis.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})
	m.emitBoth(t, mpBefore, mpBefore+mpMissed)
	// Every missed packet in the stream before the restore reads it, so
	// that all are replayed (the handover would deliver late ones live).
	m.waitBoth(t, "pg", mpBefore+mpMissed)

	c.Reconnect(t, "c1", m.gonode.URL)
	second := c.NthConnect(t, "c1", 1)
	back := recv(t, m.conns, "reconnection")
	mpCheckBack(t, first, second, back, mpmGoName)
	if data := back.s.Data(); !siotest.EqualJSON(data, map[string]any{"user": "u1", "node": mpmNodeName}) {
		t.Errorf("data of c1 on the Go node = %v, want the Node node's", data)
	}

	m.finish(t)
	if v := metric(t, m.gonode, mpRecovered); v != 1 {
		t.Errorf("the Go node's recovered attempts = %v, want 1", v)
	}
	if v := metric(t, m.gonode, mpReplayed); v != 2*mpMissed {
		t.Errorf("the Go node replayed %v packets, want %d", v, 2*mpMissed)
	}
}
