package engineio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// watchedConn counts the server's writes to one connection and can hold
// them back, so a test can queue packets while a write is on its way.
type watchedConn struct {
	net.Conn
	writes  atomic.Int32
	fail    atomic.Bool // writes fail without touching the connection
	mu      sync.Mutex
	hold    chan struct{} // while not nil, Write waits for it to close
	holding chan struct{} // closed when a Write starts waiting
}

func (c *watchedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	hold, holding := c.hold, c.holding
	c.mu.Unlock()
	if hold != nil {
		close(holding)
		<-hold
	}
	c.writes.Add(1)
	if c.fail.Load() {
		return 0, errWriteRefused
	}
	return c.Conn.Write(b)
}

// holdNextWrite makes the next Write wait until the returned release is
// called; started is closed once it waits.
func (c *watchedConn) holdNextWrite() (started <-chan struct{}, release func()) {
	hold, holding := make(chan struct{}), make(chan struct{})
	c.mu.Lock()
	c.hold, c.holding = hold, holding
	c.mu.Unlock()
	return holding, func() {
		c.mu.Lock()
		c.hold, c.holding = nil, nil
		c.mu.Unlock()
		close(hold)
	}
}

var errWriteRefused = errors.New("write refused by the test")

type watchingListener struct {
	net.Listener
	conns chan *watchedConn
}

func (l watchingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: c}
	l.conns <- w
	return w, nil
}

// wsPair opens one connection to a transportServer with a plain gorilla
// client, and returns the transport, the server side's connection (to
// watch its writes) and the client.
func wsPair(t *testing.T) (transports.Transport, *watchedConn, *websocket.Conn) {
	t.Helper()
	s := newTransportServer(t)
	ctx := testContext(t)
	client, res, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	t.Cleanup(func() { _ = client.Close() })
	_ = client.SetReadDeadline(time.Now().Add(waitLimit))
	tr, conn := s.accept(t, ctx)
	return tr, conn, client
}

// readFrames reads n messages and returns them as "text:..." or "binary:...".
func readFrames(t *testing.T, c *websocket.Conn, n int) []string {
	t.Helper()
	var got []string
	for range n {
		mt, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		kind := "text:"
		if mt == websocket.BinaryMessage {
			kind = "binary:"
		}
		got = append(got, kind+string(b))
	}
	return got
}

func message(s string) *packet.Packet {
	return &packet.Packet{Type: packet.MESSAGE, Data: strings.NewReader(s)}
}

// The packets of one Send go out in one write, each its own frame of the
// right type; a broadcast's pre-encoded frame is sent as it is.
func TestSendWritesItsPacketsAtOnce(t *testing.T) {
	tr, conn, client := wsPair(t)
	before := conn.writes.Load()
	tr.Send([]*packet.Packet{
		message("hello"),
		{Type: packet.MESSAGE, Data: bytes.NewReader([]byte{1, 2, 3})},
		{Type: packet.MESSAGE, Options: &packet.Options{WsPreEncodedFrame: types.NewStringBufferString("4shared")}},
		{Type: packet.MESSAGE, Options: &packet.Options{WsPreEncodedFrame: types.NewBytesBuffer([]byte{9, 8})}},
	})
	got := readFrames(t, client, 4)
	want := []string{"text:4hello", "binary:\x01\x02\x03", "text:4shared", "binary:\x09\x08"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("frames = %q, want %q", got, want)
	}
	if n := conn.writes.Load() - before; n != 1 {
		t.Errorf("%d writes for one Send, want 1", n)
	}
}

// Sends made while a write is on its way are written together next, in
// order, with one "drain" per Send (the engine socket's send callbacks
// count on it).
func TestSendsQueuedDuringAWriteGoOutTogether(t *testing.T) {
	tr, conn, client := wsPair(t)
	var drains atomic.Int32
	_ = tr.On("drain", func(...any) { drains.Add(1) })
	before := conn.writes.Load()
	started, release := conn.holdNextWrite()
	tr.Send([]*packet.Packet{message("a")})
	<-started
	if tr.Writable() {
		t.Error("writable while a write is on its way")
	}
	tr.Send([]*packet.Packet{message("b")})
	tr.Send([]*packet.Packet{message("c"), message("d")})
	release()
	got := readFrames(t, client, 4)
	if want := "text:4a text:4b text:4c text:4d"; strings.Join(got, " ") != want {
		t.Errorf("frames = %q, want %s", got, want)
	}
	if n := conn.writes.Load() - before; n != 2 {
		t.Errorf("%d writes, want 2 (the held one, then the two queued Sends together)", n)
	}
	deadline := time.Now().Add(waitLimit)
	for drains.Load() != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d := drains.Load(); d != 3 {
		t.Errorf("%d drains, want 3 (one per Send)", d)
	}
	if !tr.Writable() {
		t.Error("not writable once everything is written")
	}
}

// Payload lengths around the limits of the frame header's three forms.
func TestFrameLengths(t *testing.T) {
	tr, _, client := wsPair(t)
	sizes := []int{0, 124, 125, 126, 65534, 65535, 65536, 200000}
	var packets []*packet.Packet
	for _, n := range sizes {
		packets = append(packets, message(strings.Repeat("x", n)))
	}
	tr.Send(packets)
	for _, n := range sizes {
		mt, b, err := client.ReadMessage()
		if err != nil {
			t.Fatalf("payload of %d: %v", n, err)
		}
		if mt != websocket.TextMessage || len(b) != n+1 || b[0] != '4' || strings.Count(string(b), "x") != n {
			t.Errorf("payload of %d: got type %d, %d bytes", n, mt, len(b))
		}
	}
}

// A WebSocket ping is answered with a pong carrying its data, and a close
// frame with a close frame of the same code, written through the same
// lock as the data.
func TestControlFramesAreAnswered(t *testing.T) {
	tr, _, client := wsPair(t)
	pong := make(chan string, 1)
	client.SetPongHandler(func(data string) error { pong <- data; return nil })
	// The reader answers the ping before it reads the next frame, whose
	// packet queues the message: the pong is out first.
	_ = tr.On("packet", func(...any) { tr.Send([]*packet.Packet{message("after the ping")}) })
	if err := client.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteMessage(websocket.TextMessage, []byte("4next")); err != nil {
		t.Fatal(err)
	}
	// Reading handles the pong on the way to the message.
	if got := readFrames(t, client, 1); got[0] != "text:4after the ping" {
		t.Errorf("frame = %q", got)
	}
	select {
	case data := <-pong:
		if data != "are you there" {
			t.Errorf("pong data = %q", data)
		}
	case <-time.After(waitLimit):
		t.Fatal("no pong")
	}

	closed := make(chan struct{})
	_ = tr.On("close", func(...any) { close(closed) })
	if err := client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"), time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	_, _, err := client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("read after close = %v, want the close echoed with code %d", err, websocket.CloseGoingAway)
	}
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("transport not closed after the client's close frame")
	}
}

// A failed write is reported as the transport's error and closes it, even
// with nobody acting on the error, so nothing waits on a connection that
// cannot be written; later Sends are dropped.
func TestWriteErrorClosesTheTransport(t *testing.T) {
	tr, conn, _ := wsPair(t)
	closed := make(chan struct{})
	reported := make(chan error, 1)
	_ = tr.On("close", func(...any) { close(closed) })
	_ = tr.On("error", func(args ...any) {
		err, _ := args[0].(error)
		reported <- err
	})
	conn.fail.Store(true)
	tr.Send([]*packet.Packet{message("lost")})
	select {
	case err := <-reported:
		if !errors.Is(err, errWriteRefused) {
			t.Errorf("error = %v, want the write's", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("failed write not reported")
	}
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("transport not closed after a failed write")
	}
	before := conn.writes.Load()
	tr.Send([]*packet.Packet{message("dropped")})
	if conn.writes.Load() != before {
		t.Error("a Send after the close was written")
	}
}

// A write stalled on a client that does not read holds the connection; the
// reader must not wait behind it to answer a WebSocket ping: it drops the
// pong and goes on handling the client's frames.
func TestReaderDoesNotWaitBehindAStalledWrite(t *testing.T) {
	tr, conn, client := wsPair(t)
	packets := make(chan *packet.Packet, 4)
	_ = tr.On("packet", func(a ...any) { packets <- a[0].(*packet.Packet) })
	started, release := conn.holdNextWrite()
	defer release()
	tr.Send([]*packet.Packet{message("stuck")})
	<-started
	if err := client.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if err := client.WriteMessage(websocket.TextMessage, []byte("4after the ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-packets:
		if p.Type != packet.MESSAGE {
			t.Errorf("packet %v, want the message", p.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader waited behind the stalled write")
	}
}

// A client PONG reaches the engine with readable data, as upstream's
// decoder gives it (the engine's upgrade check copies from it).
func TestPongHasData(t *testing.T) {
	tr, _, client := wsPair(t)
	packets := make(chan *packet.Packet, 1)
	_ = tr.On("packet", func(a ...any) {
		if p := a[0].(*packet.Packet); !engineio.IsReplayedPong(p) {
			packets <- p
		}
	})
	if err := client.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-packets:
		if p.Type != packet.PONG || p.Data == nil {
			t.Fatalf("packet %v with data %v, want a PONG with data", p.Type, p.Data)
		}
		if b, err := io.ReadAll(p.Data); err != nil || len(b) != 0 {
			t.Errorf("PONG data %q, %v", b, err)
		}
	case <-time.After(waitLimit):
		t.Fatal("no PONG")
	}
}

type panickingReader struct{}

func (panickingReader) Read([]byte) (int, error) { panic("a reader given as packet data failed") }

// A panic while writing (here, in the packet's data) closes the connection
// with an error, as a failed write does, and leaves the process alone.
func TestPanicInAWriteClosesTheTransport(t *testing.T) {
	tr, _, _ := wsPair(t)
	closed := make(chan struct{})
	reported := make(chan error, 1)
	_ = tr.On("close", func(...any) { close(closed) })
	_ = tr.On("error", func(a ...any) { err, _ := a[0].(error); reported <- err })
	tr.Send([]*packet.Packet{{Type: packet.MESSAGE, Data: panickingReader{}}})
	select {
	case err := <-reported:
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("error = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("no error reported")
	}
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("transport not closed")
	}
}
