package hostile

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// flooder runs send in a loop on a goroutine of its own until stop, or
// until send fails; stop waits for it.
type flooder struct {
	quit chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	n    int
	err  error
}

func flood(t testing.TB, send func(i int) error) *flooder {
	f := &flooder{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; ; i++ {
			select {
			case <-f.quit:
				return
			default:
			}
			if err := send(i); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			f.mu.Lock()
			f.n = i + 1
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _, _ = f.stop() })
	return f
}

// sent is how many sends succeeded so far.
func (f *flooder) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *flooder) stop() (int, error) {
	f.once.Do(func() { close(f.quit) })
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n, f.err
}

// TestFlood: clients that send, or take, more than they should.
func TestFlood(t *testing.T) {
	t.Parallel()

	t.Run("events as fast as it can", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		bad := h.joinWS(t, ctx, "bad", false)
		payload := strings.Repeat("x", 512)
		f := flood(t, func(int) error { return bad.Send(`42["noop","` + payload + `"]`) })
		// Served while the flood goes on, several times over.
		waitUntil(t, "2,000 events flooded", func() bool { return f.sent() >= 2000 })
		for range 5 {
			g.roundTrip(t)
		}
		n, err := f.stop()
		if err != nil {
			t.Fatalf("the flood stopped after %d events: %v", n, err)
		}
		t.Logf("%d events flooded meanwhile", n)
		g.alive(t)
		// The flooder did nothing wrong by the protocol: it is still served.
		if err := bad.Send(`4299["echo"]`); err != nil {
			t.Fatal(err)
		}
		for {
			s, err := bad.ReadText(ctx)
			if err != nil {
				t.Fatalf("the flooder's ack: %v", err)
			}
			if s == `4399[]` {
				break
			}
		}
		h.noReason(t, "bad")
	})

	t.Run("events with acks it never reads", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxBufferedBytes: 256 << 10}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		bad := h.joinWS(t, ctx, "bad", false)
		payload := strings.Repeat("x", 4096)
		// Each event is acknowledged with its payload: what waits for the
		// flooder grows until it passes MaxBufferedBytes.
		f := flood(t, func(i int) error {
			if i >= 100_000 {
				return fmt.Errorf("not closed after %d events", i)
			}
			return bad.Send(fmt.Sprintf(`42%d["echo","%s"]`, i, payload))
		})
		h.wantReason(t, "bad", "slow consumer")
		g.alive(t)
		n, err := f.stop()
		t.Logf("closed after %d events (the flood ended: %.100v)", n, err)
		h.waitSessions(t, 1)
	})

	t.Run("never reads while a room is flooded", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxBufferedBytes: 256 << 10}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		_ = h.joinWS(t, ctx, "bad", true) // never read again
		h.joined(t, "bad")
		floodRoom(t, h, g)
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("polling, POSTs but never GETs while a room is flooded", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{MaxBufferedBytes: 256 << 10}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.joinPoll(t, ctx, "bad", true)
		h.joined(t, "bad")
		// It keeps POSTing (no ack asked), never GETs.
		f := flood(t, func(int) error {
			r, err := p.Post(ctx, `42["noop"]`)
			if err == nil && r.Status != 200 {
				err = fmt.Errorf("POST: %d %s", r.Status, r.Body)
			}
			return err
		})
		floodRoom(t, h, g)
		_, _ = f.stop()
		g.alive(t)
		h.waitSessions(t, 1)
	})
}

// floodRoom broadcasts 16 KB messages to the room "room" until the client
// "bad" is disconnected as a slow consumer, letting the good client (in
// the room too) keep up: it must not become one.
func floodRoom(t testing.TB, h *harness, g *goodClient) {
	t.Helper()
	payload := strings.Repeat("y", 16<<10)
	reasons := h.reasonCh("bad")
	for i := 0; ; i++ {
		select {
		case r := <-reasons:
			if r != "slow consumer" {
				t.Fatalf("the client that never reads was disconnected with %q, want slow consumer", r)
			}
			t.Logf("slow consumer after %d broadcasts of %d bytes", i, len(payload))
			return
		default:
		}
		if i == 20_000 {
			t.Fatalf("the client that never reads is still connected after %d broadcasts", i)
		}
		if err := h.srv.To("room").Emit("flood", i, payload); err != nil {
			t.Fatal(err)
		}
		// Pace on the good client (the bound is per client).
		deadline := time.Now().Add(waitFor)
		for g.floods.Load() < int64(i-8) {
			if time.Now().After(deadline) {
				t.Fatalf("the good client got %d of %d broadcasts within %v", g.floods.Load(), i, waitFor)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestStalled: clients that stop half way.
func TestStalled(t *testing.T) {
	t.Parallel()

	t.Run("websocket handshake, never CONNECT", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{ConnectTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		ws := h.dialWS(t, ctx)
		if code := wsClosed(t, ctx, ws); code != 1000 {
			t.Errorf("close code %d, want 1000", code)
		}
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("polling handshake, never CONNECT", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{ConnectTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		p := h.poller(t, ctx)
		o := &pollOffender{ctx: ctx, p: p}
		o.closed(t)
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("websocket stops answering pings", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		_ = h.joinWS(t, ctx, "bad", false) // never read again
		h.wantReason(t, "bad", "ping timeout")
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("polling stops polling", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{PingInterval: 200 * time.Millisecond, PingTimeout: time.Second}, nil)
		g := h.good(t)
		ctx := ctxFor(t)
		_ = h.joinPoll(t, ctx, "bad", false) // never GETs
		h.wantReason(t, "bad", "ping timeout")
		g.alive(t)
		h.waitSessions(t, 1)
	})

	t.Run("upgrade probe, never upgrades", func(t *testing.T) {
		t.Parallel()
		h := start(t, server.Config{UpgradeTimeout: 300 * time.Millisecond}, nil)
		g := h.good(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		p := h.joinPoll(t, ctx, "bad", false)
		pollUntil(t, ctx, p, "40{")
		w := h.dialRawUpgrade(t, p.SID)
		if err := w.frame(1, []byte("2probe")); err != nil {
			t.Fatal(err)
		}
		if op, b, err := w.read(); err != nil || op != 1 || string(b) != "3probe" {
			t.Fatalf("probe answer: %d %q %v", op, b, err)
		}
		// No "5": the WebSocket is dropped, the session goes on polling.
		if code := w.closeCode(t); code != -1 {
			t.Logf("the abandoned probe got close code %d", code)
		}
		pollAck(t, ctx, p)
		h.noReason(t, "bad")
		g.alive(t)
	})
}

// dialRawUpgrade opens the WebSocket of an upgrade of session sid.
func (h *harness) dialRawUpgrade(t testing.TB, sid string) *rawWS {
	t.Helper()
	conn, br := h.rawHTTP(t, "GET /socket.io/?EIO=4&transport=websocket&sid="+sid+" HTTP/1.1\r\nHost: "+h.addr+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	st, _ := readStatusKeep(t, br)
	if st != 101 {
		t.Fatalf("upgrade: %d", st)
	}
	return &rawWS{conn: conn, br: br}
}
