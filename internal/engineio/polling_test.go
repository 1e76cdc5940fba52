package engineio_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/sockstream/sockstream/internal/engineio/eiotest"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// waitLimit bounds every wait; passing tests never reach it.
const waitLimit = 10 * time.Second

// echoEngine is a bare Engine.IO server that sends every message back, as
// the engine.io-protocol suite expects, with the corrected polling transport.
type echoEngine struct {
	eng     engine.Server
	polling *engineio.Polling
	url     string // http://127.0.0.1:port/engine.io/
}

// newEchoEngine starts one on a test HTTP server. The ping interval is long
// so that no PING answers a pending poll unless a test asks for it; tune,
// if given, changes the options last (the polling transport is attached
// whatever it sets).
func newEchoEngine(t *testing.T, maxPayload int64, tune ...func(*config.ServerOptions, *engineio.Polling)) *echoEngine {
	t.Helper()
	polling := engineio.NewPolling(slog.New(slog.DiscardHandler))
	opts := config.DefaultServerOptions()
	opts.SetPingInterval(time.Minute)
	opts.SetPingTimeout(time.Minute)
	opts.SetMaxHttpBufferSize(maxPayload)
	opts.SetTransports(types.NewSet[transports.TransportCtor](polling, engineio.WebSocket{}))
	for _, f := range tune {
		f(opts, polling)
	}
	eng := engine.NewServer(opts)
	polling.Attach(eng)
	_ = eng.On("connection", func(args ...any) {
		sock := args[0].(engine.Socket)
		_ = sock.On("data", func(args ...any) {
			if data, ok := args[0].(io.Reader); ok {
				sock.Send(data, nil, nil)
			}
		})
	})
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", eng)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		eng.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	return &echoEngine{eng: eng, polling: polling, url: hs.URL + "/engine.io/"}
}

func (e *echoEngine) poller() *eiotest.Poller { return &eiotest.Poller{URL: e.url} }

// openPollingSession starts an echo engine (maxPayload 1e6) and opens a
// long-polling session on it.
func openPollingSession(t *testing.T) (*echoEngine, context.Context, *eiotest.Poller) {
	t.Helper()
	e := newEchoEngine(t, 1e6)
	ctx := testContext(t)
	p := e.poller()
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	return e, ctx, p
}

// openWebSocketSession opens a WebSocket session on e and reads its open
// packet; the connection closes when the test ends.
func openWebSocketSession(t *testing.T, ctx context.Context, e *echoEngine) *eiotest.WS {
	t.Helper()
	ws, err := eiotest.DialWS(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	if _, err := ws.ReadText(ctx); err != nil {
		t.Fatal(err)
	}
	return ws
}

// session is the engine's socket of sid.
func (e *echoEngine) session(t *testing.T, sid string) engine.Socket {
	t.Helper()
	sock, ok := e.eng.Clients().Load(sid)
	if !ok {
		t.Fatalf("no session %s on the server", sid)
	}
	return sock
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// pendingPoll sends a poll of p's session in the background and waits
// until the server holds it open (its transport is writable exactly while a
// GET waits for data); the poll's answer arrives on the channel.
func (e *echoEngine) pendingPoll(t *testing.T, ctx context.Context, p *eiotest.Poller) <-chan eiotest.Response {
	t.Helper()
	ch := make(chan eiotest.Response, 1)
	go func() {
		r, err := p.Get(ctx)
		if err != nil {
			r = eiotest.Response{Status: -1, Body: err.Error()}
		}
		ch <- r
	}()
	sock := e.session(t, p.SID)
	deadline := time.Now().Add(waitLimit)
	for !sock.Transport().Writable() {
		if time.Now().After(deadline) {
			t.Fatal("the poll never became pending on the server")
		}
		time.Sleep(time.Millisecond)
	}
	return ch
}

func TestInvalidPayloadClosesSession(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	r, err := p.Post(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	// Upstream answers 200 "ok" and keeps the session.
	if r.Status != http.StatusBadRequest {
		t.Errorf("POST of an invalid payload answered %d %q, want 400", r.Status, r.Body)
	}
	// The session is gone: Node answers the next poll 400 "Session ID unknown".
	r, err = p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusBadRequest {
		t.Errorf("poll after an invalid payload answered %d %q, want 400", r.Status, r.Body)
	}
	if got := e.polling.Stats().InvalidPayloads; got != 1 {
		t.Errorf("Stats().InvalidPayloads = %d, want 1", got)
	}
}

func TestPacketsBeforeAnInvalidOneAreDelivered(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	var (
		mu       sync.Mutex
		messages []string
	)
	sock := e.session(t, p.SID)
	_ = sock.On("message", func(args ...any) {
		b, _ := io.ReadAll(args[0].(io.Reader))
		mu.Lock()
		messages = append(messages, string(b))
		mu.Unlock()
	})
	if r, err := p.Post(ctx, "4first\x1ezzz\x1e4never"); err != nil || r.Status != http.StatusBadRequest {
		t.Fatalf("POST = %+v, %v; want 400", r, err)
	}
	// Node's decoder stops at the first bad packet; the ones before it arrive.
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(messages, ",") != "first" {
		t.Errorf("messages delivered = %q, want [first]", messages)
	}
	if sock.ReadyState() != "closed" {
		t.Errorf("session state %q, want closed", sock.ReadyState())
	}
}

func TestValidPayloadsStillEcho(t *testing.T) {
	_, ctx, p := openPollingSession(t)
	if r, err := p.Post(ctx, "4hello\x1ebAQIDBA=="); err != nil || r.Status != http.StatusOK || r.Body != "ok" {
		t.Fatalf("POST = %+v, %v; want 200 ok", r, err)
	}
	r, err := p.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || r.Body != "4hello\x1ebAQIDBA==" {
		t.Errorf("poll = %d %q, want 200 \"4hello\\x1ebAQIDBA==\"", r.Status, r.Body)
	}
}

// TestPollPendingAtUpgradeIsRejected makes the race of the suites' "ignores
// HTTP requests with same sid after upgrade" deterministic: the poll is held
// by the server before the client upgrades.
func TestPollPendingAtUpgradeIsRejected(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	pending := e.pendingPoll(t, ctx, p)

	ws, err := eiotest.DialWS(ctx, e.url, p.SID)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// UPGRADE without a probe: no NOOP can answer the poll in between.
	if err := ws.Send("5"); err != nil {
		t.Fatal(err)
	}
	// Upstream answers 200 "1" (the CLOSE packet of the discarded transport).
	if r := <-pending; r.Status != http.StatusBadRequest {
		t.Errorf("poll pending at the upgrade answered %d %q, want 400", r.Status, r.Body)
	}
	if r, err := p.Get(ctx); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("poll after the upgrade = %+v, %v; want 400", r, err)
	}
	if err := ws.Send("4hello"); err != nil {
		t.Fatal(err)
	}
	if got, err := ws.ReadText(ctx); err != nil || got != "4hello" {
		t.Errorf("echo over the upgraded session = %q, %v; want 4hello", got, err)
	}
	if got := e.polling.Stats().PollsRejectedAtUpgrade; got != 1 {
		t.Errorf("Stats().PollsRejectedAtUpgrade = %d, want 1", got)
	}
}

// The correction must not touch closes: a poll pending when the server closes
// the session still receives the CLOSE packet, as in Node.
func TestPollPendingAtServerCloseGetsClosePacket(t *testing.T) {
	for _, discard := range []bool{false, true} {
		e, ctx, p := openPollingSession(t)
		pending := e.pendingPoll(t, ctx, p)
		e.session(t, p.SID).Close(discard)
		if r := <-pending; r.Status != http.StatusOK || r.Body != "1" {
			t.Errorf("Close(%v): pending poll answered %d %q, want 200 \"1\"", discard, r.Status, r.Body)
		}
	}
}

// A client's CLOSE ends a pending poll with a NOOP, as in Node (the suites'
// "forcefully closes the session", without its race between the requests).
func TestClientCloseAnswersPendingPollWithNoop(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	pending := e.pendingPoll(t, ctx, p)
	if r, err := p.Post(ctx, "1"); err != nil || r.Status != http.StatusOK {
		t.Fatalf("POST close = %+v, %v", r, err)
	}
	if r := <-pending; r.Status != http.StatusOK || r.Body != "6" {
		t.Errorf("pending poll answered %d %q, want 200 \"6\"", r.Status, r.Body)
	}
	if r, err := p.Get(ctx); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("poll after close = %+v, %v; want 400", r, err)
	}
}

func TestMaxPayloadOverPolling(t *testing.T) {
	const limit = 100
	e := newEchoEngine(t, limit)
	ctx := testContext(t)
	p := e.poller()
	o, err := p.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxPayload != limit {
		t.Errorf("handshake maxPayload = %d, want %d", o.MaxPayload, limit)
	}
	big := "4" + strings.Repeat("x", limit)
	// With Content-Length (upstream's check).
	if r, err := p.Post(ctx, big); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("sized POST over maxPayload = %+v, %v; want 413", r, err)
	}
	// Chunked: upstream truncates the body to maxPayload and delivers it.
	if r, err := p.PostReader(ctx, io.MultiReader(strings.NewReader(big))); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST over maxPayload = %+v, %v; want 413", r, err)
	}
	// As in Node, the session survives and nothing of the refused bodies arrives.
	if r, err := p.PostReader(ctx, io.MultiReader(strings.NewReader("4small"))); err != nil || r.Status != http.StatusOK {
		t.Fatalf("chunked POST under maxPayload = %+v, %v; want 200", r, err)
	}
	if r, err := p.Get(ctx); err != nil || r.Status != http.StatusOK || r.Body != "4small" {
		t.Errorf("poll = %+v, %v; want 200 \"4small\"", r, err)
	}
	if got := e.polling.Stats().OversizedChunkedPayloads; got != 1 {
		t.Errorf("Stats().OversizedChunkedPayloads = %d, want 1", got)
	}
}

func TestMaxPayloadOverWebSocket(t *testing.T) {
	const limit = 100
	e := newEchoEngine(t, limit)
	ctx := testContext(t)
	ws := openWebSocketSession(t, ctx, e)
	if err := ws.Send("4" + strings.Repeat("x", limit)); err != nil {
		t.Fatal(err)
	}
	// Node's ws closes with 1009; gorilla's read limit closes the connection.
	if err := ws.WaitClosed(ctx); err != nil {
		t.Errorf("frame over maxPayload: %v, want the connection closed", err)
	}
}

func TestInvalidPacketOverWebSocketClosesSession(t *testing.T) {
	e := newEchoEngine(t, 1e6)
	ctx := testContext(t)
	ws := openWebSocketSession(t, ctx, e)
	if err := ws.Send("abc"); err != nil {
		t.Fatal(err)
	}
	if err := ws.WaitClosed(ctx); err != nil {
		t.Error(err)
	}
}

func TestJSONPKeepsUpstreamTransport(t *testing.T) {
	e := newEchoEngine(t, 1e6)
	ctx := testContext(t)
	p := e.poller()
	r, err := p.Do(ctx, http.MethodGet, "EIO=4&transport=polling&j=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, "___eio[0](") {
		t.Errorf("JSONP handshake = %d %q", r.Status, r.Body)
	}
}

// A poll that passed the session lookup while the client's CLOSE was being
// handled reaches a closed transport; upstream registers it there and never
// answers it. The test plays that interleaving by handing the poll to the
// transport after the close.
func TestPollReachingClosedTransportIsAnswered(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	transport := e.session(t, p.SID).Transport()
	if r, err := p.Post(ctx, "1"); err != nil || r.Status != http.StatusOK {
		t.Fatalf("POST close = %+v, %v", r, err)
	}
	if transport.ReadyState() != "closed" {
		t.Fatalf("transport %q after the client's CLOSE, want closed", transport.ReadyState())
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, e.url+"?EIO=4&transport=polling&sid="+p.SID, nil)
	hc := types.NewHttpContext(rec, req)
	transport.OnRequest(hc)
	if !hc.IsDone() {
		t.Fatal("poll on a closed transport left unanswered")
	}
	if rec.Code != http.StatusBadRequest {
		t.Errorf("poll on a closed transport answered %d %q, want 400", rec.Code, rec.Body)
	}
	if got := e.polling.Stats().PollsOnClosedTransport; got != 1 {
		t.Errorf("Stats().PollsOnClosedTransport = %d, want 1", got)
	}
}

func TestUnsupportedProtocolVersionCode(t *testing.T) {
	e := newEchoEngine(t, 1e6)
	ctx := testContext(t)
	for _, q := range []string{"EIO=3&transport=polling", "transport=polling", "EIO=abc&transport=polling"} {
		r, err := e.poller().Do(ctx, http.MethodGet, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Node: {"code":5,"message":"Unsupported protocol version"}; upstream says 4.
		if r.Status != http.StatusBadRequest || r.Body != `{"code":5,"message":"Unsupported protocol version"}` {
			t.Errorf("GET ?%s = %d %q, want 400 with code 5", q, r.Status, r.Body)
		}
	}
}
