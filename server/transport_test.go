package server_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// echoServer records what the tests need to see from the server side.
type echoServer struct {
	sockets     chan *server.Socket
	events      chan *server.Event
	disconnects chan string
}

func newEchoServer(srv *server.Server) *echoServer {
	es := &echoServer{
		sockets:     make(chan *server.Socket, 16),
		events:      make(chan *server.Event, 16),
		disconnects: make(chan string, 16),
	}
	srv.OnConnection(func(s *server.Socket) {
		s.On("msg", func(e *server.Event) { es.events <- e })
		s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
		s.On("bin", func(e *server.Event) {
			var first []byte
			var second struct {
				Nested []byte   `json:"nested"`
				List   [][]byte `json:"list"`
			}
			if err := e.Bind(0, &first); err != nil {
				e.Ack("bind 0: " + err.Error())
				return
			}
			if err := e.Bind(1, &second); err != nil {
				e.Ack("bind 1: " + err.Error())
				return
			}
			// Binary nested in typed Go containers must still travel as
			// binary, not as base64 strings.
			e.Ack(first, map[string]any{
				"nested": second.Nested,
				"list":   second.List,
				"deep":   []map[string]any{{"b": []byte{7, 8}}},
			})
		})
		s.OnDisconnect(func(reason string) { es.disconnects <- reason })
		es.sockets <- s
	})
	return es
}

// TestTransports checks each way of connecting against the official client:
// WebSocket only, polling only, and polling upgraded to WebSocket.
func TestTransports(t *testing.T) {
	t.Parallel()
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			var es *echoServer
			ts := startServer(t, server.Config{}, func(srv *server.Server) { es = newEchoServer(srv) })
			d := startDriver(t)

			c := d.connected("a", ts.URL, withOpts(mode.opts, map[string]any{"auth": map[string]any{"token": "t1"}}))
			// In upgrade mode the upgrade may complete before the client's
			// connect event: the upgrade event below proves the polling start.
			if mode.name != "upgrade" && c.Transport != mode.final {
				t.Errorf("connected over %q, want %q", c.Transport, mode.final)
			}
			s := recv(t, es.sockets, "connection")
			if s.ID() != c.Sid {
				t.Errorf("server socket id %q, client id %q", s.ID(), c.Sid)
			}
			if got := s.Handshake().Auth["token"]; got != "t1" {
				t.Errorf("Handshake().Auth[token] = %v, want t1", got)
			}
			if mode.name == "upgrade" {
				if up := d.waitType("a", "upgrade"); up.Transport != "websocket" {
					t.Errorf("upgraded to %q", up.Transport)
				}
			}
			if st := d.state("a"); st.Transport != mode.final || !st.Connected {
				t.Errorf("client state %s, want connected over %s", st, mode.final)
			}
			// The client counts itself upgraded once it has sent the
			// UPGRADE packet; the server switches when it has read it.
			eventually(t, "server sees transport "+mode.final, func() bool { return s.Transport() == server.Transport(mode.final) })

			// client → server
			d.emit("a", "msg", 1, "two", map[string]any{"three": 3}, nil, true)
			e := recv(t, es.events, "msg event")
			wantArgs := []any{1.0, "two", map[string]any{"three": 3.0}, nil, true}
			if e.Name != "msg" || !reflect.DeepEqual(e.Args, wantArgs) || e.HasAck() {
				t.Errorf("got event %q %#v (ack %v), want msg %#v without ack", e.Name, e.Args, e.HasAck(), wantArgs)
			}
			var three struct{ Three int }
			if err := e.Bind(2, &three); err != nil || three.Three != 3 {
				t.Errorf("Bind(2) = %+v, %v", three, err)
			}
			if err := e.Bind(9, &three); err == nil {
				t.Error("Bind of a missing argument: no error")
			}

			// client → server with ack
			if got := d.call("a", "echo", "x", 2); !reflect.DeepEqual(got, []any{"x", 2.0}) {
				t.Errorf("echo ack = %#v", got)
			}

			// server → client
			if err := s.Emit("hello", "world", map[string]any{"n": 1}); err != nil {
				t.Fatal(err)
			}
			if got := d.waitEvent("a", "hello").Args; !reflect.DeepEqual(got, []any{"world", map[string]any{"n": 1.0}}) {
				t.Errorf("hello args = %#v", got)
			}
			if err := s.Emit("disconnect"); err == nil {
				t.Error("Emit of the reserved event disconnect: no error")
			}

			// server → client with ack
			type result struct {
				args []any
				err  error
			}
			res := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				a, err := s.EmitWithAck(ctx, "question", 42)
				res <- result{a, err}
			}()
			q := d.waitEvent("a", "question")
			if q.N == nil || !reflect.DeepEqual(q.Args, []any{42.0}) {
				t.Fatalf("question = %s, want args [42] and an ack", q)
			}
			d.send(map[string]any{"op": "ack", "id": "a", "n": *q.N, "args": []any{"answer", bin([]byte{1, 2})}})
			r := recv(t, res, "EmitWithAck")
			if r.err != nil || !reflect.DeepEqual(r.args, []any{"answer", []byte{1, 2}}) {
				t.Errorf("EmitWithAck = %#v, %v", r.args, r.err)
			}

			// server → client with ack, never answered
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			go func() {
				a, err := s.EmitWithAck(ctx, "ignored")
				res <- result{a, err}
			}()
			if q := d.waitEvent("a", "ignored"); q.N == nil {
				t.Errorf("ignored = %s: no ack requested", q)
			}
			r = recv(t, res, "EmitWithAck timeout")
			if !errors.Is(r.err, server.ErrAckTimeout) || !errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("unanswered EmitWithAck: %v, want ErrAckTimeout and DeadlineExceeded", r.err)
			}
			if el := time.Since(start); el > 300*time.Millisecond+5*time.Second {
				t.Errorf("unanswered EmitWithAck returned after %v", el)
			}

			// binary both ways, nested too
			got := d.call("a", "bin", bin([]byte{1, 2, 3}), map[string]any{
				"nested": bin([]byte{4, 5}),
				"list":   []any{bin([]byte{6}), bin(nil)},
			})
			want := []any{[]byte{1, 2, 3}, map[string]any{
				"nested": []byte{4, 5},
				"list":   []any{[]byte{6}, []byte{}},
				"deep":   []any{map[string]any{"b": []byte{7, 8}}},
			}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("bin ack = %#v\nwant %#v", got, want)
			}
			if err := s.Emit("binout", []byte{9, 9}, map[string]any{"x": [][]byte{{1}}}); err != nil {
				t.Fatal(err)
			}
			bo := d.waitEvent("a", "binout").Args
			if len(bo) != 2 || !bytes.Equal(asBytes(bo[0]), []byte{9, 9}) ||
				!reflect.DeepEqual(bo[1], map[string]any{"x": []any{[]byte{1}}}) {
				t.Errorf("binout = %#v", bo)
			}

			// the client disconnects
			d.send(map[string]any{"op": "disconnect", "id": "a"})
			if reason := recv(t, es.disconnects, "disconnect"); reason != "client namespace disconnect" {
				t.Errorf("%s: server saw disconnect reason %q", mode.name, reason)
			}
			if s.Connected() {
				t.Error("Connected() after disconnect")
			}
			select {
			case <-s.Context().Done():
			default:
				t.Error("Context() not done after disconnect")
			}
		})
	}
}

func asBytes(v any) []byte { b, _ := v.([]byte); return b }

// TestEmitThenDisconnect: an event a client emits right before it
// disconnects reaches its handler, before the disconnect handler, and the
// reason is the client's. As in Node, whatever the transport.
func TestEmitThenDisconnect(t *testing.T) {
	t.Parallel()
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			const n = 6
			type outcome struct {
				id, what string
			}
			seen := make(chan outcome, 4*n)
			ts := startServer(t, server.Config{}, func(srv *server.Server) {
				srv.OnConnection(func(s *server.Socket) {
					s.On("last", func(e *server.Event) { seen <- outcome{s.ID(), "last"} })
					s.OnDisconnect(func(reason string) { seen <- outcome{s.ID(), reason} })
				})
			})
			d := startDriver(t)
			for i := range n {
				id := string(rune('a' + i))
				d.connected(id, ts.URL, mode.opts)
				if mode.name == "upgrade" {
					d.waitType(id, "upgrade")
				}
			}
			for i := range n {
				id := string(rune('a' + i))
				d.emit(id, "last", i)
				d.send(map[string]any{"op": "disconnect", "id": id})
			}
			got := map[string][]string{}
			for range 2 * n {
				o := recv(t, seen, "last event or disconnect")
				got[o.id] = append(got[o.id], o.what)
			}
			for id, w := range got {
				if len(w) != 2 || w[0] != "last" || w[1] != "client namespace disconnect" {
					t.Errorf("socket %s: saw %q, want [last, client namespace disconnect]", id, w)
				}
			}
		})
	}
}
