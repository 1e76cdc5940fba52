package server_test

import (
	"testing"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestSend: Send is Emit of "message", for a socket, a room, a namespace
// and the server, as the official client's "message" listener sees it.
func TestSend(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.Join("r")
			s.On("go", func(e *server.Event) {
				_ = s.Send("socket")
				_ = srv.To("r").Send("room")
				_ = srv.Of("/").Send("namespace")
				_ = srv.Send("server", 1)
			})
		})
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "a", ts.URL+"/", nil, nil)
	cl.Emit(t, "a", "go")
	for _, want := range []string{"socket", "room", "namespace", "server"} {
		ev := cl.Wait(t, "a gets message "+want, waitFor, func(ev siotest.Event) bool {
			return ev.ID == "a" && ev.Type == "event" && ev.Event == "message" && len(ev.Args) > 0 && ev.Args[0] == want
		})
		if want == "server" && (len(ev.Args) != 2 || ev.Args[1] != float64(1)) {
			t.Errorf("server message args %v", ev.Args)
		}
	}
}
