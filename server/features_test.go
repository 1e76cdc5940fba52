package server_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// eachMode runs test once per way of connecting (WebSocket, polling,
// polling upgraded to WebSocket), in parallel.
func eachMode(t *testing.T, test func(t *testing.T, opts map[string]any, mode string)) {
	t.Helper()
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			test(t, mode.opts, mode.name)
		})
	}
}

// settle waits until client id runs on its final transport, so that what
// follows does not race the upgrade.
func settle(d *driver, id, mode string) {
	d.t.Helper()
	if mode == "upgrade" {
		d.waitType(id, "upgrade")
	}
}

// TestRooms: a broadcast to a room reaches its members only; a socket's own
// To excludes the sender; Except leaves a room out; Leave works.
func TestRooms(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		sockets := make(chan *server.Socket, 4)
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				s.On("join", func(e *server.Event) {
					s.Join(e.Arg(0).(string))
					e.Ack(s.Rooms())
				})
				s.On("leave", func(e *server.Event) {
					s.Leave(e.Arg(0).(string))
					e.Ack()
				})
				s.On("shout", func(e *server.Event) {
					if err := s.To(e.Arg(0).(string)).Emit("shout", e.Args[1:]...); err != nil {
						t.Errorf("To.Emit: %v", err)
					}
					e.Ack()
				})
				sockets <- s
			})
		})
		d := startDriver(t)
		ids := []string{"a", "b", "c"}
		sids := map[string]string{}
		for _, id := range ids {
			sids[id] = d.connected(id, ts.URL, opts).Sid
			settle(d, id, mode)
			recv(t, sockets, "connection")
		}
		for _, id := range []string{"a", "b"} {
			rooms := d.call(id, "join", "r")
			got := []string{}
			for _, r := range rooms[0].([]any) {
				got = append(got, r.(string))
			}
			slices.Sort(got)
			want := []string{"r", sids[id]}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s rooms = %q, want %q", id, got, want)
			}
		}

		// Each client gets its events in order: when "mark" arrives, an
		// earlier "room" event would have arrived before it.
		mark := func() {
			t.Helper()
			if err := ts.Emit("mark"); err != nil {
				t.Fatal(err)
			}
		}
		expect := func(event string, args []any, to ...string) {
			t.Helper()
			for _, id := range ids {
				r := d.wait(func(r report) bool { return r.ID == id && r.Type == "event" && (r.Event == event || r.Event == "mark") })
				if slices.Contains(to, id) {
					if r.Event != event || !reflect.DeepEqual(r.Args, args) {
						t.Errorf("%s got %s, want %s %v", id, r, event, args)
					}
					d.waitEvent(id, "mark")
				} else if r.Event != "mark" {
					t.Errorf("%s, not in the audience, got %s", id, r)
				}
			}
		}

		if err := ts.To("r").Emit("room", 1); err != nil {
			t.Fatal(err)
		}
		mark()
		expect("room", []any{1.0}, "a", "b")

		if err := ts.Except("r").Emit("room", 2); err != nil {
			t.Fatal(err)
		}
		mark()
		expect("room", []any{2.0}, "c")

		d.call("a", "shout", "r", "hi")
		mark()
		expect("shout", []any{"hi"}, "b")

		// A socket's own id is a room.
		if err := ts.To(sids["c"]).Emit("room", 3); err != nil {
			t.Fatal(err)
		}
		mark()
		expect("room", []any{3.0}, "c")

		d.call("b", "leave", "r")
		if err := ts.In("r").Emit("room", 4); err != nil {
			t.Fatal(err)
		}
		mark()
		expect("room", []any{4.0}, "a")
	})
}

// TestBroadcastWithAck: a broadcast with ack returns every client's answer,
// and an error wrapping ErrAckTimeout with the answers it got when a client
// stays silent.
func TestBroadcastWithAck(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		sockets := make(chan *server.Socket, 4)
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				s.Join("r")
				sockets <- s
			})
		})
		d := startDriver(t)
		for _, id := range []string{"a", "b"} {
			d.connected(id, ts.URL, opts)
			settle(d, id, mode)
			recv(t, sockets, "connection")
		}
		type result struct {
			args []any
			err  error
		}
		res := make(chan result, 1)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		go func() {
			a, err := ts.To("r").EmitWithAck(ctx, "poll", "q")
			res <- result{a, err}
		}()
		for _, id := range []string{"a", "b"} {
			q := d.waitEvent(id, "poll")
			d.send(map[string]any{"op": "ack", "id": id, "n": *q.N, "args": []any{id}})
		}
		r := recv(t, res, "broadcast ack")
		got := []string{}
		for _, a := range r.args {
			got = append(got, fmt.Sprint(a))
		}
		slices.Sort(got)
		if r.err != nil || !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("EmitWithAck = %q, %v; want [a b]", got, r.err)
		}

		short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel2()
		go func() {
			a, err := ts.To("r").EmitWithAck(short, "poll", "q2")
			res <- result{a, err}
		}()
		q := d.waitEvent("a", "poll")
		d.send(map[string]any{"op": "ack", "id": "a", "n": *q.N, "args": []any{"a"}})
		d.waitEvent("b", "poll") // b never answers
		r = recv(t, res, "broadcast ack timeout")
		if !errors.Is(r.err, server.ErrAckTimeout) {
			t.Errorf("EmitWithAck with a silent client: %v, want ErrAckTimeout", r.err)
		}
		if !reflect.DeepEqual(r.args, []any{"a"}) {
			t.Errorf("EmitWithAck with a silent client returned %#v, want [a]", r.args)
		}

		if _, err := ts.To("r").EmitWithAck(context.Background(), "poll"); err == nil {
			t.Error("broadcast EmitWithAck without a deadline: no error")
		}
	})
}

// TestEmitWithAckInHandler: a handler may wait for its own client's ack
// (queue.go), and the client's own ack with a timeout gets its answer.
func TestEmitWithAckInHandler(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) {
				s.On("ask", func(e *server.Event) {
					ctx, cancel := context.WithTimeout(s.Context(), waitFor)
					defer cancel()
					a, err := s.EmitWithAck(ctx, "question", e.Args...)
					if err != nil {
						e.Ack("error: " + err.Error())
						return
					}
					e.Ack(append([]any{"answered"}, a...)...)
				})
			})
		})
		d := startDriver(t)
		d.connected("a", ts.URL, opts)
		settle(d, "a", mode)
		d.seq++
		seq := d.seq
		d.send(map[string]any{"op": "emit", "id": "a", "event": "ask", "args": []any{"x"}, "ack": seq, "timeout": int(waitFor / time.Millisecond)})
		q := d.waitEvent("a", "question")
		d.send(map[string]any{"op": "ack", "id": "a", "n": *q.N, "args": []any{"y"}})
		r := d.wait(func(r report) bool { return r.ID == "a" && r.Type == "ack" && r.Ack == seq })
		if r.Error != "" || !reflect.DeepEqual(r.Args, []any{"answered", "y"}) {
			t.Errorf("ack = %s, want [answered y]", r)
		}

		// A client-side ack timeout fires when the server never answers.
		d.seq++
		seq = d.seq
		d.send(map[string]any{"op": "emit", "id": "a", "event": "unhandled", "ack": seq, "timeout": 200})
		r = d.wait(func(r report) bool { return r.ID == "a" && r.Type == "ack" && r.Ack == seq })
		if r.Error == "" {
			t.Errorf("unanswered client ack = %s, want a timeout error", r)
		}
	})
}

// TestNamespaces: static and dynamic namespaces, several namespaces over one
// connection, an unknown namespace refused, and the operations on a dynamic
// namespace reaching every namespace it serves.
func TestNamespaces(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		var dyn *server.Namespace
		type conn struct {
			nsp string
			s   *server.Socket
		}
		conns := make(chan conn, 8)
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.OnConnection(func(s *server.Socket) { conns <- conn{"/", s} })
			admin := srv.Of("/admin")
			admin.OnConnection(func(s *server.Socket) {
				s.On("whoami", func(e *server.Event) { e.Ack(s.Namespace(), s.ID()) })
				conns <- conn{"/admin", s}
			})
			dyn = srv.OfDynamic(func(name string, auth map[string]any) bool {
				return strings.HasPrefix(name, "/room-")
			})
			dyn.OnConnection(func(s *server.Socket) {
				s.On("whoami", func(e *server.Event) { e.Ack(s.Namespace(), s.ID()) })
				conns <- conn{"dyn", s}
			})
		})
		d := startDriver(t)

		// "/" and "/admin" over one connection.
		d.connected("main", ts.URL, opts)
		settle(d, "main", mode)
		if c := recv(t, conns, "connection to /"); c.nsp != "/" {
			t.Fatalf("connection to %s, want /", c.nsp)
		}
		d.send(map[string]any{"op": "connect", "id": "admin", "url": ts.URL + "/admin", "manager": "main"})
		ac := d.waitType("admin", "connect")
		c := recv(t, conns, "connection to /admin")
		if c.nsp != "/admin" || c.s.Namespace() != "/admin" || c.s.ID() != ac.Sid {
			t.Errorf("admin connection: %s %s %s, client sid %s", c.nsp, c.s.Namespace(), c.s.ID(), ac.Sid)
		}
		if got := d.call("admin", "whoami"); !reflect.DeepEqual(got, []any{"/admin", ac.Sid}) {
			t.Errorf("whoami on /admin = %v", got)
		}
		if err := ts.Emit("main-only"); err != nil {
			t.Fatal(err)
		}
		if err := ts.Of("/admin").Emit("admin-only"); err != nil {
			t.Fatal(err)
		}
		d.waitEvent("main", "main-only")
		d.waitEvent("admin", "admin-only")
		d.none(func(r report) bool { return r.Type == "event" && strings.HasSuffix(r.Event, "-only") }, "event in the wrong namespace")

		// Dynamic namespaces.
		dynSockets := map[string]*server.Socket{}
		for _, name := range []string{"/room-1", "/room-2"} {
			id := name[1:]
			cr := d.connected(id, ts.URL+name, opts)
			settle(d, id, mode)
			c := recv(t, conns, "connection to "+name)
			if c.nsp != "dyn" || c.s.Namespace() != name {
				t.Errorf("connection to %s landed in %s (%s)", name, c.nsp, c.s.Namespace())
			}
			dynSockets[name] = c.s
			if got := d.call(id, "whoami"); !reflect.DeepEqual(got, []any{name, cr.Sid}) {
				t.Errorf("whoami on %s = %v", name, got)
			}
		}
		d.connect("nowhere", ts.URL+"/elsewhere", opts)
		if ce := d.waitType("nowhere", "connect_error"); ce.Message != "Invalid namespace" {
			t.Errorf("unknown namespace: %s, want connect_error Invalid namespace", ce)
		}

		if err := dyn.Emit("dyn-all", 1); err != nil {
			t.Fatal(err)
		}
		d.waitEvent("room-1", "dyn-all")
		d.waitEvent("room-2", "dyn-all")
		if n := dyn.LocalSocketCount(); n != 2 {
			t.Errorf("dynamic LocalSocketCount = %d, want 2", n)
		}

		// Operations on every namespace of the dynamic parent.
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		fetched, err := dyn.FetchSockets(ctx)
		if err != nil {
			t.Fatalf("dynamic FetchSockets: %v", err)
		}
		ids := []string{}
		for _, r := range fetched {
			ids = append(ids, r.ID())
		}
		slices.Sort(ids)
		want := []string{dynSockets["/room-1"].ID(), dynSockets["/room-2"].ID()}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("dynamic FetchSockets = %q, want %q", ids, want)
		}
		// SocketsJoin and SocketsLeave take effect in call order after
		// the operations queued before them, shortly after they return.
		dyn.SocketsJoin("joined")
		eventually(t, "dynamic SocketsJoin: both sockets join", func() bool {
			return slices.Contains(dynSockets["/room-1"].Rooms(), "joined") && slices.Contains(dynSockets["/room-2"].Rooms(), "joined")
		})
		if err := dyn.To("joined").Emit("in-joined"); err != nil {
			t.Fatal(err)
		}
		d.waitEvent("room-1", "in-joined")
		d.waitEvent("room-2", "in-joined")

		ackRes := make(chan []any, 1)
		go func() {
			a, err := dyn.To("joined").EmitWithAck(ctx, "dyn-ask")
			if err != nil {
				t.Errorf("dynamic EmitWithAck: %v", err)
			}
			ackRes <- a
		}()
		for _, id := range []string{"room-1", "room-2"} {
			q := d.waitEvent(id, "dyn-ask")
			d.send(map[string]any{"op": "ack", "id": id, "n": *q.N, "args": []any{id}})
		}
		got := []string{}
		for _, a := range recv(t, ackRes, "dynamic EmitWithAck") {
			got = append(got, fmt.Sprint(a))
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"room-1", "room-2"}) {
			t.Errorf("dynamic EmitWithAck answers = %q", got)
		}

		dyn.SocketsLeave("joined")
		eventually(t, "dynamic SocketsLeave: the sockets leave", func() bool {
			return !slices.Contains(dynSockets["/room-1"].Rooms(), "joined") && !slices.Contains(dynSockets["/room-2"].Rooms(), "joined")
		})
		dyn.DisconnectSockets(false)
		for _, id := range []string{"room-1", "room-2"} {
			if r := d.waitType(id, "disconnect"); r.Reason != "io server disconnect" {
				t.Errorf("%s disconnected with %q, want io server disconnect", id, r.Reason)
			}
		}
		// The main namespace's connection is not affected.
		if st := d.state("main"); !st.Connected {
			t.Error("main disconnected by DisconnectSockets of another namespace")
		}
	})
}

// TestMiddleware: a middleware's error reaches the client as connect_error
// with its message and data; the middleware and the handlers see the same
// *Socket and the client's auth, {} when it sent none.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		var mu sync.Mutex
		seen := map[*server.Socket]bool{}
		auths := make(chan map[string]any, 8)
		conns := make(chan *server.Socket, 4)
		ts := startServer(t, server.Config{}, func(srv *server.Server) {
			srv.Use(func(s *server.Socket) error {
				auth := s.Handshake().Auth
				auths <- auth
				switch auth["token"] {
				case "good":
					mu.Lock()
					seen[s] = true
					mu.Unlock()
					return nil
				case nil:
					return errors.New("no token")
				default:
					return &server.ConnectError{Message: "not authorized", Data: map[string]any{"code": 401, "retry": false}}
				}
			})
			srv.OnConnection(func(s *server.Socket) {
				mu.Lock()
				ok := seen[s]
				mu.Unlock()
				if !ok {
					t.Error("OnConnection got a *Socket the middleware never saw")
				}
				conns <- s
			})
			srv.Of("/open").OnConnection(func(s *server.Socket) { conns <- s })
		})
		d := startDriver(t)

		d.connect("bad", ts.URL, withOpts(opts, map[string]any{"auth": map[string]any{"token": "bad"}}))
		ce := d.waitType("bad", "connect_error")
		wantData := map[string]any{"code": 401.0, "retry": false}
		if ce.Message != "not authorized" || !reflect.DeepEqual(ce.Data, wantData) {
			t.Errorf("connect_error = %q %#v, want not authorized %v", ce.Message, ce.Data, wantData)
		}
		if a := recv(t, auths, "auth"); a["token"] != "bad" {
			t.Errorf("middleware saw auth %v", a)
		}

		d.connect("none", ts.URL, opts)
		ce = d.waitType("none", "connect_error")
		if ce.Message != "no token" || ce.Data != nil {
			t.Errorf("connect_error = %q %#v, want no token without data", ce.Message, ce.Data)
		}
		if a := recv(t, auths, "auth"); a == nil || len(a) != 0 {
			t.Errorf("middleware saw auth %#v for a client that sent none, want {}", a)
		}

		d.connected("good", ts.URL, withOpts(opts, map[string]any{"auth": map[string]any{"token": "good"}}))
		recv(t, auths, "auth")
		s := recv(t, conns, "accepted connection")
		if s.Handshake().Auth["token"] != "good" {
			t.Errorf("Handshake().Auth = %v", s.Handshake().Auth)
		}

		// A namespace without middleware is not guarded by those of "/".
		d.connected("open", ts.URL+"/open", opts)
		if s := recv(t, conns, "connection to /open"); len(s.Handshake().Auth) != 0 || s.Handshake().Auth == nil {
			t.Errorf("Handshake().Auth on /open = %#v, want {}", s.Handshake().Auth)
		}
		select {
		case a := <-auths:
			t.Errorf("the middleware of / ran for /open (auth %v)", a)
		default:
		}
	})
}

// TestMaxPayload: a client sending more than MaxPayload is disconnected;
// the other clients keep working.
func TestMaxPayload(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		var es *echoServer
		ts := startServer(t, server.Config{MaxPayload: 2000, PingInterval: 300 * time.Millisecond, PingTimeout: time.Second},
			func(srv *server.Server) { es = newEchoServer(srv) })
		d := startDriver(t)
		d.connected("big", ts.URL, opts)
		settle(d, "big", mode)
		big := recv(t, es.sockets, "connection")
		d.connected("small", ts.URL, opts)
		settle(d, "small", mode)
		recv(t, es.sockets, "connection")

		// Under the limit, fine.
		if got := d.call("big", "echo", map[string]any{"$str": 1500}); len(got) != 1 || len(fmt.Sprint(got[0])) != 1500 {
			t.Errorf("echo of 1500 bytes: %d values", len(got))
		}
		d.emit("big", "msg", map[string]any{"$str": 5000})
		if r := d.waitType("big", "disconnect"); r.Reason != "transport close" && r.Reason != "transport error" {
			t.Errorf("offender disconnected with %q", r.Reason)
		}
		reason := recv(t, es.disconnects, "offender's disconnection on the server")
		if reason == "client namespace disconnect" || reason == "server namespace disconnect" {
			t.Errorf("server saw the offender leave with %q", reason)
		}
		if big.Connected() {
			t.Error("offender still connected on the server")
		}
		select {
		case e := <-es.events:
			t.Errorf("oversized event delivered: %s with %d args", e.Name, len(e.Args))
		default:
		}
		if got := d.call("small", "echo", "still here"); !reflect.DeepEqual(got, []any{"still here"}) {
			t.Errorf("other client's echo = %v", got)
		}
		if st := d.state("small"); !st.Connected {
			t.Error("other client disconnected")
		}
	})
}

// TestPingKeepsIdleConnection: an idle client answering pings stays
// connected well past PingTimeout.
func TestPingKeepsIdleConnection(t *testing.T) {
	t.Parallel()
	eachMode(t, func(t *testing.T, opts map[string]any, mode string) {
		// Short rounds, many of them; a pingTimeout loose enough that a
		// loaded 2-core CI machine under -race answers in time.
		const interval, timeout = 100 * time.Millisecond, time.Second
		var es *echoServer
		ts := startServer(t, server.Config{PingInterval: interval, PingTimeout: timeout},
			func(srv *server.Server) { es = newEchoServer(srv) })
		d := startDriver(t)
		d.connected("idle", ts.URL, opts)
		settle(d, "idle", mode)
		s := recv(t, es.sockets, "connection")
		// Idle for many ping rounds; without pongs the server would close
		// the connection after interval+timeout.
		time.Sleep(3 * (interval + timeout))
		select {
		case r := <-es.disconnects:
			t.Fatalf("idle client disconnected: %s", r)
		default:
		}
		if !s.Connected() {
			t.Fatal("server socket not connected")
		}
		if st := d.state("idle"); !st.Connected {
			t.Fatal("client not connected")
		}
		if got := d.call("idle", "echo", 1); !reflect.DeepEqual(got, []any{1.0}) {
			t.Errorf("echo after idling = %v", got)
		}
		d.none(func(r report) bool { return r.Type == "disconnect" }, "disconnect")
	})
}
