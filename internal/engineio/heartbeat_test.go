package engineio_test

import (
	"context"
	"errors"
	"net/http"
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
func heartbeatRace(t *testing.T, replay time.Duration) string {
	const answered = 3
	var pings, pongs atomic.Int64
	defer engineio.SetTestHookPingSent(func() {
		// Only the PINGs the client answers; and never long, since the
		// goroutine held may be the one that must deliver the PING.
		n := pings.Add(1)
		if n > answered {
			return
		}
		deadline := time.Now().Add(2 * time.Second)
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
	if answerPingsOverWebSocket(t, ctx, e, answered) {
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
// reports whether the server ended the session first. The connection stays
// open until the test ends, so that its close is no reason the session
// reports before the test has looked.
func answerPingsOverWebSocket(t *testing.T, ctx context.Context, e *echoEngine, n int) bool {
	conn, err := eiotest.DialWS(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
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

// Upstream's engine closes a session whose client answered in time when
// the PONG beats the arming of the pong timeout; the replayed PONG clears
// that timeout. With the replay pushed beyond the test, the engine's bug
// shows: if that part fails, upstream has fixed it and the replay can go.
func TestPongArrivingBeforeTheTimeoutIsArmed(t *testing.T) {
	if reason := heartbeatRace(t, 100*time.Millisecond); reason != "" {
		t.Errorf("session closed (%q) although the client answered every PING", reason)
	}
	// The hold cannot always be placed (a PING queued behind a write in
	// progress is not held), so the bug is given three sessions to show.
	var reasons []string
	for range 3 {
		reason := heartbeatRace(t, time.Hour)
		if reason == "ping timeout" {
			return
		}
		reasons = append(reasons, reason)
	}
	t.Errorf("without the replay, sessions ended with %q; upstream closed them for \"ping timeout\"", reasons)
}

// The long-polling transport replays PONGs the same way (the race itself is
// reproduced over WebSocket above: a PING sent when a poll arrives is written
// by that poll's handler, which a test cannot hold without holding the PING).
// A PONG is handed to the engine again PongReplay later, unless the engine
// sent a PING in between.
func TestPollingReplaysPongs(t *testing.T) {
	replays := func(interval, replay time.Duration) (*echoEngine, *atomic.Int64) {
		var n atomic.Int64
		e := newEchoEngine(t, 1e6, func(o *config.ServerOptions, p *engineio.Polling) {
			o.SetPingInterval(interval)
			o.SetPingTimeout(time.Minute)
			p.SetPongReplay(replay)
		})
		_ = e.eng.On("connection", func(args ...any) {
			_ = args[0].(engine.Socket).On("packet", func(a ...any) {
				if engineio.IsReplayedPong(a[0].(*packet.Packet)) {
					n.Add(1)
				}
			})
		})
		return e, &n
	}
	ctx := testContext(t)

	// No PING in between: replayed.
	e, n := replays(time.Minute, 100*time.Millisecond)
	p := e.poller()
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Post(ctx, "3"); err != nil || res.Status != http.StatusOK {
		t.Fatalf("POST 3: %v %v", res, err)
	}
	deadline := time.Now().Add(waitLimit)
	for n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n.Load() != 1 {
		t.Errorf("%d replayed PONGs, want 1", n.Load())
	}

	// A PING sent 200 ms after the PONG: the replay, due 800 ms after it,
	// is dropped.
	e, n = replays(200*time.Millisecond, 800*time.Millisecond)
	p = e.poller()
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Get(ctx); err != nil || r.Body != "2" {
		t.Fatalf("first poll: %v %v, want the PING", r, err)
	}
	if res, err := p.Post(ctx, "3"); err != nil || res.Status != http.StatusOK {
		t.Fatalf("POST 3: %v %v", res, err)
	}
	if r, err := p.Get(ctx); err != nil || r.Body != "2" {
		t.Fatalf("second poll: %v %v, want the next PING", r, err)
	}
	time.Sleep(time.Second) // past the replay's time
	if n.Load() != 0 {
		t.Errorf("%d replayed PONGs after a PING went out, want 0", n.Load())
	}
}
