package engineio

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
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
// serialised with the pong and close frames the reader answers with; the
// reader waits at most a second for a write on its way (a client that does
// not read), then drops the pong, or closes the connection instead of
// echoing a close. When per-message deflate is configured, packets go
// through gorilla's compressing writer as upstream's did. A panic while
// writing (a packet's data is any io.Reader) closes the connection with an
// error, as upstream's queue recovered it.
//
// Like upstream, no write deadline is set: a client that stops reading
// blocks only its own writer goroutine, until the session's ping timeout
// closes the connection and the write fails.
//
// It also corrects a heartbeat race of upstream's engine socket, which could
// close a client that answered its ping for "ping timeout": every client
// PONG is handed to the engine a second time, PongReplay later, unless
// another PING went out (see docs/compatibility.md, correction 7). The copy
// carries ReplayedPong as its data: metrics can skip it.
type WebSocket struct {
	// PongReplay is how long after a client's PONG its copy is handed to
	// the engine: longer than the ping goroutine may be held up between
	// sending the PING and arming the timeout, shorter than the ping
	// timeout. Zero means DefaultPongReplay.
	PongReplay time.Duration
}

// Name is the transport's name in the "transport" query parameter.
func (WebSocket) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true: a long-polling session may upgrade to it.
func (WebSocket) HandlesUpgrades() bool { return true }

// UpgradesTo lists nothing: WebSocket is not upgraded further.
func (WebSocket) UpgradesTo() []string { return nil }

// New builds the transport of one connection.
func (w WebSocket) New(ctx *types.HttpContext) transports.Transport {
	t := &wsTransport{
		Transport: transports.MakeTransport(),
		heartbeat: newPongReplayer(w.PongReplay),
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
	heartbeat   *pongReplayer

	// wmu serialises writes to raw: the writer's batches and the reader's
	// control frames; the reader tries it for a bounded time only (see
	// writeControl).
	wmu sync.Mutex

	// mu guards the queue below.
	mu      sync.Mutex
	pending []sendBatch
	writing bool // a writer goroutine owns the queue
	closed  bool // no more writes: the transport is closing or closed
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
			t.onPong()
			continue
		}
		t.OnData(data)
	}
}

// onPong hands a client's PONG to the heartbeat correction. Apart from read
// so as not to grow the frame of every connection's reader goroutine, whose
// stack is most of an idle connection's memory.
//
//go:noinline
func (t *wsTransport) onPong() {
	// Data as upstream's decoder leaves it: the engine's upgrade check
	// copies from it.
	t.heartbeat.pong(t.OnPacket, &packet.Packet{Type: packet.PONG, Data: types.NewStringBuffer(nil)})
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
	ping := t.heartbeat.sending(packets)
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
	// Only a PING this Send started the writer for is surely on its way:
	// a Send made from the writer goroutine (its "ready") queues behind it.
	t.heartbeat.sent(ping && start)
	if b.written != nil {
		<-b.written
	}
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
	t.mu.Unlock()
	t.heartbeat.stop()
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
