package server_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestOnNewNamespace: the handlers see every namespace created after they
// are registered, by Of and by a dynamic parent, and what they register on
// a dynamic child serves its very first socket.
func TestOnNewNamespace(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var created []string
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		srv.Of("/before")
		srv.OnNewNamespace(func(n *server.Namespace) {
			mu.Lock()
			created = append(created, n.Name())
			mu.Unlock()
			n.OnConnection(func(s *server.Socket) { _ = s.Emit("hello", n.Name()) })
		})
		srv.OnNewNamespace(func(*server.Namespace) { panic("a faulty handler") })
		srv.OfDynamic(func(name string, _ map[string]any) bool { return strings.HasPrefix(name, "/dyn-") })
		srv.Of("/static")
		srv.Of("/static") // exists: no second call
	})
	cl := siotest.StartClients(t)
	cl.Connect(t, "a", ts.URL+"/dyn-1", nil, nil)
	ev := cl.Wait(t, "a gets hello", waitFor, siotest.IsEventFor("a", "hello"))
	if len(ev.Args) != 1 || ev.Args[0] != "/dyn-1" {
		t.Errorf("hello %v, want [/dyn-1]", ev.Args)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/static", "/dyn-1"}; !slices.Equal(created, want) {
		t.Errorf("created %v, want %v", created, want)
	}
}
