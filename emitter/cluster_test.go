package emitter_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sockstream/sockstream/emitter"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestGoCluster: two sockstream nodes clustered through Config.Redis, the
// official client on both, and an emitter that serves no client: every
// operation of the emitter reaches the sockets of both nodes, and no node
// counts the emitter as one of theirs.
func TestGoCluster(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a := startGoNode(t, "a", rs.URL(), nodeOptions{nsps: []string{"/chat"}})
	b := startGoNode(t, "b", rs.URL(), nodeOptions{nsps: []string{"/chat"}})
	c := siotest.StartClients(t)
	// a1, a2 on a; b1, b2 on b; c1 in /chat on a.
	sids := map[string]string{
		"a1": connect(t, c, "a1", a.URL, "/", "r1"),
		"a2": connect(t, c, "a2", a.URL, "/", "r1,vip"),
		"b1": connect(t, c, "b1", b.URL, "/", "r1"),
		"b2": connect(t, c, "b2", b.URL, "/", "r2"),
	}
	connect(t, c, "c1", a.URL, "/chat", "r1")
	all := []string{"a1", "a2", "b1", "b2"}
	e := newEmitter(t, emitter.Options{URL: rs.URL()})

	binArg := []byte{0, 1, 2, 254, 255}
	binJSON := map[string]any{"$bin": base64.StdEncoding.EncodeToString(binArg)}

	t.Run("to-room-except-binary", func(t *testing.T) {
		err := e.To("r1").Except("vip").Emit(ctx(t), "news", "hello", binArg, map[string]any{"nested": []byte("hi"), "n": 300})
		if err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "news", []string{"a1", "b1"},
			[]any{"hello", binJSON, map[string]any{"nested": map[string]any{"$bin": "aGk="}, "n": 300}})
	})

	t.Run("to-all-and-except-only", func(t *testing.T) {
		if err := e.Emit(ctx(t), "to-all", 1.5, nil, true); err != nil {
			t.Fatal(err)
		}
		if err := e.Except("r1").Emit(ctx(t), "except-r1"); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "to-all", all, []any{1.5, nil, true})
		checkReceivers(t, c, "except-r1", []string{"b2"}, []any{})
	})

	t.Run("namespace", func(t *testing.T) {
		if err := e.Of("chat").To("r1").Emit(ctx(t), "chat-news", binArg); err != nil { // "chat" is "/chat"
			t.Fatal(err)
		}
		c.Wait(t, "chat-news on c1", waitLong, siotest.IsEventFor("c1", "chat-news"))
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "chat-news", []string{"c1"}, []any{binJSON})
	})

	t.Run("server-side-emit", func(t *testing.T) {
		got := make(chan []any, 2)
		for _, n := range []*siotest.Server{a, b} {
			n.Srv.Of("/").OnServerSideEmit("sse", func(ev *server.Event) { got <- ev.Args })
		}
		// Published over pub/sub like the nodes' own: only subscribed
		// adapters get it. Both have subscribed once NUMSUB says so.
		siotest.Eventually(t, waitLong, "both nodes subscribed to socket.io#/#", func() bool {
			v, err := rs.Do("PUBSUB", "NUMSUB", "socket.io#/#")
			r, _ := v.([]any)
			return err == nil && len(r) == 2 && r[1] == int64(2)
		})
		if err := e.Of("/").ServerSideEmit(ctx(t), "sse", "x", binArg); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			args := siotest.Recv(t, got, waitLong, "server-side event on a node")
			if len(args) != 2 || args[0] != "x" || !slices.Equal(args[1].([]byte), binArg) {
				t.Errorf("a node got %#v", args)
			}
		}
		if c.Count(siotest.IsEvent("sse")) != 0 {
			t.Error("a client got the server-side event")
		}
	})

	t.Run("sockets-join-leave", func(t *testing.T) {
		if err := e.In("r2").SocketsJoin(ctx(t), "joined", "also"); err != nil {
			t.Fatal(err)
		}
		if err := e.To("joined").Emit(ctx(t), "to-joined"); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "to-joined", []string{"b2"}, []any{})
		// Seen from node a, through the cluster: fetchSockets completes
		// (no node waits for an answer of the emitter) and b2 is in both
		// rooms.
		s, err := siotest.Fetch(a.Srv.In("also"))
		if err != nil || !slices.Equal(siotest.SocketIDs(s), []string{sids["b2"]}) {
			t.Fatalf("FetchSockets(also) from a = %v, %v; want [%s]", siotest.SocketIDs(s), err, sids["b2"])
		}
		if err := e.In("joined").SocketsLeave(ctx(t), "joined"); err != nil {
			t.Fatal(err)
		}
		if err := e.To("joined").Emit(ctx(t), "after-leave"); err != nil {
			t.Fatal(err)
		}
		if err := e.To("also").Emit(ctx(t), "still-also"); err != nil {
			t.Fatal(err)
		}
		marker(t, e, c, "/", len(all))
		checkReceivers(t, c, "after-leave", nil, nil)
		checkReceivers(t, c, "still-also", []string{"b2"}, []any{})
	})

	t.Run("disconnect-sockets", func(t *testing.T) {
		if err := e.In("vip").DisconnectSockets(ctx(t), false); err != nil {
			t.Fatal(err)
		}
		c.Wait(t, "a2 disconnected", waitLong, func(ev siotest.Event) bool { return ev.Type == "disconnect" && ev.ID == "a2" })
		if err := e.Except("r2").DisconnectSockets(ctx(t), true); err != nil {
			t.Fatal(err)
		}
		c.WaitN(t, "a1 and b1 disconnected", 3, waitLong, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
		marker(t, e, c, "/", 1) // b2 is still connected
		if got := disconnects(c, "io server disconnect"); !slices.Equal(got, []string{"a1", "a2", "b1"}) {
			t.Errorf("disconnected by the server: %v, want [a1 a2 b1]", got)
		}
		// c1 is a client of its own (another connection), in another
		// namespace: untouched.
		if err := e.Of("/chat").Emit(ctx(t), "chat-after"); err != nil {
			t.Fatal(err)
		}
		c.Wait(t, "chat-after on c1", waitLong, siotest.IsEventFor("c1", "chat-after"))
	})
}

// TestGoClusterStreams: with StreamCount 3, the emitter writes each
// namespace to the stream the nodes read it from, including the streams of
// a negative hash (socket.io--1, which only Go nodes read).
func TestGoClusterStreams(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	nsps := []string{"/", "/a", "/orders-namespace"}
	a := startGoNode(t, "a", rs.URL(), nodeOptions{streamCount: 3, nsps: nsps[1:]})
	b := startGoNode(t, "b", rs.URL(), nodeOptions{streamCount: 3, nsps: nsps[1:]})
	c := siotest.StartClients(t)
	e := newEmitter(t, emitter.Options{URL: rs.URL(), StreamCount: 3})

	keys := map[string]bool{}
	for _, nsp := range nsps {
		keys[e.StreamKey(nsp)] = true
		connect(t, c, "a"+nsp, a.URL, nsp, "r")
		connect(t, c, "b"+nsp, b.URL, nsp, "")
	}
	// "/" -> socket.io-2, "/a" -> socket.io-0, "/orders-namespace" ->
	// socket.io--2 (cluster.StreamKey, as Node computes it).
	if len(keys) != 3 {
		t.Fatalf("the namespaces share streams: %v", keys)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(nsps))
	for _, nsp := range nsps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.Of(nsp).To("r").Emit(ctx(t), "hello", nsp)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, nsp := range nsps {
		ev := c.Wait(t, "hello in "+nsp, waitLong, siotest.IsEventFor("a"+nsp, "hello"))
		if !siotest.EqualJSON(ev.Args, []any{nsp}) {
			t.Errorf("%s got %v", nsp, ev.Args)
		}
		v, err := rs.Do("XLEN", e.StreamKey(nsp))
		if err != nil || v != int64(1) {
			t.Errorf("XLEN %s = %v, %v; want 1", e.StreamKey(nsp), v, err)
		}
	}
	for _, nsp := range nsps {
		marker(t, e, c, nsp, 2)
	}
	if got := c.Receivers("hello"); len(got) != len(nsps) {
		t.Errorf("hello reached %v, want only the clients in r", got)
	}
}

// TestGoClusterRecovery: between two sockstream nodes with recovery on,
// whose sessions record what was delivered from which publisher, the
// emitter's broadcasts interleaved with a node's are replayed once each,
// in stream order, and nothing delivered before the drop comes again.
func TestGoClusterRecovery(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a := startGoNode(t, "a", rs.URL(), nodeOptions{recovery: true})
	b := startGoNode(t, "b", rs.URL(), nodeOptions{recovery: true})
	c := siotest.StartClients(t)
	sid := connect(t, c, "r", a.URL, "/", "r1")
	connect(t, c, "w", b.URL, "/", "r2") // a witness that stays
	e := newEmitter(t, emitter.Options{URL: rs.URL()})

	emitBoth := func(prefix string) []string {
		var names []string
		for i := range 2 {
			n := fmt.Sprintf("%s-emitter-%d", prefix, i)
			if err := e.To("r1").Emit(ctx(t), n, i); err != nil {
				t.Fatal(err)
			}
			m := fmt.Sprintf("%s-node-%d", prefix, i)
			if err := b.Srv.To("r1").Emit(m, i); err != nil {
				t.Fatal(err)
			}
			names = append(names, n, m)
		}
		return names
	}
	live := emitBoth("live")
	offsetOf(t, c, "r", live[len(live)-1])
	c.Drop(t, "r")
	siotest.Eventually(t, waitLong, "r's session in Redis", func() bool {
		v, err := rs.Do("KEYS", "sio:session:*")
		keys, _ := v.([]any)
		return err == nil && len(keys) == 1
	})
	missed := emitBoth("missed")
	if err := e.To("r2").Emit(ctx(t), "not-for-r"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "not-for-r on the witness", waitLong, siotest.IsEventFor("w", "not-for-r"))

	ev := c.Connect(t, "r-back", b.URL+"/", nil, map[string]any{"recoverFrom": "r"})
	if !ev.Recovered || ev.Sid != sid {
		t.Fatalf("r-back did not recover r's session: %v (sid was %s)", ev, sid)
	}
	marker(t, e, c, "/", 2) // w and r-back
	var got []string
	for _, ev := range c.Filter(func(ev siotest.Event) bool { return ev.Type == "event" && ev.ID == "r-back" }) {
		got = append(got, ev.Event)
	}
	if want := append(missed, "marker"); len(got) != len(want) || !slices.Equal(got[:len(missed)], missed) {
		t.Fatalf("r-back got %v after its recovery, want %v", got, want)
	}
	for _, ev := range c.Filter(func(ev siotest.Event) bool { return ev.Type == "event" && ev.ID == "r-back" })[:len(missed)] {
		if len(ev.Args) != 2 || !entryID.MatchString(str(ev.Args[1])) {
			t.Errorf("r-back got %s with %v: want its argument and the offset", ev.Event, ev.Args)
		}
	}
}
