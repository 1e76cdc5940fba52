package engineio

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// ErrInvalidPayload is the error an undecodable long-polling payload is
// reported with (wrapped, with the decoder's error).
var ErrInvalidPayload = errors.New("engineio: invalid long-polling payload")

// badRequest is the body upstream's abortRequest writes for code 3, so that
// our 400s look like every other 400 of the engine.
var badRequest = mustJSON(map[string]any{"code": 3, "message": "Bad request"})

// Polling is a transports.TransportCtor for HTTP long-polling: the upstream
// transport with the corrections described in the package documentation.
// Build it with NewPolling, put it in the engine's transports in place of
// engine.Polling, then Attach the engine. Its zero value is not usable.
type Polling struct {
	log        *slog.Logger
	clients    atomic.Pointer[types.Map[string, engine.Socket]]
	pongReplay atomic.Int64 // time.Duration; 0: DefaultPongReplay

	invalidPayloads atomic.Uint64
	staleAfterUp    atomic.Uint64
	oversized       atomic.Uint64
	closedPolls     atomic.Uint64
}

// NewPolling returns a long-polling transport constructor that logs its
// corrections to log (slog.Default() if nil).
func NewPolling(log *slog.Logger) *Polling {
	if log == nil {
		log = slog.Default()
	}
	return &Polling{log: log}
}

// Attach gives the constructor the engine whose sessions its transports
// serve. Until it is called, a poll pending at the upgrade keeps upstream's
// answer (200 with the CLOSE packet); the payload correction works without it.
func (p *Polling) Attach(srv engine.BaseServer) {
	p.clients.Store(srv.Clients())
}

// SetPongReplay sets how long after a client's PONG the transports built
// from now on hand the engine its copy (see docs/compatibility.md,
// correction 7); zero or less means DefaultPongReplay.
func (p *Polling) SetPongReplay(d time.Duration) { p.pongReplay.Store(int64(d)) }

// Stats counts the corrections applied so far.
type Stats struct {
	// InvalidPayloads is the number of POST payloads that failed to decode
	// and closed their session.
	InvalidPayloads uint64
	// PollsRejectedAtUpgrade is the number of long-polling GETs answered 400
	// because the session upgraded to WebSocket while they were pending.
	PollsRejectedAtUpgrade uint64
	// OversizedChunkedPayloads is the number of POST bodies sent without
	// Content-Length that exceeded maxPayload and were answered 413.
	OversizedChunkedPayloads uint64
	// PollsOnClosedTransport is the number of long-polling GETs that reached
	// a transport already closed by its client and were answered 400.
	PollsOnClosedTransport uint64
}

// Stats returns the counters of the corrections applied so far.
func (p *Polling) Stats() Stats {
	return Stats{
		InvalidPayloads:          p.invalidPayloads.Load(),
		PollsRejectedAtUpgrade:   p.staleAfterUp.Load(),
		OversizedChunkedPayloads: p.oversized.Load(),
		PollsOnClosedTransport:   p.closedPolls.Load(),
	}
}

// Name is the transport's name in the "transport" query parameter.
func (p *Polling) Name() string { return transports.POLLING }

// HandlesUpgrades reports false: long-polling is never an upgrade target.
func (p *Polling) HandlesUpgrades() bool { return false }

// UpgradesTo lists the transports a long-polling session may upgrade to, as
// upstream's.
func (p *Polling) UpgradesTo() []string {
	return (&transports.PollingBuilder{}).UpgradesTo()
}

// New builds the transport of one session. JSONP requests (the "j" query
// parameter) get upstream's JSONP transport, uncorrected: its decoding does
// not go through the overridable method.
func (p *Polling) New(ctx *types.HttpContext) transports.Transport {
	if ctx.Query().Has("j") {
		return transports.NewJSONP(ctx)
	}
	up := transports.MakePolling()
	t := &pollingTransport{Polling: up, ctor: p, heartbeat: newPongReplayer(time.Duration(p.pongReplay.Load()))}
	// Upstream dispatches OnData, DoWrite and DoClose through the prototype;
	// pointing it at t is what makes our overrides run.
	up.Prototype(t)
	up.Construct(ctx)
	return t
}

// pollingTransport is upstream's polling transport with OnRequest, OnData,
// Send and DoClose overridden.
type pollingTransport struct {
	transports.Polling
	ctor      *Polling
	heartbeat *pongReplayer

	// post is the POST request whose payload is being decoded: upstream
	// decodes it synchronously inside OnRequest.
	post atomic.Pointer[types.HttpContext]
	// poll is the latest GET request, answered or not.
	poll atomic.Pointer[types.HttpContext]
	// closeMu orders the registration of a poll against the client's CLOSE
	// packet. Upstream registers a poll and checks for a close without a
	// common lock: a poll that passed the session lookup while a concurrent
	// POST "1" closed the transport is registered on a closed transport and
	// never answered (measured: about 1 in 200 of the suites' "forcefully
	// closes the session" exchanges hung). Node, single-threaded, runs one
	// before the other.
	closeMu sync.Mutex
}

// OnRequest records the request, then lets upstream handle it.
func (t *pollingTransport) OnRequest(ctx *types.HttpContext) {
	switch ctx.Method() {
	case http.MethodPost:
		if !t.bufferUnsizedBody(ctx) {
			return
		}
		// Upstream rejects overlapping POSTs before decoding, so one slot is
		// enough; a request that loses it is not decoded under our watch.
		if t.post.CompareAndSwap(nil, ctx) {
			defer t.post.CompareAndSwap(ctx, nil)
		}
	case http.MethodGet:
		t.poll.Store(ctx)
		t.closeMu.Lock()
		defer t.closeMu.Unlock()
		if t.ReadyState() == "closed" {
			// The session is gone, as Node says to a poll that arrives
			// after the close.
			t.ctor.closedPolls.Add(1)
			t.ctor.log.Debug("engine.io: poll on a transport closed by its client answered 400", "sid", t.Sid())
			reject(ctx)
			return
		}
	}
	t.Polling.OnRequest(ctx)
}

// bufferUnsizedBody reads a POST body sent without Content-Length (chunked)
// and reports whether upstream may handle the request. Upstream checks
// maxHttpBufferSize against Content-Length only, then reads through a
// LimitReader: a larger chunked body is silently truncated and decoded. Node
// answers 413 once the bytes received exceed the limit; so does this.
func (t *pollingTransport) bufferUnsizedBody(ctx *types.HttpContext) bool {
	req := ctx.Request()
	if req.ContentLength >= 0 || req.Body == nil || req.Body == http.NoBody {
		return true
	}
	limit := t.MaxHttpBufferSize()
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	_ = req.Body.Close()
	switch {
	case err != nil:
		t.ctor.log.Info("engine.io: reading a long-polling payload failed", "sid", t.Sid(), "err", err)
		reject(ctx)
		return false
	case int64(len(body)) > limit:
		t.ctor.oversized.Add(1)
		t.ctor.log.Info("engine.io: long-polling payload over maxPayload refused",
			"sid", t.Sid(), "max_payload", limit)
		_ = ctx.SetStatusCode(http.StatusRequestEntityTooLarge)
		_, _ = ctx.Write(nil)
		return false
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return true
}

// OnData replaces upstream's, which drops the decoder's error: packets decoded
// before the error are delivered, then the POST is answered 400 and an ERROR
// packet closes the session ("parse error"), as Node's engine.io does.
func (t *pollingTransport) OnData(data types.BufferInterface) {
	packets, err := t.Parser().DecodePayload(data)
	for _, pkt := range packets {
		if pkt.Type == packet.CLOSE {
			t.closeMu.Lock()
			defer t.closeMu.Unlock()
			t.OnClose()
			return
		}
		if pkt.Type == packet.PONG {
			t.heartbeat.pong(t.OnPacket, pkt)
			continue
		}
		t.OnPacket(pkt)
	}
	if err == nil {
		return
	}
	t.ctor.invalidPayloads.Add(1)
	err = errors.Join(ErrInvalidPayload, err)
	t.ctor.log.Info("engine.io: closing session on an invalid long-polling payload",
		"sid", t.Sid(), "err", err)
	// Answer before the session closes: closing the transport would answer
	// the pending POST 429 (upstream's stand-in for Node's socket destroy).
	if ctx := t.post.Load(); ctx != nil {
		reject(ctx)
	}
	t.OnPacket(&packet.Packet{Type: packet.ERROR, Data: types.NewStringBufferString("parser error")})
}

// Send notes the engine's PINGs for the heartbeat correction, then sends
// as upstream does. (No test hook here: a PING sent when a poll arrives
// is written by the poll's own handler, which a held Send would hold.)
func (t *pollingTransport) Send(packets []*packet.Packet) {
	t.heartbeat.sending(packets)
	t.Polling.Send(packets)
}

// DoClose answers 400 to a poll still pending when the session upgrades away
// from this transport, then closes as upstream does.
func (t *pollingTransport) DoClose(fn types.Callable) {
	t.heartbeat.stop()
	if t.Discarded() && t.upgradedAway() {
		if ctx := t.poll.Load(); ctx != nil && !ctx.IsDone() && reject(ctx) {
			t.ctor.staleAfterUp.Add(1)
			t.ctor.log.Debug("engine.io: poll pending at the upgrade to websocket answered 400", "sid", t.Sid())
		}
	}
	t.Polling.DoClose(fn)
}

// upgradedAway reports whether this transport is being replaced by an
// upgrade, as opposed to closed with its session: upstream marks the session
// upgraded before it closes the old transport, and a closing session is
// "closed" by then.
func (t *pollingTransport) upgradedAway() bool {
	clients := t.ctor.clients.Load()
	if clients == nil {
		return false
	}
	sock, ok := clients.Load(t.Sid())
	return ok && sock.Upgraded() && sock.ReadyState() != "closed"
}

// reject answers ctx 400 with upstream's "Bad request" body, unless it has
// been answered already; it reports whether it answered.
func reject(ctx *types.HttpContext) bool {
	if ctx.IsDone() {
		return false
	}
	ctx.ResponseHeaders().Set("Content-Type", "application/json")
	if err := ctx.SetStatusCode(http.StatusBadRequest); err != nil {
		return false
	}
	_, err := ctx.Write(badRequest)
	return err == nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
