package engineio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/sockstream/sockstream/internal/engineio/eiotest"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// transportServer serves WebSocket connections with the transport built by
// engineio.WebSocket and hands the test each transport with the server side
// of its connection (which counts, and can hold, the writes).
type transportServer struct {
	url   string // http://127.0.0.1:port/engine.io/
	ready chan transports.Transport
	conns chan *watchedConn
}

func newTransportServer(t *testing.T) *transportServer {
	t.Helper()
	s := &transportServer{ready: make(chan transports.Transport, 1), conns: make(chan *watchedConn, 1)}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		ctx := types.NewHttpContext(w, r)
		ctx.Websocket = &types.WebSocketConn{EventEmitter: types.NewEventEmitter(), Conn: conn}
		s.ready <- engineio.WebSocket{}.New(ctx)
	}))
	hs.Listener = watchingListener{Listener: hs.Listener, conns: s.conns}
	hs.Start()
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})
	s.url = hs.URL + "/engine.io/"
	return s
}

// accept returns the transport of the connection the test just opened.
func (s *transportServer) accept(t *testing.T, ctx context.Context) (transports.Transport, *watchedConn) {
	t.Helper()
	var tr transports.Transport
	select {
	case tr = <-s.ready:
	case <-ctx.Done():
		t.Fatal("no transport")
	}
	t.Cleanup(func() { tr.Close() })
	return tr, <-s.conns
}

// wsTransportUnderTest opens one connection to a transportServer with the
// Engine.IO test client.
func wsTransportUnderTest(t *testing.T) (transports.Transport, *eiotest.WS) {
	t.Helper()
	s := newTransportServer(t)
	ctx := testContext(t)
	ws, err := eiotest.DialWS(ctx, s.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	tr, _ := s.accept(t, ctx)
	return tr, ws
}

// The probe answer is written before Send returns (upstream only queues it),
// so the reader handles the client's next frame after "3probe" is out.
func TestProbeAnswerIsWrittenBeforeSendReturns(t *testing.T) {
	tr, ws := wsTransportUnderTest(t)
	var drained atomic.Int32
	_ = tr.On("drain", func(...any) { drained.Add(1) })
	tr.Send([]*packet.Packet{{Type: packet.PONG, Data: strings.NewReader("probe")}})
	if drained.Load() != 1 {
		t.Errorf("Send of the probe answer returned before the write (drains: %d)", drained.Load())
	}
	if got, err := ws.ReadText(testContext(t)); err != nil || got != "3probe" {
		t.Errorf("frame = %q, %v; want 3probe", got, err)
	}
	// Other packets are queued as upstream does, and still arrive.
	tr.Send([]*packet.Packet{{Type: packet.MESSAGE, Data: strings.NewReader("hello")}})
	if got, err := ws.ReadText(testContext(t)); err != nil || got != "4hello" {
		t.Errorf("frame = %q, %v; want 4hello", got, err)
	}
}

// Sending the probe answer on a closed transport must not wait for a drain
// that will never come.
func TestProbeAnswerOnClosedTransportReturns(t *testing.T) {
	tr, _ := wsTransportUnderTest(t)
	tr.Close()
	tr.Send([]*packet.Packet{{Type: packet.PONG, Data: strings.NewReader("probe")}})
}

// Through a whole upgrade: the client sends "2probe" and "5" at once, its
// pending poll is answered 400, and the first WebSocket frame is "3probe".
func TestProbeAnswerPrecedesTheUpgrade(t *testing.T) {
	e, ctx, p := openPollingSession(t)
	pending := e.pendingPoll(t, ctx, p)
	ws, err := eiotest.DialWS(ctx, e.url, p.SID)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, f := range []string{"2probe", "5", "4hello"} {
		if err := ws.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	// The poll may get the NOOP of the upgrade check if the machine stalls
	// for 100 ms between the two frames; either way it ends.
	if r := <-pending; r.Status != http.StatusBadRequest && (r.Status != http.StatusOK || r.Body != "6") {
		t.Errorf("pending poll = %d %q, want 400 (or the NOOP)", r.Status, r.Body)
	}
	for _, want := range []string{"3probe", "4hello"} {
		if got, err := ws.ReadText(ctx); err != nil || got != want {
			t.Errorf("frame = %q, %v; want %q", got, err, want)
		}
	}
}
