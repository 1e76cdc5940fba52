package server_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// The server API a Node user looks for (issue 15, item 4), tested with the
// official client.

const apiWait = 15 * time.Second

// record collects strings from handlers on any goroutine.
type record struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func newRecord() *record { return &record{ch: make(chan struct{}, 1)} }

func (r *record) add(format string, args ...any) {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *record) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until the record holds every one of want (in any order,
// among others).
func (r *record) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.NewTimer(apiWait)
	defer deadline.Stop()
	for {
		got := r.list()
		missing := false
		for _, w := range want {
			if !slices.Contains(got, w) {
				missing = true
				break
			}
		}
		if !missing {
			return
		}
		select {
		case <-r.ch:
		case <-deadline.C:
			t.Fatalf("waited %v for %q; got %q", apiWait, want, got)
		}
	}
}

// TestOnAnyOutgoing: the outgoing handlers hear of the socket's own emits
// and of the broadcasts it receives (as Node's), not of those it does not
// receive; OffAnyOutgoing stops them.
func TestOnAnyOutgoing(t *testing.T) {
	t.Parallel()
	for _, recovery := range []bool{false, true} {
		t.Run(fmt.Sprintf("recovery=%v", recovery), func(t *testing.T) {
			t.Parallel()
			srv := siotest.StartServer(t, "n0", server.Config{Recovery: server.RecoveryConfig{Enabled: recovery}})
			out := newRecord()
			srv.Srv.OnConnection(func(s *server.Socket) {
				if s.Handshake().Query.Get("watch") != "1" {
					return
				}
				s.OnAnyOutgoing(func(e *server.Event) { out.add("%s %v", e.Name, e.Args[0]) })
				s.On("stop", func(e *server.Event) {
					s.OffAnyOutgoing()
					e.Ack()
				})
				s.Join("r")
				_ = s.Emit("hello", 1)
			})
			c := siotest.StartClients(t)
			c.Connect(t, "w", srv.URL+"/", map[string]string{"watch": "1"}, nil)
			c.Connect(t, "o", srv.URL+"/", nil, nil)
			c.Wait(t, "hello", apiWait, siotest.IsEventFor("w", "hello"))
			if err := srv.Srv.To("r").Emit("room", 2); err != nil {
				t.Fatal(err)
			}
			if err := srv.Srv.Except("r").Emit("notyou", 3); err != nil {
				t.Fatal(err)
			}
			if err := srv.Srv.Emit("all", 4); err != nil {
				t.Fatal(err)
			}
			c.Wait(t, "all", apiWait, siotest.IsEventFor("w", "all"))
			c.Wait(t, "notyou", apiWait, siotest.IsEventFor("o", "notyou"))
			out.waitFor(t, "hello 1", "room 2", "all 4")
			c.Do(t, map[string]any{"cmd": "emit", "id": "w", "event": "stop", "withAck": true, "seq": 1})
			c.Wait(t, "stop acked", apiWait, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.ID == "w" && ev.Seq == 1 })
			if err := srv.Srv.Emit("after", 5); err != nil {
				t.Fatal(err)
			}
			c.Wait(t, "after", apiWait, siotest.IsEventFor("w", "after"))
			// The handlers run in order on the socket's goroutine: one
			// more emit, heard by a fresh handler, comes after "after".
			done := make(chan struct{})
			s, ok := findSocket(srv.Srv.Of("/"), func(s *server.Socket) bool { return s.Handshake().Query.Get("watch") == "1" })
			if !ok {
				t.Fatal("watched socket not found")
			}
			s.OnAnyOutgoing(func(e *server.Event) {
				if e.Name == "last" {
					close(done)
				}
			})
			_ = s.Emit("last")
			siotest.Recv(t, done, apiWait, "last heard")
			got := out.list()
			for _, e := range got {
				if strings.HasPrefix(e, "notyou") || strings.HasPrefix(e, "after") {
					t.Errorf("outgoing handler heard %q: %q", e, got)
				}
			}
		})
	}
}

func findSocket(n *server.Namespace, match func(*server.Socket) bool) (*server.Socket, bool) {
	for _, s := range n.Sockets() {
		if match(s) {
			return s, true
		}
	}
	return nil, false
}

// TestOnDisconnecting: the disconnecting handlers run before the disconnect
// handlers, with the rooms the socket was in, and a broadcast to them from
// there reaches the others.
func TestOnDisconnecting(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	rec := newRecord()
	srv.Srv.Use(siotest.JoinQueryRooms(nil))
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.OnDisconnecting(func(reason string) {
			rooms := s.Rooms()
			slices.Sort(rooms)
			rec.add("disconnecting %s %d %s connected=%v", reason, len(rooms), strings.Join(slices.DeleteFunc(rooms, func(r string) bool { return r == s.ID() }), ","), s.Connected())
			for _, r := range s.Rooms() {
				if r != s.ID() {
					_ = s.To(r).Emit("left", r)
				}
			}
		})
		s.On("disconnecting", func(e *server.Event) { rec.add("on disconnecting %v", e.Arg(0)) })
		s.OnDisconnect(func(reason string) { rec.add("disconnect %s rooms=%d", reason, len(s.Rooms())) })
	})
	c := siotest.StartClients(t)
	c.Connect(t, "a", srv.URL+"/", map[string]string{"rooms": "r1,r2"}, nil)
	c.Connect(t, "b", srv.URL+"/", map[string]string{"rooms": "r1"}, nil)
	c.Disconnect(t, "a")
	c.Wait(t, "b told a left r1", apiWait, siotest.IsEventFor("b", "left"))
	rec.waitFor(t, "disconnecting client namespace disconnect 3 r1,r2 connected=false",
		"on disconnecting client namespace disconnect", "disconnect client namespace disconnect rooms=0")
	got := rec.list()
	if i, j := slices.Index(got, "on disconnecting client namespace disconnect"), slices.Index(got, "disconnect client namespace disconnect rooms=0"); i > j {
		t.Errorf("disconnect before disconnecting: %q", got)
	}
}

// TestLocalLookup: Namespace.Socket and Sockets find this node's sockets,
// Server.Namespaces lists the namespaces (dynamic children included), and
// the client counters count the Engine.IO connections.
func TestLocalLookup(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	srv.Srv.Of("/chat")
	dyn := srv.Srv.OfDynamic(func(name string, _ map[string]any) bool { return strings.HasPrefix(name, "/team-") })
	c := siotest.StartClients(t)
	ws := c.Connect(t, "ws", srv.URL+"/", nil, nil)
	poll := c.Connect(t, "poll", srv.URL+"/", nil, map[string]any{"transports": []string{"polling"}})
	team := c.Connect(t, "team", srv.URL+"/team-1", nil, nil)

	if s, ok := srv.Srv.Of("/").Socket(ws.Sid); !ok || s.ID() != ws.Sid {
		t.Errorf("Socket(%s) = %v, %v", ws.Sid, s, ok)
	}
	if s, ok := srv.Srv.Socket(poll.Sid); !ok || s.Transport() != server.Polling {
		t.Errorf("Server.Socket(%s) = %v, %v", poll.Sid, s, ok)
	}
	if _, ok := srv.Srv.Socket(team.Sid); ok {
		t.Error("the main namespace found a socket of /team-1")
	}
	if s, ok := dyn.Socket(team.Sid); !ok || s.Namespace() != "/team-1" {
		t.Errorf("dynamic Socket(%s) = %v, %v", team.Sid, s, ok)
	}
	var ids []string
	for _, s := range srv.Srv.Sockets() {
		ids = append(ids, s.ID())
	}
	if want := siotest.Sorted(ws.Sid, poll.Sid); !slices.Equal(siotest.Sorted(ids...), want) {
		t.Errorf("Sockets = %v, want %v", ids, want)
	}
	var names []string
	for _, n := range srv.Srv.Namespaces() {
		names = append(names, n.Name())
	}
	if want := []string{"/", "/chat", "/team-1"}; !slices.Equal(names, want) {
		t.Errorf("Namespaces = %v, want %v", names, want)
	}
	if got := srv.Srv.ClientsCount(); got != 3 {
		t.Errorf("ClientsCount = %d, want 3", got)
	}
	if got := srv.Srv.PollingClientsCount(); got != 1 {
		t.Errorf("PollingClientsCount = %d, want 1", got)
	}
	c.Disconnect(t, "poll")
	siotest.Eventually(t, apiWait, "the polling client gone", func() bool {
		_, ok := srv.Srv.Socket(poll.Sid)
		return !ok && srv.Srv.PollingClientsCount() == 0 && srv.Srv.ClientsCount() == 2
	})
}

// TestRoomHooks: the room handlers see the changes of the room index in
// order, whatever makes them (a connection's own room, Join, SocketsJoin,
// Leave, SocketsLeave, a disconnection), as Node's adapter events.
func TestRoomHooks(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	nsp := srv.Srv.Of("/")
	var mu sync.Mutex
	var events []string
	changed := make(chan struct{}, 1)
	add := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	nsp.OnRoomCreated(func(room string) { add("create " + room) })
	nsp.OnRoomDeleted(func(room string) { add("delete " + room) })
	nsp.OnRoomJoined(func(room, id string) { add("join " + room + " " + id) })
	nsp.OnRoomLeft(func(room, id string) { add("leave " + room + " " + id) })
	nsp.OnConnection(func(s *server.Socket) {
		s.On("join", func(e *server.Event) { s.Join(e.Arg(0).(string)); e.Ack() })
		s.On("leave", func(e *server.Event) { s.Leave(e.Arg(0).(string)); e.Ack() })
	})
	// expect waits for the next events, exactly these, in this order.
	seen := 0
	expect := func(want ...string) {
		t.Helper()
		deadline := time.NewTimer(apiWait)
		defer deadline.Stop()
		for {
			mu.Lock()
			got := slices.Clone(events[seen:])
			mu.Unlock()
			if len(got) >= len(want) {
				if !slices.Equal(got, want) {
					t.Fatalf("room events %q, want %q", got, want)
				}
				seen += len(got)
				return
			}
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("room events %q, want %q", got, want)
			}
		}
	}
	c := siotest.StartClients(t)
	call := func(id, event string, args ...any) {
		t.Helper()
		seq := c.Count(func(ev siotest.Event) bool { return ev.Type == "ack" }) + 1000
		c.Do(t, map[string]any{"cmd": "emit", "id": id, "event": event, "args": args, "withAck": true, "seq": seq})
		c.Wait(t, event+" acked", apiWait, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.Seq == seq })
	}
	a := c.Connect(t, "a", srv.URL+"/", nil, nil).Sid
	expect("create "+a, "join "+a+" "+a)
	b := c.Connect(t, "b", srv.URL+"/", nil, nil).Sid
	expect("create "+b, "join "+b+" "+b)
	call("a", "join", "r")
	expect("create r", "join r "+a)
	call("b", "join", "r")
	expect("join r " + b)
	srv.Srv.In(a).SocketsJoin("s") // through the adapter's worker
	expect("create s", "join s "+a)
	call("a", "leave", "r")
	expect("leave r " + a)
	srv.Srv.In("s").SocketsLeave("s")
	expect("leave s "+a, "delete s")
	c.Disconnect(t, "b")
	expect("leave "+b+" "+b, "delete "+b, "leave r "+b, "delete r")
	c.Disconnect(t, "a")
	expect("leave "+a+" "+a, "delete "+a)
}

// TestPacketMiddleware: Socket.Use runs before the handlers of each event,
// may rewrite it, and refuses it with an error that OnError receives.
func TestPacketMiddleware(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	errForbidden := errors.New("forbidden event")
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.OnAny(func(e *server.Event) { note("any " + e.Name) })
		s.Use(func(e *server.Event) error {
			note("mw " + e.Name)
			switch e.Name {
			case "secret":
				return fmt.Errorf("%q: %w", e.Name, errForbidden)
			case "boom":
				panic("boom")
			case "old":
				e.Name = "new"
			}
			return nil
		})
		s.OnError(func(err error) {
			_ = s.Emit("refused", err.Error(), errors.Is(err, errForbidden), errors.Is(err, server.ErrMiddlewarePanic))
		})
		for _, name := range []string{"ok", "secret", "boom", "new", "old"} {
			s.On(name, func(e *server.Event) {
				note("handler " + name)
				e.Ack(name)
			})
		}
	})
	c := siotest.StartClients(t)
	c.Connect(t, "a", srv.URL+"/", nil, nil)
	ack := func(event string, seq int) siotest.Event {
		c.Do(t, map[string]any{"cmd": "emit", "id": "a", "event": event, "withAck": true, "seq": seq})
		return c.Wait(t, event+" acked", apiWait, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.Seq == seq })
	}
	if ev := ack("ok", 1); !siotest.EqualJSON(ev.Args, []any{"ok"}) {
		t.Errorf("ok acked %v", ev.Args)
	}
	c.Emit(t, "a", "secret")
	ev := c.Wait(t, "refused secret", apiWait, siotest.IsEventFor("a", "refused"))
	if !siotest.EqualJSON(ev.Args, []any{`"secret": forbidden event`, true, false}) {
		t.Errorf("refused %v", ev.Args)
	}
	c.Emit(t, "a", "boom")
	ev = c.WaitN(t, "refused boom", 2, apiWait, siotest.IsEventFor("a", "refused"))[1]
	if len(ev.Args) != 3 || ev.Args[1] != false || ev.Args[2] != true {
		t.Errorf("refused boom %v", ev.Args)
	}
	if ev := ack("old", 2); !siotest.EqualJSON(ev.Args, []any{"new"}) {
		t.Errorf("old acked %v, want the handler of new", ev.Args)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"any ok", "mw ok", "handler ok", "any secret", "mw secret", "any boom", "mw boom", "any old", "mw old", "handler new"}
	if !slices.Equal(order, want) {
		t.Errorf("order %q, want %q", order, want)
	}
}

// TestOnceOff: a Once handler runs for the first event only; Off removes
// an event's handlers, OffAny the OnAny ones.
func TestOnceOff(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{})
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.Once("ping", func(e *server.Event) { _ = s.Emit("once", e.Arg(0)) })
		s.On("ping", func(e *server.Event) { _ = s.Emit("on", e.Arg(0)) })
		s.OnAny(func(e *server.Event) { _ = s.Emit("any", e.Name) })
		s.On("off", func(e *server.Event) {
			s.Off("ping")
			s.OffAny()
			e.Ack()
		})
	})
	c := siotest.StartClients(t)
	c.Connect(t, "a", srv.URL+"/", nil, nil)
	c.Emit(t, "a", "ping", 1)
	c.Emit(t, "a", "ping", 2)
	c.WaitN(t, "on 1, 2", 2, apiWait, siotest.IsEventFor("a", "on"))
	c.Do(t, map[string]any{"cmd": "emit", "id": "a", "event": "off", "withAck": true, "seq": 1})
	c.Wait(t, "off acked", apiWait, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.Seq == 1 })
	c.Emit(t, "a", "ping", 3)
	// A last round trip: what ping 3 would have sent comes before it.
	c.Do(t, map[string]any{"cmd": "emit", "id": "a", "event": "off", "withAck": true, "seq": 2})
	c.Wait(t, "off acked", apiWait, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.Seq == 2 })
	var once, on []any
	for _, ev := range c.Filter(siotest.IsEventFor("a", "once")) {
		once = append(once, ev.Args...)
	}
	for _, ev := range c.Filter(siotest.IsEventFor("a", "on")) {
		on = append(on, ev.Args...)
	}
	if !siotest.EqualJSON(once, []any{1}) || !siotest.EqualJSON(on, []any{1, 2}) {
		t.Errorf("once got %v (want [1]), on got %v (want [1 2])", once, on)
	}
	if n := c.Count(siotest.IsEventFor("a", "any")); n != 3 { // ping, ping, off
		t.Errorf("OnAny ran %d times, want 3", n)
	}
}
