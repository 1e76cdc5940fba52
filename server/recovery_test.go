package server_test

import (
	"slices"
	"testing"

	"github.com/sockstream/sockstream/server"
)

// TestLocalRecovery: one node, no Redis, recovery on. A client that loses
// its connection while the server broadcasts comes back with its id and
// rooms and gets the missed packets once, in order.
func TestLocalRecovery(t *testing.T) {
	t.Parallel()
	conns := make(chan *server.Socket, 4)
	ts := startServer(t, server.Config{Recovery: server.RecoveryConfig{Enabled: true}}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			if !s.Recovered() {
				s.Join("news")
			}
			conns <- s
		})
	})
	d := startDriver(t)
	first := d.connected("c", ts.URL, map[string]any{
		"transports": []string{"websocket"}, "reconnection": true,
		"reconnectionDelay": 300, "reconnectionDelayMax": 300, "randomizationFactor": 0,
	})
	s := recv(t, conns, "connection")
	if err := ts.To("news").Emit("n", 1); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("c", "n")

	d.send(map[string]any{"op": "close", "id": "c"})
	d.waitType("c", "disconnect")
	for i := 2; i <= 4; i++ {
		if err := ts.To("news").Emit("n", i); err != nil {
			t.Fatal(err)
		}
	}
	again := d.waitType("c", "connect")
	back := recv(t, conns, "reconnection")
	if !again.Recovered || !back.Recovered() || again.Sid != first.Sid || back.ID() != s.ID() {
		t.Fatalf("reconnection: recovered %v/%v, id %s, want %s", again.Recovered, back.Recovered(), again.Sid, first.Sid)
	}
	if !slices.Contains(back.Rooms(), "news") {
		t.Errorf("rooms after recovery = %q, want news", back.Rooms())
	}
	var got []float64
	for range 3 {
		if a := d.waitEvent("c", "n").Args; len(a) > 0 {
			v, _ := a[0].(float64)
			got = append(got, v)
		}
	}
	if !slices.Equal(got, []float64{2, 3, 4}) {
		t.Errorf("missed packets = %v, want 2 3 4 in order", got)
	}
	if err := ts.To("news").Emit("mark"); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("c", "mark")
	d.none(func(r report) bool { return r.Event == "n" }, "packet delivered twice")
	if m := metric(t, ts, `sockstream_recovery_attempts_total{result="recovered"}`); m != 1 {
		t.Errorf("recovered attempts = %v, want 1", m)
	}
}
