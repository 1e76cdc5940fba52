package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/engineio/eiotest"
)

// TestEventRightAfterConnect: a client that emits the moment it reads the
// CONNECT reply keeps its connection. zishang520 writes the reply before it
// registers the namespace's socket with the client, and without sockstream's
// connect gate (server/conn.go) an event decoded in between closed the whole
// connection ("invalid state", then "forced close"). The window is small:
// many connections, each emitting at once, give the race its chances.
func TestEventRightAfterConnect(t *testing.T) {
	t.Parallel()
	_, url := confServer(t, time.Minute)
	ctx := confContext(t)
	for i := range 100 {
		ws, err := eiotest.DialWS(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		if f, err := ws.ReadText(ctx); err != nil || !strings.HasPrefix(f, "0") {
			t.Fatalf("connection %d: open = %q, %v", i, f, err)
		}
		nsp := "/"
		connect, event := "40", `421["message-with-ack",1]`
		if i%2 == 1 { // a custom namespace too
			nsp = "/custom"
			connect, event = "40/custom,", `42/custom,1["message-with-ack",1]`
		}
		if err := ws.Send(connect); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := ws.ReadText(ctx)
			if err != nil {
				t.Fatalf("connection %d (%s): waiting for the CONNECT reply: %v", i, nsp, err)
			}
			if strings.HasPrefix(f, "40") {
				break
			}
		}
		if err := ws.Send(event); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := ws.ReadText(ctx)
			if err != nil {
				t.Fatalf("connection %d (%s): the server closed it after an event sent right after CONNECT: %v", i, nsp, err)
			}
			if strings.HasPrefix(f, "43") {
				break
			}
		}
		ws.Close()
	}
}
