package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/eiotest"
)

// TestConnectThenEventBackToBack: a client that writes CONNECT and an event
// in one go, without waiting for the CONNECT reply, gets the reply and its
// event handled (acked), over WebSocket (two frames back to back) and
// long-polling (one POST carrying both packets), on fresh servers. The
// client's packets are handled in order by the goroutine that reads them,
// and the CONNECT is answered with the socket registered, so the event
// always finds its socket (zishang520 dropped such connections on 3 of 25
// fresh servers).
func TestConnectThenEventBackToBack(t *testing.T) {
	t.Parallel()
	const servers, perServer = 10, 10
	for i := range servers {
		_, url := confServer(t, time.Minute)
		ctx := confContext(t)
		for j := range perServer {
			connect, event, reply := "40", `421["message-with-ack",1]`, "431[1]"
			if j%2 == 1 {
				connect, event, reply = "40/custom,", `42/custom,1["message-with-ack",1]`, "43/custom,1[1]"
			}
			if j%4 < 2 { // WebSocket
				ws, _ := confDial(t, ctx, url)
				if err := ws.Send(connect); err != nil {
					t.Fatal(err)
				}
				if err := ws.Send(event); err != nil {
					t.Fatal(err)
				}
				var got []string
				for len(got) < 2 || !strings.HasPrefix(got[len(got)-1], reply) {
					f, err := ws.ReadText(ctx)
					if err != nil {
						t.Fatalf("server %d connection %d (websocket): after %q: %v", i, j, got, err)
					}
					if f == "2" { // a PING
						continue
					}
					got = append(got, f)
				}
				if !strings.HasPrefix(got[0], connect) {
					t.Errorf("server %d connection %d (websocket): first packet %q, want the CONNECT reply", i, j, got[0])
				}
				ws.Close()
				continue
			}
			p := &eiotest.Poller{URL: url}
			if _, err := p.Handshake(ctx); err != nil {
				t.Fatal(err)
			}
			if r, err := p.Post(ctx, connect+"\x1e"+event); err != nil || r.Status != 200 {
				t.Fatalf("server %d connection %d (polling): POST = %+v, %v", i, j, r, err)
			}
			var got []string
			for len(got) < 2 || !strings.HasPrefix(got[len(got)-1], reply) {
				r, err := p.Get(ctx)
				if err != nil || r.Status != 200 {
					t.Fatalf("server %d connection %d (polling): GET = %+v, %v after %q", i, j, r, err, got)
				}
				for _, f := range strings.Split(r.Body, "\x1e") {
					if f != "2" && f != "6" {
						got = append(got, f)
					}
				}
			}
			if !strings.HasPrefix(got[0], connect) {
				t.Errorf("server %d connection %d (polling): first packet %q, want the CONNECT reply", i, j, got[0])
			}
		}
	}
}
