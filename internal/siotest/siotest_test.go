package siotest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/internal/siotest"
)

// TestClientsRoundTrip drives the client script against a server with the
// default in-memory adapter: rooms and data from the query, events both
// ways with binary, acknowledgements, a dropped transport and a recovered
// session.
func TestClientsRoundTrip(t *testing.T) {
	t.Parallel()
	so := socket.DefaultServerOptions()
	csr := socket.DefaultConnectionStateRecovery()
	csr.SetMaxDisconnectionDuration(60_000)
	so.SetConnectionStateRecovery(csr)
	srv := siotest.StartServer(t, "n0", so, nil)
	srv.IO.Of("/", nil).Use(siotest.JoinQueryRooms(func(q map[string]any) any {
		return map[string]any{"user": siotest.QueryValue(q, "user")}
	}))
	echoed := make(chan []any, 1)
	srv.IO.On("connection", func(args ...any) {
		s := args[0].(*socket.Socket)
		s.On("echo", func(a ...any) { echoed <- a })
	})

	c := siotest.StartClients(t)
	a := c.Connect(t, "a", srv.URL+"/", map[string]string{"rooms": "r1", "user": "ua"}, nil)
	c.Connect(t, "b", srv.URL+"/", nil, map[string]any{"ack": "from-b"})
	if a.Sid == "" || a.Recovered {
		t.Fatalf("connect of a: %+v", a)
	}

	sockets, err := siotest.Fetch(srv.IO.In("r1"))
	if err != nil || len(sockets) != 1 || string(sockets[0].Id()) != a.Sid {
		t.Fatalf("r1 holds %v (%v), want a (%s)", siotest.SocketIDs(sockets), err, a.Sid)
	}
	if !siotest.EqualJSON(sockets[0].Data(), map[string]any{"user": "ua"}) {
		t.Errorf("data of a: %#v", sockets[0].Data())
	}

	_ = srv.IO.To("r1").Emit("to-r1", []byte{1, 2})
	_ = srv.IO.Emit("to-all", "x")
	c.WaitN(t, "to-all", 2, 10*time.Second, siotest.IsEvent("to-all"))
	ev := c.Wait(t, "to-r1", 10*time.Second, siotest.IsEvent("to-r1"))
	if got := c.Receivers("to-r1"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("to-r1 received by %v, want [a]", got)
	}
	if b := siotest.Bin(t, ev.Args[0]); !slices.Equal(b, []byte{1, 2}) {
		t.Errorf("binary arg %v", b)
	}

	acks := make(chan []any, 1)
	_ = srv.IO.Timeout(5*time.Second).Except("r1").Emit("ask", socket.Ack(func(args []any, err error) {
		if err != nil {
			t.Errorf("ack: %v", err)
		}
		acks <- args
	}))
	if got := siotest.Recv(t, acks, 10*time.Second, "ack of b"); !siotest.EqualJSON(got, []any{"from-b"}) {
		t.Errorf("acks %v, want [from-b]", got)
	}

	c.Emit(t, "a", "echo", map[string]any{"$bin": "AQI="}, "y")
	got := siotest.Recv(t, echoed, 10*time.Second, "echo from a")
	// zishang520 hands binary arguments over as a buffer type.
	b, _ := got[0].(interface{ Bytes() []byte })
	if len(got) != 2 || b == nil || !slices.Equal(b.Bytes(), []byte{1, 2}) || got[1] != "y" {
		t.Errorf("server got %#v", got)
	}

	c.Drop(t, "a")
	c.Reconnect(t, "a", "")
	if again := c.NthConnect(t, "a", 1); !again.Recovered || again.Sid != a.Sid {
		t.Errorf("after a drop: %+v, want a recovered with sid %s", again, a.Sid)
	}
}
