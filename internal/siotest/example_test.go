package siotest_test

import (
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// A test starts a server, connects an official client to it and waits for
// what the client receives.
func Example() {
	var t *testing.T // the test's
	srv := siotest.StartServer(t, "n0", server.Config{})
	srv.Srv.Use(siotest.JoinQueryRooms(nil))
	c := siotest.StartClients(t)
	c.Connect(t, "a", srv.URL+"/", map[string]string{"rooms": "r1"}, nil)
	_ = srv.Srv.To("r1").Emit("hello", 1)
	ev := c.Wait(t, "hello on a", 10*time.Second, siotest.IsEventFor("a", "hello"))
	_ = ev.Args // [1]
}
