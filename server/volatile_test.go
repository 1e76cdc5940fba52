package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sockstream/sockstream/server"
)

// TestVolatileDroppedForBusyClient: a client that stops reading has a
// backlog (its socket is full, its writer waits): a volatile broadcast is
// not queued for it, and counted, as Node drops volatile packets for a
// transport that is not writable; ordinary broadcasts are still queued.
func TestVolatileDroppedForBusyClient(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) { s.Join("r") })
	})
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadMessage(); err != nil { // the open packet
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the socket connected", func() bool { return len(ts.Of("/").Sockets()) == 1 })
	// The client reads nothing more: 4 MB of ordinary broadcasts fill its
	// socket and leave the rest queued.
	big := strings.Repeat("x", 64<<10)
	for range 64 {
		if err := ts.To("r").Emit("big", big); err != nil {
			t.Fatal(err)
		}
	}
	before := limMetric(t, ts, "sockstream_volatile_dropped_total", "")
	deadline := time.Now().Add(waitFor)
	for limMetric(t, ts, "sockstream_volatile_dropped_total", "") == before {
		if time.Now().After(deadline) {
			t.Fatal("no volatile broadcast was dropped for the client with a backlog")
		}
		if err := ts.To("r").Volatile().Emit("v", 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
