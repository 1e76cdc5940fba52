package engineio

import (
	"io"
	"strings"
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// WebSocket is a transports.TransportCtor for WebSocket: upstream's
// transport, except that the answer to an upgrade probe ("3probe") is on the
// wire before the next frame of the client is handled.
//
// Upstream queues every write for a writer goroutine, and the reader goes on
// at once; while upgrading, the reader handles the client's UPGRADE ("5")
// next, which ends the session's long-polling. On a loaded machine a client
// then saw its poll answered (400, the session has moved to WebSocket) before
// "3probe" arrived, the reverse of Node, which writes "3probe" before it reads
// the next frame. The suites' "ignores HTTP requests with same sid after
// upgrade" read "3probe" where it expected its echo.
type WebSocket struct{}

// Name is the transport's name in the "transport" query parameter.
func (WebSocket) Name() string { return transports.WEBSOCKET }

// HandlesUpgrades reports true: a long-polling session may upgrade to it.
func (WebSocket) HandlesUpgrades() bool { return true }

// UpgradesTo lists nothing: WebSocket is not upgraded further.
func (WebSocket) UpgradesTo() []string { return nil }

// New builds the transport of one connection.
func (WebSocket) New(ctx *types.HttpContext) transports.Transport {
	return &wsTransport{Websocket: transports.NewWebSocket(ctx)}
}

type wsTransport struct {
	transports.Websocket
}

// Send waits, for the probe answer only, until upstream's writer has
// written it or the transport has closed. It runs on the reader goroutine
// (upstream answers the probe from its packet handler), which is what makes
// the next frame wait; other packets are queued as upstream does.
func (t *wsTransport) Send(packets []*packet.Packet) {
	dropPreparedFrames(packets)
	if !isProbeAnswer(packets) {
		t.Websocket.Send(packets)
		return
	}
	done := make(chan struct{})
	var once sync.Once
	finished := types.EventListener(func(...any) { once.Do(func() { close(done) }) })
	_ = t.Once("drain", finished)
	_ = t.Once("close", finished)
	defer func() {
		t.RemoveListener("drain", finished)
		t.RemoveListener("close", finished)
	}()
	t.Websocket.Send(packets)
	// A transport already closing never drains nor closes again.
	if state := t.ReadyState(); state == "closing" || state == "closed" {
		return
	}
	<-done
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

// dropPreparedFrames makes upstream write broadcast packets like any other.
//
// For a broadcast, socket.io pre-encodes the Engine.IO frame once
// (Options.WsPreEncodedFrame) and upstream's WebSocket transport then turns
// it into a gorilla websocket.PreparedMessage for every client, which
// builds (and, with the first write, caches) the whole frame again per
// client: a prepared message only pays when one value is written to many
// connections, and each client gets its own. Profiled under load
// (docs/benchmarks.md) it was most of the allocated bytes and a third of
// the CPU of a busy node; writing the packet through the transport's
// ordinary path (encode "4"+data, one NextWriter) costs one copy instead.
// Options and the packets are per client (engine socket.sendPacket clones
// them), so clearing the field races with no other client.
func dropPreparedFrames(packets []*packet.Packet) {
	for _, p := range packets {
		if p != nil && p.Options != nil {
			p.Options.WsPreEncodedFrame = nil
		}
	}
}
