package engineio_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/sockstream/sockstream/internal/engineio/eiotest"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// heartbeatRace runs a WebSocket session whose client answers every PING
// while the engine's ping goroutine is held up after handing the PING over
// until the engine has handled the client's PONG: the order that loses the
// race upstream (ping interval 700 ms, timeout 400 ms). It answers three
// PINGs and returns how the session ended: "" if it is still open.
func heartbeatRace(t *testing.T, transport string, replay time.Duration) string {
	var pings, pongs atomic.Int64
	defer engineio.SetTestHookPingSent(func() {
		n := pings.Add(1)
		deadline := time.Now().Add(waitLimit)
		for pongs.Load() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		// The engine emits "packet" just before it handles the PONG.
		time.Sleep(50 * time.Millisecond)
	})()
	e := newEchoEngine(t, 1e6, func(o *config.ServerOptions, p *engineio.Polling) {
		o.SetPingInterval(700 * time.Millisecond)
		o.SetPingTimeout(400 * time.Millisecond)
		o.SetTransports(types.NewSet[transports.TransportCtor](p, engineio.WebSocket{PongReplay: replay}))
		p.SetPongReplay(replay)
	})
	// Before the hook goes: no PING of this engine may reach the next.
	defer e.eng.Close()
	reasons := make(chan string, 1)
	_ = e.eng.On("connection", func(args ...any) {
		sock := args[0].(engine.Socket)
		_ = sock.On("packet", func(a ...any) {
			if p, _ := a[0].(*packet.Packet); p != nil && p.Type == packet.PONG && !engineio.IsReplayedPong(p) {
				pongs.Add(1)
			}
		})
		_ = sock.On("close", func(a ...any) {
			reason, _ := a[0].(string)
			reasons <- reason
		})
	})
	ctx := testContext(t)
	ended := false
	if transport == "websocket" {
		ended = answerPingsOverWebSocket(t, ctx, e, 3)
	} else {
		ended = answerPingsOverPolling(t, ctx, e, 3)
	}
	if ended {
		// The engine may end the connection before it emits "close"
		// with the reason.
		select {
		case r := <-reasons:
			return r
		case <-ctx.Done():
			t.Fatal("session ended, and never reported why")
		}
	}
	select {
	case r := <-reasons:
		return r
	default:
		return ""
	}
}

// answerPingsOverWebSocket answers n PINGs over a new WebSocket session and
// reports whether the server ended the session first.
func answerPingsOverWebSocket(t *testing.T, ctx context.Context, e *echoEngine, n int) bool {
	conn, err := eiotest.DialWS(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for answered := 0; answered < n; {
		f, err := conn.Read(ctx)
		if errors.Is(err, eiotest.ErrClosed) {
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.String() == "2" {
			answered++
			if err := conn.Send("3"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return false
}

// answerPingsOverPolling does the same over a long-polling session.
func answerPingsOverPolling(t *testing.T, ctx context.Context, e *echoEngine, n int) bool {
	p := e.poller()
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	for answered := 0; answered < n; {
		r, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			return true
		}
		for _, pkt := range strings.Split(r.Body, "\x1e") {
			switch pkt {
			case "1":
				return true
			case "2":
				answered++
				if res, err := p.Post(ctx, "3"); err != nil || res.Status != http.StatusOK {
					t.Fatalf("POST of the pong: %v %v", res, err)
				}
			}
		}
	}
	return false
}

// Upstream's engine closes a session whose client answered in time when
// the PONG beats the arming of the pong timeout; the replayed PONG clears
// that timeout, over both transports. With the replay pushed beyond the
// test, the engine's bug shows: if that part fails, upstream has fixed it
// and the replay can go.
func TestPongArrivingBeforeTheTimeoutIsArmed(t *testing.T) {
	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			if reason := heartbeatRace(t, transport, 100*time.Millisecond); reason != "" {
				t.Errorf("session closed (%q) although the client answered every PING", reason)
			}
			if reason := heartbeatRace(t, transport, time.Hour); reason != "ping timeout" {
				t.Errorf("without the replay the session ended with %q; upstream closed it for \"ping timeout\"", reason)
			}
		})
	}
}
