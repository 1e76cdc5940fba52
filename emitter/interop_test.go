package emitter_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"github.com/sockstream/sockstream/emitter"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestMixedCluster: a Node reference node (socket.io 4.8.1 with
// @socket.io/redis-streams-adapter 0.3.1) and a sockstream node on one
// Redis, official clients on both: both nodes carry out what the emitter
// writes, and neither counts the emitter as a server.
func TestMixedCluster(t *testing.T) {
	t.Parallel()
	for _, streams := range []int{1, 2} {
		t.Run(fmt.Sprintf("streams-%d", streams), func(t *testing.T) {
			t.Parallel()
			testMixed(t, streams)
		})
	}
}

func testMixed(t *testing.T, streams int) {
	rs := startRedis(t)
	node := startPeer(t, rs.URL(), peerOptions{streamCount: streams})
	g := startGoNode(t, "go", rs.URL(), nodeOptions{streamCount: streams})
	c := siotest.StartClients(t)
	sids := map[string]string{
		"n1": connect(t, c, "n1", node.url, "/", "r1"),
		"n2": connect(t, c, "n2", node.url, "/", "r1,vip"),
		"g1": connect(t, c, "g1", g.URL, "/", "r1"),
		"g2": connect(t, c, "g2", g.URL, "/", "r2"),
	}
	all := []string{"n1", "n2", "g1", "g2"}
	e := newEmitter(t, emitter.Options{URL: rs.URL(), StreamCount: streams})
	if streams > 1 && e.StreamKey("/") != "socket.io-1" {
		t.Fatalf("/ goes to %s: pick a namespace the Node node reads", e.StreamKey("/"))
	}
	syncPeer(t, e, c, "/", "n1")

	binArg := []byte{0, 1, 2, 254, 255}
	binJSON := map[string]any{"$bin": base64.StdEncoding.EncodeToString(binArg)}

	t.Run("broadcast", func(t *testing.T) {
		const tricky = "é\u2028<>&\"\\\n\U0001F600" // JSON encoders disagree on these
		err := e.To("r1").Except("vip").Emit(ctx(t), "news", tricky, binArg, map[string]any{"nested": []byte("hi"), "n": 300})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Except("r1").Emit(ctx(t), "plain", map[string]any{"k": []any{true, nil}}); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "news", []string{"n1", "g1"},
			[]any{tricky, binJSON, map[string]any{"nested": map[string]any{"$bin": "aGk="}, "n": 300}})
		checkReceivers(t, c, "plain", []string{"g2"}, []any{map[string]any{"k": []any{true, nil}}})
	})

	t.Run("not-a-server", func(t *testing.T) {
		if got := node.call(t, map[string]any{"cmd": "serverCount", "nsp": "/"})["count"]; got != 2.0 {
			t.Errorf("Node serverCount %v, want 2", got)
		}
		// A request waits for every server counted: it completes, with
		// every socket, only if the emitter is not one of them.
		s, err := siotest.Fetch(g.Srv.Of("/").In("r1"))
		if want := siotest.Sorted(sids["n1"], sids["n2"], sids["g1"]); err != nil || !slices.Equal(siotest.SocketIDs(s), want) {
			t.Errorf("Go FetchSockets = %v, %v; want %v", siotest.SocketIDs(s), err, want)
		}
		reply := node.call(t, map[string]any{"cmd": "fetchSockets", "nsp": "/", "rooms": []string{"r1"}})
		if got := reply["sockets"].([]any); len(got) != 3 {
			t.Errorf("Node fetchSockets: %v, want 3 sockets", reply)
		}
	})

	t.Run("server-side-emit", func(t *testing.T) {
		node.call(t, map[string]any{"cmd": "listen", "nsp": "/", "event": "sse"})
		got := make(chan []any, 1)
		g.Srv.Of("/").OnServerSideEmit("sse", func(ev *server.Event) { got <- ev.Args })
		siotest.Eventually(t, waitLong, "both nodes subscribed to socket.io#/#", func() bool {
			v, err := rs.Do("PUBSUB", "NUMSUB", "socket.io#/#")
			r, _ := v.([]any)
			return err == nil && len(r) == 2 && r[1] == int64(2)
		})
		if err := e.Of("/").ServerSideEmit(ctx(t), "sse", "x", binArg); err != nil {
			t.Fatal(err)
		}
		if args := siotest.Recv(t, got, waitLong, "server-side event on the Go node"); len(args) != 2 || args[0] != "x" || !slices.Equal(args[1].([]byte), binArg) {
			t.Errorf("the Go node got %#v", args)
		}
		ev := node.Wait(t, "server-side event on the Node node", waitLong, func(ev map[string]any) bool { return ev["type"] == "sse" })
		if !siotest.EqualJSON(ev["args"], []any{"x", binJSON}) || ev["withAck"] != false {
			t.Errorf("the Node node got %v", ev)
		}
	})

	t.Run("sockets-join-leave", func(t *testing.T) {
		if err := e.In("r1").SocketsJoin(ctx(t), "j"); err != nil {
			t.Fatal(err)
		}
		if err := e.To("j").Except("vip").Emit(ctx(t), "to-j"); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "to-j", []string{"n1", "g1"}, []any{})
		rooms := node.call(t, map[string]any{"cmd": "localRooms", "nsp": "/"})["sockets"].(map[string]any)
		for id, want := range map[string][]string{"n1": {"r1", "j"}, "n2": {"r1", "vip", "j"}} {
			if got, want := sortedStrings(rooms[sids[id]]), siotest.Sorted(append(want, sids[id])...); !slices.Equal(got, want) {
				t.Errorf("rooms of %s on the Node node: %v, want %v", id, got, want)
			}
		}

		if err := e.In("vip").SocketsLeave(ctx(t), "j"); err != nil {
			t.Fatal(err)
		}
		if err := e.To("j").Emit(ctx(t), "to-j-again"); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "to-j-again", []string{"n1", "g1"}, []any{})
	})

	t.Run("disconnect-sockets", func(t *testing.T) {
		if err := e.In("j").DisconnectSockets(ctx(t), false); err != nil {
			t.Fatal(err)
		}
		c.WaitN(t, "n1 and g1 disconnected", 2, waitLong, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
		marker(t, e, c, "/", 2) // n2 and g2 are still connected
		if got := disconnects(c, "io server disconnect"); !slices.Equal(got, []string{"g1", "n1"}) {
			t.Errorf("disconnected by the server: %v, want [g1 n1]", got)
		}
		if err := e.Of("/").DisconnectSockets(ctx(t), true); err != nil {
			t.Fatal(err)
		}
		c.WaitN(t, "everyone disconnected", 4, waitLong, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
	})
}

// TestMixedClusterRecovery: with connection state recovery on, a client of
// either node gets the offset of an emitter's broadcast and, disconnected
// while the emitter broadcasts, gets what it missed when it recovers, on
// the other node (Node restoring what it missed on Go, and the reverse):
// the emitter's entries are recovered as any node's.
func TestMixedClusterRecovery(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	node := startPeer(t, rs.URL(), peerOptions{recovery: true})
	g := startGoNode(t, "go", rs.URL(), nodeOptions{recovery: true})
	c := siotest.StartClients(t)
	sidN := connect(t, c, "n1", node.url, "/", "r1")
	sidG := connect(t, c, "g1", g.URL, "/", "r1")
	connect(t, c, "w", g.URL, "/", "r2") // a witness that stays
	e := newEmitter(t, emitter.Options{URL: rs.URL()})
	syncPeer(t, e, c, "/", "n1")

	if err := e.To("r1").Emit(ctx(t), "live", "x"); err != nil {
		t.Fatal(err)
	}
	if on, og := offsetOf(t, c, "n1", "live"), offsetOf(t, c, "g1", "live"); on != og {
		t.Errorf("offset %s on the Node client, %s on the Go client", on, og)
	}

	for _, step := range []struct {
		id, sid, other string
		// The Node package replays volatile broadcasts too (a quirk of
		// its restore, docs/wire-format.md), which live delivery never
		// gives an offset; a Go node does not.
		replaysVolatile bool
	}{
		{"n1", sidN, g.URL, false},   // persisted by Node, restored by Go
		{"g1", sidG, node.url, true}, // persisted by Go, restored by Node
	} {
		t.Run("from-"+step.id, func(t *testing.T) {
			c.Drop(t, step.id)
			siotest.Eventually(t, waitLong, step.id+"'s session in Redis", func() bool {
				v, err := rs.Do("KEYS", "sio:session:*")
				keys, _ := v.([]any)
				return err == nil && len(keys) == 1
			})
			missed, other := "missed-"+step.id, "not-for-"+step.id
			if err := e.To("r1").Emit(ctx(t), missed, []byte{5}, "two"); err != nil {
				t.Fatal(err)
			}
			if err := e.To("r2").Emit(ctx(t), other); err != nil {
				t.Fatal(err)
			}
			if err := e.To("r1").Volatile().Emit(ctx(t), "volatile-"+step.id); err != nil {
				t.Fatal(err)
			}
			c.Wait(t, other+" on the witness", waitLong, siotest.IsEventFor("w", other))

			id2 := step.id + "-back"
			ev := c.Connect(t, id2, step.other+"/", nil, map[string]any{"recoverFrom": step.id})
			if !ev.Recovered || ev.Sid != step.sid {
				t.Fatalf("%s did not recover %s's session on the other node: %v (sid was %s)", id2, step.id, ev, step.sid)
			}
			// The replayed packets come before a later broadcast.
			marker(t, e, c, "/", 3) // w, id2 and the other client of r1
			var got []string
			for _, ev := range c.Filter(func(ev siotest.Event) bool { return ev.Type == "event" && ev.ID == id2 }) {
				got = append(got, ev.Event)
			}
			want := []string{missed}
			if step.replaysVolatile {
				want = append(want, "volatile-"+step.id)
			}
			if len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) {
				t.Fatalf("%s got %v after its recovery, want %v and a marker", id2, got, want)
			}
			args := c.Filter(siotest.IsEventFor(id2, missed))[0].Args
			if len(args) != 3 || !siotest.EqualJSON(args[:2], []any{map[string]any{"$bin": "BQ=="}, "two"}) || !entryID.MatchString(str(args[2])) {
				t.Errorf("%s got %s with %v, want [{$bin BQ==} two <offset>]", id2, missed, args)
			}
		})
	}
}

func sortedStrings(v any) []string {
	var out []string
	if x, ok := v.([]any); ok {
		for _, e := range x {
			out = append(out, str(e))
		}
	}
	slices.Sort(out)
	return out
}
