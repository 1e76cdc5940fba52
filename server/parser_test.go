package server_test

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"net/http"
	"reflect"
	"testing"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestParserConfig: Parser is validated, defaults to json, and is read
// from -parser and SOCKSTREAM_PARSER.
func TestParserConfig(t *testing.T) {
	t.Parallel()
	err := server.Config{Parser: "xml"}.Validate()
	var ce *server.ConfigError
	if !errors.As(err, &ce) || ce.Option != "parser" {
		t.Errorf("Parser xml: %v, want a ConfigError on parser", err)
	}
	for _, p := range []string{"", server.ParserJSON, server.ParserMsgpack} {
		if err := (server.Config{Parser: p}).Validate(); err != nil {
			t.Errorf("Parser %q: %v", p, err)
		}
	}
	var c server.Config
	env := map[string]string{"SOCKSTREAM_PARSER": "msgpack"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Parser != server.ParserMsgpack {
		t.Errorf("SOCKSTREAM_PARSER=msgpack: Parser = %q", c.Parser)
	}
	env["SOCKSTREAM_PARSER"] = "json"
	if err := c.Parse(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-parser", "msgpack"},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Parser != server.ParserMsgpack {
		t.Errorf("-parser msgpack over SOCKSTREAM_PARSER=json: Parser = %q", c.Parser)
	}
}

// TestParserMismatch: a client speaking the other parser is disconnected
// at its first packet (its CONNECT), and joins no namespace.
func TestParserMismatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ server, client string }{
		{server.ParserMsgpack, "json"},
		{server.ParserJSON, "msgpack"},
	} {
		t.Run(c.server+" server", func(t *testing.T) {
			t.Parallel()
			conns := make(chan *server.Socket, 1)
			ts := startServer(t, server.Config{Parser: c.server}, func(srv *server.Server) {
				srv.OnConnection(func(s *server.Socket) { conns <- s })
			})
			cl := siotest.StartClients(t)
			cl.Do(t, map[string]any{"cmd": "connect", "id": "x", "url": ts.URL, "parser": c.client})
			ev := cl.Wait(t, "the client's end", waitFor, func(ev siotest.Event) bool {
				return ev.ID == "x" && (ev.Type == "connect" || ev.Type == "connect_error" || ev.Type == "disconnect")
			})
			if ev.Type == "connect" {
				t.Fatalf("a %s client connected to a %s server", c.client, c.server)
			}
			select {
			case <-conns:
				t.Error("the server registered a socket")
			default:
			}
		})
	}
}

type parserEvent struct {
	sock *server.Socket
	args []any
}

// TestMsgpackParser: the official client with socket.io-msgpack-parser
// against a server with Parser msgpack, over WebSocket, long-polling and
// polling upgraded to WebSocket: events with and without binary both ways,
// acks both ways (binary in them too), rooms.
func TestMsgpackParser(t *testing.T) {
	t.Parallel()
	modes := map[string][]string{
		"websocket": {"websocket"},
		"polling":   {"polling"},
		"upgrade":   {"polling", "websocket"},
	}
	for name, transports := range modes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testMsgpackParser(t, transports)
		})
	}
}

func testMsgpackParser(t *testing.T, transports []string) {
	conns := make(chan *server.Socket, 4)
	echoes := make(chan parserEvent, 4)
	ts := startServer(t, server.Config{Parser: server.ParserMsgpack}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("echo", func(e *server.Event) {
				echoes <- parserEvent{s, e.Args}
				e.Ack(e.Args...)
			})
			s.On("join", func(e *server.Event) {
				s.Join(e.Arg(0).(string))
				e.Ack("joined")
			})
			conns <- s
		})
	})
	c := siotest.StartClients(t)
	socks := map[string]*server.Socket{}
	for _, id := range []string{"a", "b"} {
		c.Connect(t, id, ts.URL, nil, map[string]any{"parser": "msgpack", "transports": transports})
		socks[id] = recv(t, conns, "connection of "+id)
	}

	// Client to server, with an ack carrying the arguments back.
	bin := []byte{0, 1, 2, 255}
	payload := []any{"hi", 1.5, 42.0, map[string]any{"$bin": base64.StdEncoding.EncodeToString(bin)},
		map[string]any{"k": []any{true, nil}, "n": -7.0}}
	c.Do(t, map[string]any{"cmd": "emit", "id": "a", "event": "echo", "args": payload, "seq": 1, "withAck": true})
	got := recv(t, echoes, "echo")
	want := []any{"hi", 1.5, 42.0, bin, map[string]any{"k": []any{true, nil}, "n": -7.0}}
	if got.sock != socks["a"] || !reflect.DeepEqual(got.args, want) {
		t.Errorf("server got %#v, want %#v", got.args, want)
	}
	ack := c.Wait(t, "ack of echo", waitFor, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.ID == "a" && ev.Seq == 1 })
	if len(ack.Args) != 5 || ack.Args[0] != "hi" || ack.Args[1] != 1.5 || ack.Args[2] != 42.0 ||
		!reflect.DeepEqual(siotest.Bin(t, ack.Args[3]), bin) || !reflect.DeepEqual(ack.Args[4], payload[4]) {
		t.Errorf("client's ack = %#v, want %#v", ack.Args, payload)
	}

	// Server to client, with an ack from the client.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	reply, err := socks["b"].EmitWithAck(ctx, "question", "q", []byte{9, 8}, map[string]any{"deep": []any{[]byte{7}}})
	if err != nil {
		t.Fatalf("EmitWithAck: %v", err)
	}
	if !reflect.DeepEqual(reply, []any{map[string]any{"id": "b"}}) {
		t.Errorf("client's ack = %#v, want [{id: b}]", reply)
	}
	q := c.Wait(t, "question", waitFor, siotest.IsEventFor("b", "question"))
	if !q.WithAck || len(q.Args) != 3 || q.Args[0] != "q" || !reflect.DeepEqual(siotest.Bin(t, q.Args[1]), []byte{9, 8}) {
		t.Errorf("client got %#v", q.Args)
	} else if deep := q.Args[2].(map[string]any)["deep"].([]any); !reflect.DeepEqual(siotest.Bin(t, deep[0]), []byte{7}) {
		t.Errorf("nested binary: %#v", q.Args[2])
	}

	// Rooms: a broadcast, encoded once, reaches the room's members only.
	c.Do(t, map[string]any{"cmd": "emit", "id": "a", "event": "join", "args": []any{"r"}, "seq": 2, "withAck": true})
	c.Wait(t, "ack of join", waitFor, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.ID == "a" && ev.Seq == 2 })
	if err := ts.To("r").Emit("room", []byte{5}, "x"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Emit("mark"); err != nil {
		t.Fatal(err)
	}
	r := c.Wait(t, "room event", waitFor, siotest.IsEventFor("a", "room"))
	if len(r.Args) != 2 || !reflect.DeepEqual(siotest.Bin(t, r.Args[0]), []byte{5}) || r.Args[1] != "x" {
		t.Errorf("room event args %#v", r.Args)
	}
	c.Wait(t, "mark to a", waitFor, siotest.IsEventFor("a", "mark"))
	c.Wait(t, "mark to b", waitFor, siotest.IsEventFor("b", "mark"))
	// Each client gets its events in order: b had its mark, so a room
	// event for it would have arrived before.
	if got := c.Receivers("room"); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("room event reached %q, want [a]", got)
	}
}

// TestMsgpackParserCluster: two clustered nodes with Parser msgpack on one
// Redis: a broadcast from either node, binary included, reaches the
// msgpack clients of both (WebSocket-only and polling-only), not a client
// outside the room; a client's broadcast through its node reaches the
// other node's clients; a broadcast with acks gets the binary answers of
// the other node's clients.
func TestMsgpackParserCluster(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	setup := func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			if s.Handshake().Query.Get("solo") == "" {
				s.Join("r")
			}
			s.On("shout", func(e *server.Event) {
				if err := s.To("r").Emit("shout", e.Args...); err != nil {
					e.Ack(err.Error())
					return
				}
				e.Ack("sent")
			})
		})
	}
	cfg := server.Config{Parser: server.ParserMsgpack}
	a := startClusterServerWith(t, cfg, rs.URL(), setup)
	b := startClusterServerWith(t, cfg, rs.URL(), setup)
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	c := siotest.StartClients(t)
	c.Connect(t, "a1", a.URL, nil, map[string]any{"parser": "msgpack", "transports": []string{"websocket"}})
	c.Connect(t, "b1", b.URL, nil, map[string]any{"parser": "msgpack", "transports": []string{"polling"},
		"ack": map[string]any{"$bin": base64.StdEncoding.EncodeToString([]byte{7, 7})}})
	c.Connect(t, "b2", b.URL, map[string]string{"solo": "1"}, map[string]any{"parser": "msgpack"})
	ids := []string{"a1", "b1"}

	if err := a.To("r").Emit("from-a", 1, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		ev := c.Wait(t, "from-a to "+id, waitFor, siotest.IsEventFor(id, "from-a"))
		if len(ev.Args) != 2 || ev.Args[0] != 1.0 || !reflect.DeepEqual(siotest.Bin(t, ev.Args[1]), []byte{1, 2}) {
			t.Errorf("%s got from-a %#v", id, ev.Args)
		}
	}
	c.Do(t, map[string]any{"cmd": "emit", "id": "b1", "event": "shout",
		"args": []any{"hey", map[string]any{"$bin": base64.StdEncoding.EncodeToString([]byte{3})}}, "seq": 1, "withAck": true})
	ack := c.Wait(t, "shout ack", waitFor, func(ev siotest.Event) bool { return ev.Type == "ack" && ev.ID == "b1" && ev.Seq == 1 })
	if !reflect.DeepEqual(ack.Args, []any{"sent"}) {
		t.Fatalf("shout ack = %v", ack.Args)
	}
	ev := c.Wait(t, "shout to a1", waitFor, siotest.IsEventFor("a1", "shout"))
	if len(ev.Args) != 2 || ev.Args[0] != "hey" || !reflect.DeepEqual(siotest.Bin(t, ev.Args[1]), []byte{3}) {
		t.Errorf("a1 got shout %#v", ev.Args)
	}

	// A broadcast with acks from node a to the room, answered with binary
	// by b1 (node b) and by a1.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	answers, err := a.To("r").EmitWithAck(ctx, "q", []byte{9})
	if err != nil {
		t.Fatalf("EmitWithAck: %v", err)
	}
	binary := 0
	for _, ans := range answers {
		if b, ok := ans.([]byte); ok && reflect.DeepEqual(b, []byte{7, 7}) {
			binary++
		}
	}
	if len(answers) != 2 || binary != 1 {
		t.Errorf("answers %#v, want a1's and b1's binary one", answers)
	}
	// b2 is in no room: a marker sent to it after the room broadcasts
	// arrives, and none of those came before it.
	if err := b.To(b2ID(t, b)).Emit("marker"); err != nil {
		t.Fatal(err)
	}
	c.Wait(t, "marker to b2", waitFor, siotest.IsEventFor("b2", "marker"))
	for _, name := range []string{"from-a", "shout", "q"} {
		for _, r := range c.Receivers(name) {
			if r == "b2" {
				t.Errorf("b2, in no room, got %s", name)
			}
		}
	}
}

// b2ID is the id of the one socket of ts that is in no room but its own.
func b2ID(t *testing.T, ts *testServer) string {
	t.Helper()
	for _, s := range ts.Sockets() {
		if len(s.Rooms()) == 1 {
			return s.ID()
		}
	}
	t.Fatal("no socket outside the room")
	return ""
}
