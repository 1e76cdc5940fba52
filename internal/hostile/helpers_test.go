package hostile

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

// waitFor bounds every wait on a condition. It only matters when a test
// fails: passing tests never wait for it.
const waitFor = 10 * time.Second

// ctxFor is a context that ends after waitFor, cancelled with the test.
func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// panicWatch is a slog.Handler that remembers every record that mentions a
// panic (the server recovers handler and middleware panics and logs them
// at Error): a recovered panic is still a bug in this suite. With
// SOCKSTREAM_TEST_LOG set it also prints everything.
type panicWatch struct {
	mu     *sync.Mutex
	panics *[]string
	out    slog.Handler // nil: print nothing
	attrs  []slog.Attr
}

func newPanicWatch() *panicWatch {
	w := &panicWatch{mu: new(sync.Mutex), panics: new([]string)}
	if os.Getenv("SOCKSTREAM_TEST_LOG") != "" {
		w.out = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return w
}

func (w *panicWatch) Enabled(_ context.Context, l slog.Level) bool {
	return w.out != nil || l >= slog.LevelError
}

func (w *panicWatch) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(strings.ToLower(r.Message), "panic") {
		line := r.Message
		r.Attrs(func(a slog.Attr) bool {
			line += " " + a.String()
			return true
		})
		w.mu.Lock()
		*w.panics = append(*w.panics, line)
		w.mu.Unlock()
	}
	if w.out != nil {
		return w.out.Handle(ctx, r)
	}
	return nil
}

func (w *panicWatch) WithAttrs(as []slog.Attr) slog.Handler {
	c := *w
	c.attrs = append(append([]slog.Attr(nil), w.attrs...), as...)
	if w.out != nil {
		c.out = w.out.WithAttrs(as)
	}
	return &c
}

func (w *panicWatch) WithGroup(name string) slog.Handler {
	c := *w
	if w.out != nil {
		c.out = w.out.WithGroup(name)
	}
	return &c
}

func (w *panicWatch) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), *w.panics...)
}

// harness is one server under attack, on 127.0.0.1:0.
//
// Its sockets are named by their CONNECT auth payload ({"name":…});
// auth {"join":true} puts the socket in the room "room". Every socket
// answers "echo" by acknowledging with the event's arguments.
type harness struct {
	t    testing.TB
	srv  *server.Server
	reg  *prometheus.Registry
	addr string // host:port
	base string // http://host:port
	url  string // http://host:port/socket.io/
	log  *panicWatch

	mu      sync.Mutex
	reasons map[string]chan string // disconnect reasons, by name
	// connected signals, by name, that OnConnection has run (room
	// joined). It holds no Socket: a test's channel must not keep a gone
	// client's memory alive.
	connected map[string]chan struct{}

	cancel context.CancelFunc
	done   chan error
}

// start serves a server built from cfg; setup, if not nil, registers more
// handlers before it serves. Everything stops when the test ends, and the
// test fails if the server logged a panic.
func start(t testing.TB, cfg server.Config, setup func(*harness)) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		reg:       prometheus.NewRegistry(),
		log:       newPanicWatch(),
		reasons:   map[string]chan string{},
		connected: map[string]chan struct{}{},
		done:      make(chan error, 1),
	}
	cfg.Logger = slog.New(h.log)
	cfg.Registry = h.reg
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	h.srv = srv
	srv.OnConnection(func(s *server.Socket) {
		name, _ := s.Handshake().Auth["name"].(string)
		if join, _ := s.Handshake().Auth["join"].(bool); join {
			s.Join("room")
		}
		s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
		s.OnDisconnect(func(reason string) {
			select {
			case h.reasonCh(name) <- reason:
			default:
			}
		})
		select {
		case h.connectedCh(name) <- struct{}{}:
		default:
		}
	})
	if setup != nil {
		setup(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.base = "http://" + h.addr
	h.url = h.base + "/socket.io/"
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(2 * waitFor):
			t.Errorf("Serve did not return %v after its context ended", 2*waitFor)
		}
		for _, p := range h.log.seen() {
			t.Errorf("the server logged a panic: %s", p)
		}
	})
	return h
}

func (h *harness) reasonCh(name string) chan string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.reasons[name]
	if c == nil {
		c = make(chan string, 8)
		h.reasons[name] = c
	}
	return c
}

func (h *harness) connectedCh(name string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.connected[name]
	if c == nil {
		c = make(chan struct{}, 8)
		h.connected[name] = c
	}
	return c
}

// reason waits for the disconnect reason of the socket named name.
func (h *harness) reason(t testing.TB, name string) string {
	t.Helper()
	select {
	case r := <-h.reasonCh(name):
		return r
	case <-time.After(waitFor):
		t.Fatalf("socket %q was not disconnected within %v", name, waitFor)
		return ""
	}
}

// wantReason fails unless the socket named name is disconnected with one
// of want.
func (h *harness) wantReason(t testing.TB, name string, want ...string) {
	t.Helper()
	got := h.reason(t, name)
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Errorf("socket %q disconnected with %q, want %q", name, got, want)
}

// noReason fails if the socket named name was disconnected.
func (h *harness) noReason(t testing.TB, name string) {
	t.Helper()
	select {
	case r := <-h.reasonCh(name):
		t.Errorf("socket %q was disconnected (%q); only the offender should be", name, r)
	default:
	}
}

// joined waits until the OnConnection handler of the socket named name
// has run (its room joined).
func (h *harness) joined(t testing.TB, name string) {
	t.Helper()
	select {
	case <-h.connectedCh(name):
	case <-time.After(waitFor):
		t.Fatalf("socket %q did not connect within %v", name, waitFor)
	}
}

// gauge reads a gauge or counter of the server's registry (the sum of its
// series).
func (h *harness) gauge(t testing.TB, name string) float64 {
	t.Helper()
	return h.labelled(t, name, "", "")
}

// labelled is the value of the metric name whose label has value, summed
// over its series; with label "" every series counts.
func (h *harness) labelled(t testing.TB, name, label, value string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if match {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// waitSessions waits until the server has n Engine.IO sessions open.
func (h *harness) waitSessions(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := int(h.gauge(t, "sockstream_engine_connections"))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Engine.IO sessions open after %v, want %d", got, waitFor, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get is a plain HTTP GET on the server (for /readyz and such).
func (h *harness) get(t testing.TB, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// ---- the well-behaved client ----

// goodClient is a well-behaved client on a WebSocket: a reader goroutine
// of its own answers every PING, counts the broadcasts it receives and
// hands the acknowledgements to roundTrip. It stops when the test ends.
type goodClient struct {
	h    *harness
	name string
	ws   *eiotest.WS

	wmu    sync.Mutex // writes: the test's and the reader's PONGs
	acks   chan string
	floods atomic.Int64 // `42["flood",…` frames received
	done   chan struct{}
	err    atomic.Pointer[error] // why the reader stopped
	nextID atomic.Int64
}

// good connects a well-behaved client, named "good" (in the room "room")
// unless name says otherwise.
func (h *harness) good(t testing.TB, name ...string) *goodClient {
	t.Helper()
	g := &goodClient{h: h, name: "good", acks: make(chan string, 16), done: make(chan struct{})}
	if len(name) > 0 {
		g.name = name[0]
	}
	ctx := ctxFor(t)
	g.ws = h.joinWS(t, ctx, g.name, true)
	h.joined(t, g.name)
	go g.read()
	t.Cleanup(func() {
		_ = g.ws.Close()
		<-g.done
	})
	return g
}

func (g *goodClient) read() {
	defer close(g.done)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		f, err := g.ws.Read(ctx)
		cancel()
		if err != nil {
			g.err.Store(&err)
			return
		}
		s := f.String()
		switch {
		case s == "2":
			g.wmu.Lock()
			err = g.ws.Send("3")
			g.wmu.Unlock()
			if err != nil {
				g.err.Store(&err)
				return
			}
		case strings.HasPrefix(s, `42["flood"`):
			g.floods.Add(1)
		case strings.HasPrefix(s, "43"):
			select {
			case g.acks <- s:
			default: // not one roundTrip waits for: dropped
			}
		}
	}
}

func (g *goodClient) send(text string) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.ws.Send(text)
}

// roundTrip sends an event with an ack id and waits (at most waitFor) for
// its acknowledgement: the client is still served.
func (g *goodClient) roundTrip(t testing.TB) {
	t.Helper()
	id := g.nextID.Add(1)
	if err := g.send(fmt.Sprintf(`42%d["echo",%d]`, id, id)); err != nil {
		t.Fatalf("%s: send: %v", g.name, err)
	}
	want := fmt.Sprintf("43%d[%d]", id, id)
	deadline := time.After(waitFor)
	for {
		select {
		case a := <-g.acks:
			if a == want {
				return
			}
		case <-g.done:
			t.Fatalf("%s: connection lost before the ack of %d: %v", g.name, id, *g.err.Load())
		case <-deadline:
			t.Fatalf("%s: no ack of %d within %v", g.name, id, waitFor)
		}
	}
}

// alive asserts that the good client is served and was not disconnected.
func (g *goodClient) alive(t testing.TB) {
	t.Helper()
	g.roundTrip(t)
	g.h.noReason(t, g.name)
}

// ---- offenders ----

// dialWS opens a WebSocket session and reads its open packet.
func (h *harness) dialWS(t testing.TB, ctx context.Context) *eiotest.WS {
	t.Helper()
	ws, err := eiotest.DialWS(ctx, h.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	f, err := ws.ReadText(ctx)
	if err != nil || !strings.HasPrefix(f, "0{") {
		t.Fatalf("open packet: %q, %v", f, err)
	}
	return ws
}

// joinWS opens a WebSocket session and joins "/" as name (in the room
// "room" with join), reading frames until the CONNECT reply.
func (h *harness) joinWS(t testing.TB, ctx context.Context, name string, join bool) *eiotest.WS {
	t.Helper()
	ws := h.dialWS(t, ctx)
	if err := ws.Send(connectPacket(name, join)); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := ws.ReadText(ctx)
		if err != nil {
			t.Fatalf("%s: CONNECT reply: %v", name, err)
		}
		if strings.HasPrefix(f, "40{") {
			return ws
		}
	}
}

func connectPacket(name string, join bool) string {
	return fmt.Sprintf(`40{"name":%q,"join":%v}`, name, join)
}

// poller opens a polling session.
func (h *harness) poller(t testing.TB, ctx context.Context) *eiotest.Poller {
	t.Helper()
	p := &eiotest.Poller{URL: h.url, Client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(p.Client.CloseIdleConnections)
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// joinPoll opens a polling session and joins "/" as name, without reading
// the reply.
func (h *harness) joinPoll(t testing.TB, ctx context.Context, name string, join bool) *eiotest.Poller {
	t.Helper()
	p := h.poller(t, ctx)
	r, err := p.Post(ctx, connectPacket(name, join))
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("%s: POST CONNECT: %v, %v", name, r, err)
	}
	return p
}

// wsClosed reads (and ignores) frames until the server closes the
// connection; it returns the close code (0 when the connection ended
// without a close frame).
func wsClosed(t testing.TB, ctx context.Context, ws *eiotest.WS) int {
	t.Helper()
	for {
		_, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, eiotest.ErrClosed) {
			t.Fatalf("waiting for the server to close the connection: %v", err)
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return 0
	}
}

// ---- raw WebSocket, for frames a library will not write ----

// rawWS is a WebSocket connection written frame by frame.
type rawWS struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialRawWS opens a WebSocket session over a raw TCP connection and reads
// its open packet.
func (h *harness) dialRawWS(t testing.TB) *rawWS {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	var k [16]byte
	_, _ = rand.Read(k[:])
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + h.addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(k[:]) + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	w := &rawWS{conn: conn, br: bufio.NewReader(conn)}
	res, err := http.ReadResponse(w.br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw WebSocket upgrade: %v, %v", res, err)
	}
	op, p, err := w.read()
	if err != nil || op != 1 || !strings.HasPrefix(string(p), "0{") {
		t.Fatalf("raw WebSocket open packet: %d %q %v", op, p, err)
	}
	return w
}

// header writes a frame header announcing length bytes, masked with a
// zero key (so the payload goes as is).
func (w *rawWS) header(fin bool, op byte, length uint64) error {
	b := []byte{op, 0x80}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case length < 126:
		b[1] |= byte(length)
	case length <= 0xFFFF:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(length))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, length)
	}
	b = append(b, 0, 0, 0, 0)
	_, err := w.conn.Write(b)
	return err
}

// frame writes one whole frame.
func (w *rawWS) frame(op byte, payload []byte) error {
	if err := w.header(true, op, uint64(len(payload))); err != nil {
		return err
	}
	_, err := w.conn.Write(payload)
	return err
}

// read returns the next frame of the server (op, payload).
func (w *rawWS) read() (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(w.br, p)
	return h[0] & 0x0F, p, err
}

// closeCode reads until the server's close frame and returns its code
// (-1 when the connection ended without one).
func (w *rawWS) closeCode(t testing.TB) int {
	t.Helper()
	_ = w.conn.SetReadDeadline(time.Now().Add(waitFor))
	for {
		op, p, err := w.read()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return -1
			}
			t.Fatalf("waiting for the close frame: %v", err)
		}
		if op == 8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
		if op == 1 && string(p) == "2" {
			_ = w.frame(1, []byte("3"))
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// ---- raw HTTP ----

// rawHTTP sends req (a whole HTTP/1.1 request, or its beginning) on a new
// TCP connection and returns the connection and a reader of its answers.
func (h *harness) rawHTTP(t testing.TB, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// readStatus reads one HTTP response and returns its status and body.
func readStatus(t testing.TB, br *bufio.Reader) (int, string) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// postHead is the head of a POST to the session sid with the given
// extra header lines (each ending in \r\n).
func (h *harness) postHead(sid, headers string) string {
	return "POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: " + h.addr +
		"\r\nContent-Type: text/plain;charset=UTF-8\r\n" + headers + "\r\n"
}

func itoa(n int) string { return strconv.Itoa(n) }

// waitUntil polls cond until it holds, at most waitFor.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readStatusKeep reads the head of one HTTP response (a 101, whose
// connection goes on) and returns its status.
func readStatusKeep(t testing.TB, br *bufio.Reader) (int, http.Header) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return res.StatusCode, res.Header
}
