package engineio

import (
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
)

// DefaultPongReplay is how long after a client's PONG its copy is handed
// to the engine, unless set otherwise (WebSocket.PongReplay,
// Polling.SetPongReplay).
const DefaultPongReplay = time.Second

// ReplayedPong is the data of the PONG packets a transport hands the
// engine a second time (see pongReplayer). Never read it.
var ReplayedPong io.Reader = strings.NewReader("")

// IsReplayedPong reports whether p is a replayed PONG, not one the client
// sent.
func IsReplayedPong(p *packet.Packet) bool {
	return p != nil && p.Type == packet.PONG && p.Data == ReplayedPong
}

// pongReplayer corrects a heartbeat race of upstream's engine socket
// (servers/engine/v3 socket.go, schedulePing) for one transport. The ping
// timer's goroutine hands the PING to the transport and only then arms the
// pong timeout. A client's PONG handled in between clears the previous
// timer, and the one armed just after is never cleared: with the default
// 25 s interval and 20 s timeout, a client that answered is closed for
// "ping timeout" 20 s later. Seen under load (2 or 3 clients in 1,000,
// docs/benchmarks.md). The engine's timers are private, so the transport
// hands the engine every PONG a second time, delay later, unless the engine
// has sent another PING since: a PONG clears the pong timeout whenever it
// comes, so the copy clears a timeout armed late and otherwise only moves
// the next PING delay later. The copy carries ReplayedPong as its data.
type pongReplayer struct {
	delay time.Duration

	// pings counts the PINGs sent, so that a replay is dropped once
	// another PING is out.
	pings atomic.Int64
	// deliver keeps a replay and a client PONG from reaching the engine
	// at the same time: upstream's timer Refresh is not safe for that.
	deliver sync.Mutex

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func newPongReplayer(delay time.Duration) *pongReplayer {
	if delay <= 0 {
		delay = DefaultPongReplay
	}
	return &pongReplayer{delay: delay}
}

// sending notes the PINGs among packets, about to be sent; it reports
// whether there was one.
func (r *pongReplayer) sending(packets []*packet.Packet) bool {
	for _, p := range packets {
		if p != nil && p.Type == packet.PING {
			r.pings.Add(1)
			return true
		}
	}
	return false
}

// sent runs the test hook, if any, once a PING is on its way: the engine's
// ping goroutine then goes on to arm the pong timeout. ping is false where
// holding the caller could hold the PING itself (it is queued behind a
// write the caller may be part of).
func (r *pongReplayer) sent(ping bool) {
	if hook := testHookPingSent.Load(); ping && hook != nil {
		(*hook)()
	}
}

// pong hands the client's PONG to the engine through handle, and a copy,
// delay later, unless a PING was sent since or the transport stopped.
func (r *pongReplayer) pong(handle func(*packet.Packet), pong *packet.Packet) {
	seq := r.pings.Load()
	r.deliver.Lock()
	handle(pong)
	r.deliver.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(r.delay, func() {
		r.deliver.Lock()
		defer r.deliver.Unlock()
		r.mu.Lock()
		stopped := r.stopped
		r.mu.Unlock()
		if stopped || r.pings.Load() != seq {
			return
		}
		handle(&packet.Packet{Type: packet.PONG, Data: ReplayedPong})
	})
}

// stop cancels a pending replay, for good: the transport is closing.
func (r *pongReplayer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
}

// testHookPingSent, when set by a test, runs on the goroutine that handed a
// PING to a transport, once the PING is on its way: a test holds that
// goroutine there to reproduce the heartbeat race pongReplayer corrects.
var testHookPingSent atomic.Pointer[func()]
