package siotest_test

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestClientsRoundTrip drives the client script against a server with the
// default single-node adapter: rooms and data from the query, events both
// ways with binary, acknowledgements, a dropped transport and a recovered
// session.
func TestClientsRoundTrip(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{
		Recovery: server.RecoveryConfig{Enabled: true, MaxDisconnection: time.Minute},
	})
	srv.Srv.Use(siotest.JoinQueryRooms(func(q url.Values) any {
		return map[string]any{"user": q.Get("user")}
	}))
	echoed := make(chan []any, 1)
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.On("echo", func(e *server.Event) { echoed <- e.Args })
	})

	c := siotest.StartClients(t)
	a := c.Connect(t, "a", srv.URL+"/", map[string]string{"rooms": "r1", "user": "ua"}, nil)
	c.Connect(t, "b", srv.URL+"/", nil, map[string]any{"ack": "from-b"})
	if a.Sid == "" || a.Recovered {
		t.Fatalf("connect of a: %+v", a)
	}

	sockets, err := siotest.Fetch(srv.Srv.In("r1"))
	if err != nil || len(sockets) != 1 || sockets[0].ID() != a.Sid {
		t.Fatalf("r1 holds %v (%v), want a (%s)", siotest.SocketIDs(sockets), err, a.Sid)
	}
	if !siotest.EqualJSON(sockets[0].Data(), map[string]any{"user": "ua"}) {
		t.Errorf("data of a: %#v", sockets[0].Data())
	}

	_ = srv.Srv.To("r1").Emit("to-r1", []byte{1, 2})
	_ = srv.Srv.Emit("to-all", "x")
	c.WaitN(t, "to-all", 2, 10*time.Second, siotest.IsEvent("to-all"))
	ev := c.Wait(t, "to-r1", 10*time.Second, siotest.IsEvent("to-r1"))
	if got := c.Receivers("to-r1"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("to-r1 received by %v, want [a]", got)
	}
	if b := siotest.Bin(t, ev.Args[0]); !slices.Equal(b, []byte{1, 2}) {
		t.Errorf("binary arg %v", b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acks, err := srv.Srv.Except("r1").EmitWithAck(ctx, "ask")
	if err != nil {
		t.Errorf("ack: %v", err)
	}
	if !siotest.EqualJSON(acks, []any{"from-b"}) {
		t.Errorf("acks %v, want [from-b]", acks)
	}

	c.Emit(t, "a", "echo", map[string]any{"$bin": "AQI="}, "y")
	got := siotest.Recv(t, echoed, 10*time.Second, "echo from a")
	// Binary arguments are handed over as []byte.
	b, _ := got[0].([]byte)
	if len(got) != 2 || !slices.Equal(b, []byte{1, 2}) || got[1] != "y" {
		t.Errorf("server got %#v", got)
	}

	c.Drop(t, "a")
	c.Reconnect(t, "a", "")
	if again := c.NthConnect(t, "a", 1); !again.Recovered || again.Sid != a.Sid {
		t.Errorf("after a drop: %+v, want a recovered with sid %s", again, a.Sid)
	}
}
