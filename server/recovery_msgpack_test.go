package server_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// Connection state recovery under the msgpack parser, with the official
// client and socket.io-msgpack-parser: missed packets, binary ones
// included, come back from the memory log or the Redis stream and are
// encoded as MessagePack, offsets and all.
//
// The mixed Go + Node variant is in recovery_msgpack_mixed_test.go.

// mpRecoveryModes are the transports the client loses and comes back on.
var mpRecoveryModes = []struct {
	name       string
	transports []string
}{
	{"websocket", []string{"websocket"}},
	{"polling", []string{"polling"}},
}

// The numbers of broadcasts of each phase, per broadcasting node: before
// the cut, while the client is away, after it is back. The missed ones
// cover every payload shape of mpPayload twice.
const (
	mpBefore = 3
	mpMissed = 8
	mpAfter  = 3
	mpTotal  = mpBefore + mpMissed + mpAfter
)

// mpPayload is the argument list of broadcast i (i first). Its shapes:
// Buffers inside an object, one nested in an array; no binary at all; a
// top-level Buffer and an empty one inside an object; a Buffer above
// 64 KiB (MessagePack bin 32). The last argument is never a string, which
// the client would take for an offset.
func mpPayload(i int) []any {
	switch i % 4 {
	case 0:
		return []any{i, map[string]any{
			"i":    i,
			"buf":  []byte{byte(i), 0, 0xff},
			"deep": []any{map[string]any{"b": []byte{0xca, 0xfe, byte(i)}}, "s"},
		}}
	case 1:
		return []any{i, map[string]any{"i": i, "text": fmt.Sprintf("plain %d", i), "list": []any{1.5, true, nil}}}
	case 2:
		return []any{i, []byte{byte(i), 1}, map[string]any{"empty": []byte{}, "n": -i}}
	default:
		big := bytes.Repeat([]byte{byte(i)}, 70_000)
		big[0], big[len(big)-1] = 0xde, 0xad
		return []any{i, map[string]any{"big": big}}
	}
}

// mpWire is v as the client script prints it: every []byte as
// {"$bin": base64}.
func mpWire(v any) any {
	switch t := v.(type) {
	case []byte:
		return map[string]any{"$bin": base64.StdEncoding.EncodeToString(t)}
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = mpWire(t[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = mpWire(x)
		}
		return out
	}
	return v
}

// mpCount is what a client got of one event, for the report.
type mpCount struct {
	event string
	got   int
}

// mpCheckSequence checks that client id got event exactly n times: the
// k-th is broadcast k with mpPayload(k), binary byte-exact, and its
// offset last. It returns how many it got.
func mpCheckSequence(t *testing.T, c *siotest.Clients, id, event string, n int) mpCount {
	t.Helper()
	got := c.Filter(siotest.IsEventFor(id, event))
	if len(got) != n {
		t.Errorf("%s got %d %q packets, want %d", id, len(got), event, n)
	}
	for k, ev := range got {
		want := mpWire(mpPayload(k)).([]any)
		if len(ev.Args) != len(want)+1 {
			t.Errorf("%s: %q #%d has %d args, want %d and an offset", id, event, k, len(ev.Args), len(want))
			continue
		}
		if off, ok := ev.Args[len(want)].(string); !ok || off == "" {
			t.Errorf("%s: %q #%d ends with %#v, not an offset", id, event, k, ev.Args[len(want)])
		}
		if !siotest.EqualJSON(ev.Args[:len(want)], want) {
			t.Errorf("%s: %q #%d = %.300v, want broadcast %d: %.300v", id, event, k, ev.Args[:len(want)], k, want)
		}
	}
	return mpCount{event, len(got)}
}

// mpEmit broadcasts i of event to room news from ts, and noise the client
// must never get: another room, and news excluded.
func mpEmit(t *testing.T, ts *testServer, event string, i int) {
	t.Helper()
	if err := ts.To("news").Emit(event, mpPayload(i)...); err != nil {
		t.Fatalf("%s #%d: %v", event, i, err)
	}
	if err := ts.To("elsewhere").Emit("noise", i); err != nil {
		t.Fatal(err)
	}
	if err := ts.To("news").Except("news").Emit("noise", i); err != nil {
		t.Fatal(err)
	}
}

type mpConn struct {
	node string
	s    *server.Socket
}

// mpSetup joins a new socket to news (a recovered one must have it back
// from its session) and reports every connection on conns.
func mpSetup(node string, conns chan<- mpConn) func(*server.Server) {
	return func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			if !s.Recovered() {
				s.Join("news")
			}
			conns <- mpConn{node, s}
		})
	}
}

// mpCheckBack checks the reconnection: recovered on both ends, same id,
// on node want, with room news back.
func mpCheckBack(t *testing.T, first, second siotest.Event, back mpConn, want string) {
	t.Helper()
	if !second.Recovered || !back.s.Recovered() || second.Sid != first.Sid || back.s.ID() != first.Sid {
		t.Fatalf("reconnection: recovered client %v server %v, sid %s (server %s), want recovered with %s",
			second.Recovered, back.s.Recovered(), second.Sid, back.s.ID(), first.Sid)
	}
	if back.node != want {
		t.Errorf("reconnection on node %s, want %s", back.node, want)
	}
	if !slices.Contains(back.s.Rooms(), "news") {
		t.Errorf("rooms after recovery = %q, want news among them", back.s.Rooms())
	}
}

const (
	mpPersistedOK = `sockstream_recovery_sessions_persisted_total{result="ok"}`
	mpRecovered   = `sockstream_recovery_attempts_total{result="recovered"}`
	mpReplayed    = `sockstream_recovery_replayed_packets_total`
)

// TestMsgpackRecoveryLocal: one node, Parser msgpack, recovery in memory.
// A msgpack client gets some broadcasts, loses its transport, misses
// broadcasts with binary in many shapes, and comes back recovered: it gets
// every missed packet once, in order, binary intact, then the live ones.
func TestMsgpackRecoveryLocal(t *testing.T) {
	t.Parallel()
	for _, m := range mpRecoveryModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			testMsgpackRecoveryLocal(t, m.transports)
		})
	}
}

func testMsgpackRecoveryLocal(t *testing.T, transports []string) {
	conns := make(chan mpConn, 4)
	ts := startServer(t, server.Config{
		Parser:   server.ParserMsgpack,
		Recovery: server.RecoveryConfig{Enabled: true},
	}, mpSetup("solo", conns))
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", ts.URL, nil, map[string]any{"parser": "msgpack", "transports": transports})
	if c0 := recv(t, conns, "connection"); first.Recovered || c0.s.Recovered() {
		t.Fatal("the first connection says recovered")
	}

	for i := range mpBefore {
		mpEmit(t, ts, "n", i)
	}
	c.WaitN(t, "the packets before the cut", mpBefore, waitFor, siotest.IsEventFor("c1", "n"))

	c.Drop(t, "c1")
	// The session is stored once the server saw the disconnection: what
	// follows is missed for sure, and the client can come back.
	eventually(t, "the session persisted", func() bool { return metric(t, ts, mpPersistedOK) >= 1 })
	for i := mpBefore; i < mpBefore+mpMissed; i++ {
		mpEmit(t, ts, "n", i)
	}

	c.Reconnect(t, "c1", "")
	second := c.NthConnect(t, "c1", 1)
	mpCheckBack(t, first, second, recv(t, conns, "reconnection"), "solo")

	for i := mpBefore + mpMissed; i < mpTotal; i++ {
		mpEmit(t, ts, "n", i)
	}
	if err := ts.To("news").Emit("end", true); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "the end marker", waitFor, siotest.IsEventFor("c1", "end"))
	got := mpCheckSequence(t, c, "c1", "n", mpTotal)
	noise := c.Count(siotest.IsEventFor("c1", "noise"))
	if noise > 0 {
		t.Errorf("the client got %d packets not meant for it", noise)
	}
	if m := metric(t, ts, mpRecovered); m != 1 {
		t.Errorf("recovered attempts = %v, want 1", m)
	}
	replayed := metric(t, ts, mpReplayed)
	if replayed != mpMissed {
		t.Errorf("replayed packets = %v, want %d", replayed, mpMissed)
	}
	t.Logf("delivered %d %q (%d before the cut, %d missed, %d live after), noise %d, replayed %v",
		got.got, got.event, mpBefore, mpMissed, mpAfter, noise, replayed)
}

// TestMsgpackRecoveryCluster: two Go nodes with Parser msgpack over a real
// Redis, recovery in Redis. A msgpack client of node a gets broadcasts of
// both nodes, loses its transport, misses broadcasts of both (binary in
// many shapes), and comes back to node b recovered: it gets each node's
// missed packets once, in that node's order, binary intact, then the live
// ones. Two nodes' broadcasts have no order between them: each node's
// own order is what is checked.
func TestMsgpackRecoveryCluster(t *testing.T) {
	t.Parallel()
	for _, m := range mpRecoveryModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			testMsgpackRecoveryCluster(t, m.transports)
		})
	}
}

func testMsgpackRecoveryCluster(t *testing.T, transports []string) {
	rs := redistest.StartStandalone(t)
	cfg := server.Config{Parser: server.ParserMsgpack, Recovery: server.RecoveryConfig{Enabled: true}}
	conns := make(chan mpConn, 4)
	a := startClusterServerWith(t, cfg, rs.URL(), mpSetup("a", conns))
	b := startClusterServerWith(t, cfg, rs.URL(), mpSetup("b", conns))
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	nodes := []struct {
		ts    *testServer
		event string
	}{{a, "ta"}, {b, "tb"}}

	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.URL, nil, map[string]any{"parser": "msgpack", "transports": transports})
	if c0 := recv(t, conns, "connection"); c0.node != "a" || first.Recovered || c0.s.Recovered() {
		t.Fatalf("first connection on %s, recovered %v", c0.node, first.Recovered)
	}

	for i := range mpBefore {
		for _, n := range nodes {
			mpEmit(t, n.ts, n.event, i)
		}
	}
	for _, n := range nodes {
		c.WaitN(t, n.event+" before the cut", mpBefore, waitFor, siotest.IsEventFor("c1", n.event))
	}

	c.Drop(t, "c1")
	eventually(t, "the session persisted", func() bool { return metric(t, a, mpPersistedOK) >= 1 })
	for i := mpBefore; i < mpBefore+mpMissed; i++ {
		for _, n := range nodes {
			mpEmit(t, n.ts, n.event, i)
		}
	}

	c.Reconnect(t, "c1", b.URL)
	second := c.NthConnect(t, "c1", 1)
	mpCheckBack(t, first, second, recv(t, conns, "reconnection"), "b")

	for i := mpBefore + mpMissed; i < mpTotal; i++ {
		for _, n := range nodes {
			mpEmit(t, n.ts, n.event, i)
		}
	}
	// Each node's end marker follows its own broadcasts in the stream.
	for _, n := range nodes {
		if err := n.ts.To("news").Emit(n.event+"-end", true); err != nil {
			t.Fatal(err)
		}
	}
	var counts []mpCount
	for _, n := range nodes {
		c.Wait(t, n.event+"-end", waitFor, siotest.IsEventFor("c1", n.event+"-end"))
	}
	for _, n := range nodes {
		counts = append(counts, mpCheckSequence(t, c, "c1", n.event, mpTotal))
	}
	noise := c.Count(siotest.IsEventFor("c1", "noise"))
	if noise > 0 {
		t.Errorf("the client got %d packets not meant for it", noise)
	}
	if m := metric(t, b, mpRecovered); m != 1 {
		t.Errorf("b's recovered attempts = %v, want 1", m)
	}
	replayed := metric(t, b, mpReplayed)
	if replayed != 2*mpMissed {
		t.Errorf("b replayed %v packets, want %d", replayed, 2*mpMissed)
	}
	t.Logf("delivered %q %d and %q %d (each %d before the cut, %d missed, %d live after), noise %d, b replayed %v",
		counts[0].event, counts[0].got, counts[1].event, counts[1].got, mpBefore, mpMissed, mpAfter, noise, replayed)
}
