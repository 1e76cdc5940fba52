package engineio

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WebSocket is a transports.TransportCtor for WebSocket. It replaces
// upstream's transport (servers/engine/v3 transports/websocket.go) on the
// write side and keeps its behaviour everywhere else:
//
//   - Packets handed over together are written together: every frame of
//     one Send, and of the Sends queued while a write was on its way, goes
//     out in one write(2). Upstream writes each packet through its own
//     gorilla NextWriter, one system call per packet, which was the largest
//     single cost of a busy node (docs/benchmarks.md).
//   - A broadcast's pre-encoded frame (Options.WsPreEncodedFrame, encoded
//     once for all its recipients) is copied as it is; upstream built a
//     gorilla PreparedMessage from it for every recipient.
//   - The answer to an upgrade probe ("3probe") is on the wire before the
//     next frame of the client is handled, as in Node. Upstream queued it
//     for its writer goroutine while its reader went on to the client's
//     UPGRADE ("5"), which ends the session's long-polling, so a client
//     could see its poll answered before "3probe".
//
// Frames are written unmasked and uncompressed straight to the connection,
// serialised with the pong and close frames the reader answers with, which
// go through the same lock. When per-message deflate is configured, packets
// go through gorilla's compressing writer as upstream's did.
//
// Like upstream, no write deadline is set: a client that stops reading
// blocks only its own writer goroutine, until the session's ping timeout
// closes the connection and the write fails.
//
// It also corrects a heartbeat race of upstream's engine socket
// (servers/engine/v3 socket.go, schedulePing): the ping timer's goroutine
// hands the PING to the transport and only then arms the pong timeout. A
// client's PONG handled in between clears the previous timer, and the one
// armed just after is never cleared: with the default 25 s interval and
// 20 s timeout, a client that answered is closed for "ping timeout" 20 s
// later. Seen under load (2 or 3 clients in 1,000, docs/benchmarks.md).
// The transport hands the engine every PONG a second time, PongReplay
// later, unless the engine has sent another PING since; a PONG clears the
// pong timeout whenever it comes, so the second one clears a timeout armed
// late and changes nothing otherwise (the next PING comes PongReplay
// later). The copy carries ReplayedPong as its data: metrics can skip it.
type WebSocket struct {
	// PongReplay is how long after a client's PONG its copy is handed to
	// the engine: longer than the ping goroutine may be held up between
	// sending the PING and arming the timeout, shorter than the ping
	// timeout. Zero means DefaultPongReplay.
	PongReplay time.Duration
}

// DefaultPongReplay is WebSocket.PongReplay's default.
const DefaultPongReplay = time.Second

// ReplayedPong is the data of the PONG packets the WebSocket transport
// hands the engine a second time (see WebSocket). Never read it.
var ReplayedPong io.Reader = strings.NewReader("")

// IsReplayedPong reports whether p is a replayed PONG, not one the client
// sent.
func IsReplayedPong(p *packet.Packet) bool {
	return p != nil && p.Type == packet.PONG && p.Data == ReplayedPong
}

// Name is the transport's name in the "transport" query parameter.
func (WebSocket) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true: a long-polling session may upgrade to it.
func (WebSocket) HandlesUpgrades() bool { return true }

// UpgradesTo lists nothing: WebSocket is not upgraded further.
func (WebSocket) UpgradesTo() []string { return nil }

// New builds the transport of one connection.
func (w WebSocket) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{Transport: transports.MakeTransport(), pongReplay: w.PongReplay}
	if t.pongReplay <= 0 {
		t.pongReplay = DefaultPongReplay
	}
	t.Prototype(t)
	t.Construct(ctx)
	return t
}

type wsTransport struct {
	transports.Transport

	idleTimeout time.Duration
	conn        *types.WebSocketConn
	raw         net.Conn
	pongReplay  time.Duration

	// pings counts the PINGs handed to Send, so that a PONG's replay is
	// dropped once another PING is out. pongMu keeps a replay and a PONG
	// of the client from reaching the engine at the same time (upstream's
	// timer Refresh is not safe for that).
	pings  atomic.Int64
	pongMu sync.Mutex

	// wmu serialises writes to raw: the writer's batches and the reader's
	// control frames.
	wmu sync.Mutex

	// mu guards the queue below.
	mu      sync.Mutex
	pending []sendBatch
	writing bool // a writer goroutine owns the queue
	closed  bool // no more writes: the transport is closing or closed
	replay  *time.Timer
}

// sendBatch is the packets of one Send, drained as a unit: the engine
// socket counts one "drain" per Send for its send callbacks.
type sendBatch struct {
	packets []*packet.Packet
	written chan struct{} // closed once written or dropped; nil unless waited on
}

// Construct sets the transport up on the connection in ctx.Websocket and
// starts its reader once the engine allows it.
func (t *wsTransport) Construct(ctx *types.HttpContext) {
	t.Transport.Construct(ctx)
	t.idleTimeout = ctx.IdleTimeout
	t.conn = ctx.Websocket
	t.raw = t.conn.NetConn()

	_ = t.conn.On("error", func(errs ...any) {
		var err error
		if len(errs) > 0 {
			err, _ = errs[0].(error)
		}
		t.OnError("websocket error", err)
	})
	_ = t.conn.Once("close", func(...any) { t.OnClose() })
	t.conn.SetPingHandler(t.answerPing)
	t.conn.SetCloseHandler(t.answerClose)

	t.SetWritable(true)
	t.SetPerMessageDeflate(nil)
	transports.StartReader(t, ctx.TransportReadPermission(), t.read)
}

// Name is the transport's name.
func (t *wsTransport) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true.
func (t *wsTransport) HandlesUpgrades() bool { return true }

// read hands every data message of the client to the transport until the
// connection fails or closes.
func (t *wsTransport) read() {
	defer func() {
		// A read error that fail routed as "error" still ends the
		// transport; so does any other way out.
		if !t.isClosed() {
			t.conn.Emit("close")
		}
	}()
	for {
		if t.idleTimeout > 0 {
			_ = t.conn.SetReadDeadline(time.Now().Add(t.idleTimeout))
		}
		mt, r, err := t.conn.NextReader()
		if err != nil {
			t.fail(err)
			return
		}
		var data types.BufferInterface
		if mt == ws.BinaryMessage {
			data = types.NewBytesBuffer(nil)
		} else {
			data = types.NewStringBuffer(nil)
		}
		if _, err := data.ReadFrom(r); err != nil {
			t.fail(err)
			return
		}
		if mt == ws.TextMessage && data.Len() == 1 && data.Bytes()[0] == '3' {
			t.onPong(data)
			continue
		}
		t.OnData(data)
	}
}

// onPong hands the client's PONG to the engine, and its copy PongReplay
// later unless a PING was sent since (see WebSocket).
func (t *wsTransport) onPong(data types.BufferInterface) {
	seq := t.pings.Load()
	t.pongMu.Lock()
	t.OnData(data)
	t.pongMu.Unlock()

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if t.replay != nil {
		t.replay.Stop()
	}
	t.replay = time.AfterFunc(t.pongReplay, func() {
		t.pongMu.Lock()
		defer t.pongMu.Unlock()
		if t.pings.Load() != seq || t.isClosed() {
			return
		}
		t.OnPacket(&packet.Packet{Type: packet.PONG, Data: ReplayedPong})
	})
}

// fail routes a connection error as upstream does: a close, or an error
// that closes the session.
func (t *wsTransport) fail(err error) {
	if ws.IsUnexpectedCloseError(err) || errors.Is(err, net.ErrClosed) {
		t.conn.Emit("close")
		return
	}
	t.conn.Emit("error", err)
}

// Send queues packets for the writer goroutine and returns, except for the
// answer to an upgrade probe, which it waits for (see WebSocket). It runs
// on the goroutine that emitted, often a broadcast's, which must not wait
// for a slow client.
func (t *wsTransport) Send(packets []*packet.Packet) {
	t.SetWritable(false)
	b := sendBatch{packets: packets}
	if isProbeAnswer(packets) {
		b.written = make(chan struct{})
	}
	ping := hasPing(packets)
	if ping {
		t.pings.Add(1)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.pending = append(t.pending, b)
	start := !t.writing
	t.writing = true
	t.mu.Unlock()
	if start {
		go t.writeLoop()
	}
	if hook := testHookPingSent.Load(); ping && hook != nil {
		(*hook)()
	}
	if b.written != nil {
		<-b.written
	}
}

// testHookPingSent, when set by a test, runs on the goroutine that handed a
// PING to Send, once the PING is on its way: a test holds that goroutine
// there to reproduce the heartbeat race described at WebSocket.
var testHookPingSent atomic.Pointer[func()]

// hasPing reports whether packets hold a PING (the engine's heartbeat).
func hasPing(packets []*packet.Packet) bool {
	for _, p := range packets {
		if p != nil && p.Type == packet.PING {
			return true
		}
	}
	return false
}

// isClosed reports whether the transport stopped writing.
func (t *wsTransport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// stop ends writing: the queue is dropped (releasing whoever waits on it)
// and the writer goroutine, if any, exits after its current write.
func (t *wsTransport) stop() {
	t.mu.Lock()
	dropped := t.pending
	t.pending = nil
	t.closed = true
	if t.replay != nil {
		t.replay.Stop()
	}
	t.mu.Unlock()
	release(dropped)
}

// OnClose ends the transport on every way the connection closes,
// including a peer's or an error's that skip DoClose.
func (t *wsTransport) OnClose() {
	t.stop()
	t.Transport.OnClose()
	_ = t.conn.Close()
}

// DoClose closes the connection; Close calls it once.
func (t *wsTransport) DoClose(fn types.Callable) {
	t.stop()
	defer func() { _ = t.conn.Close() }()
	if fn != nil {
		fn()
	}
}

// isProbeAnswer reports whether packets is upstream's answer to "2probe": a
// single PONG carrying "probe" in a *strings.Reader.
func isProbeAnswer(packets []*packet.Packet) bool {
	if len(packets) != 1 || packets[0].Type != packet.PONG {
		return false
	}
	r, ok := packets[0].Data.(*strings.Reader)
	if !ok || r.Len() != len("probe") {
		return false
	}
	b := make([]byte, r.Len())
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return false
	}
	return string(b) == "probe"
}
