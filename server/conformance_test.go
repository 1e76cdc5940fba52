package server_test

// Raw-frame tests of the protocol behaviours the official socket.io-protocol
// suite checks (see docs/compatibility.md), against server.Server configured
// as its README asks. Identifiers here start with "conf" to stay clear of the
// other test files of this package.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

const (
	confPingInterval = 300 * time.Millisecond
	confPingTimeout  = 200 * time.Millisecond
	confMaxPayload   = 1_000_000
	confWait         = 10 * time.Second
)

// confServer starts a server configured as the suite's README asks, with its
// handlers: "auth" emitted back on connection to / and /custom, "message"
// answered with "message-back", "message-with-ack" acked with its arguments.
//
// Tests that need the client to answer in time raise the ping timeout with
// edit: a PONG late on a loaded machine must not fail them.
func confServer(t *testing.T, connectTimeout time.Duration, edit ...func(*server.Config)) (*server.Server, string) {
	t.Helper()
	cfg := server.Config{
		CORSOrigins:    []string{"*"},
		PingInterval:   confPingInterval,
		PingTimeout:    confPingTimeout,
		ConnectTimeout: connectTimeout,
		MaxPayload:     confMaxPayload,
		Logger:         slog.New(slog.DiscardHandler),
	}
	for _, e := range edit {
		e(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	onConnection := func(s *server.Socket) {
		_ = s.Emit("auth", s.Handshake().Auth)
		s.On("message", func(e *server.Event) { _ = s.Emit("message-back", e.Args...) })
		s.On("message-with-ack", func(e *server.Event) { e.Ack(e.Args...) })
	}
	srv.OnConnection(onConnection)
	srv.Of("/custom").OnConnection(onConnection)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), confWait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	return srv, hs.URL + "/socket.io/"
}

func confContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), confWait)
	t.Cleanup(cancel)
	return ctx
}

// confDial opens a WebSocket session and reads its OPEN packet.
func confDial(t *testing.T, ctx context.Context, url string) (*eiotest.WS, eiotest.Open) {
	t.Helper()
	ws, err := eiotest.DialWS(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	open, err := ws.ReadText(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o, err := eiotest.ParseOpen(open)
	if err != nil {
		t.Fatal(err)
	}
	return ws, o
}

// confConnect joins namespace prefix ("" for /, "/custom," …) with the given
// CONNECT payload and returns the auth the server emitted back.
func confConnect(t *testing.T, ctx context.Context, ws *eiotest.WS, prefix, payload string) string {
	t.Helper()
	confSend(t, ws, "40"+prefix+payload)
	got := confRead(t, ctx, ws)
	if !strings.HasPrefix(got, "40"+prefix) {
		t.Fatalf("CONNECT answered %q, want 40%s{sid}", got, prefix)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(got[2+len(prefix):]), &fields); err != nil {
		t.Fatalf("CONNECT reply %q: %v", got, err)
	}
	if _, ok := fields["sid"].(string); !ok || len(fields) != 1 {
		t.Errorf("CONNECT reply %q, want exactly {\"sid\":string}", got)
	}
	return confRead(t, ctx, ws)
}

func confSend(t *testing.T, ws *eiotest.WS, text string) {
	t.Helper()
	if err := ws.Send(text); err != nil {
		t.Fatal(err)
	}
}

func confRead(t *testing.T, ctx context.Context, ws *eiotest.WS) string {
	t.Helper()
	got, err := ws.ReadText(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestConformanceHandshake(t *testing.T) {
	_, url := confServer(t, time.Second)
	ctx := confContext(t)
	p := &eiotest.Poller{URL: url}
	o, err := p.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := eiotest.Open{SID: o.SID, Upgrades: []string{"websocket"}, PingInterval: 300, PingTimeout: 200, MaxPayload: confMaxPayload}
	if o.SID == "" || strings.Join(o.Upgrades, ",") != "websocket" || o.PingInterval != 300 || o.PingTimeout != 200 || o.MaxPayload != confMaxPayload {
		t.Errorf("polling handshake %+v, want %+v", o, want)
	}
	_, o = confDial(t, ctx, url)
	if o.SID == "" || len(o.Upgrades) != 0 || o.PingInterval != 300 || o.PingTimeout != 200 || o.MaxPayload != confMaxPayload {
		t.Errorf("websocket handshake %+v, want upgrades [] and the same timings", o)
	}
	// Node's code for an unsupported revision is 5 (zishang520's engine sent 4).
	if r, err := p.Do(ctx, http.MethodGet, "EIO=3&transport=polling", nil); err != nil ||
		r.Status != http.StatusBadRequest || r.Body != `{"code":5,"message":"Unsupported protocol version"}` {
		t.Errorf("GET ?EIO=3 = %+v, %v; want 400 with code 5", r, err)
	}
	for _, q := range []string{"transport=polling", "EIO=abc&transport=polling", "EIO=4", "EIO=4&transport=abc"} {
		if r, err := p.Do(ctx, http.MethodGet, q, nil); err != nil || r.Status != http.StatusBadRequest {
			t.Errorf("GET ?%s = %+v, %v; want 400", q, r, err)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		if r, err := p.Do(ctx, m, "EIO=4&transport=polling", strings.NewReader("")); err != nil || r.Status != http.StatusBadRequest {
			t.Errorf("%s handshake = %+v, %v; want 400", m, r, err)
		}
	}
}

// confPatient gives the client a long time to answer a PING.
func confPatient(c *server.Config) { c.PingTimeout = confWait }

func TestConformancePingPong(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	p := &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r, err := p.Get(ctx)
		if err != nil || r.Status != http.StatusOK || r.Body != "2" {
			t.Fatalf("poll %d = %+v, %v; want the PING \"2\"", i, r, err)
		}
		if r, err := p.Post(ctx, "3"); err != nil || r.Status != http.StatusOK {
			t.Fatalf("PONG %d = %+v, %v", i, r, err)
		}
	}
	ws, _ := confDial(t, ctx, url)
	for i := range 3 {
		f, err := ws.Read(ctx)
		if err != nil || f.String() != "2" {
			t.Fatalf("frame %d = %v, %v; want the PING \"2\"", i, f, err)
		}
		confSend(t, ws, "3")
	}
}

func TestConformancePingTimeoutClosesSession(t *testing.T) {
	_, url := confServer(t, time.Minute)
	ctx := confContext(t)
	p := &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	// Never answer the PING: the polls see it, then the CLOSE, or the NOOP
	// with which a closing polling transport releases a pending poll (as
	// Node's does), or the end of the session if it closed between two
	// polls, then 400.
	for {
		r, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == http.StatusBadRequest {
			break
		}
		if r.Status != http.StatusOK || (r.Body != "2" && r.Body != "1" && r.Body != "6") {
			t.Fatalf("poll = %+v, want the PING, the CLOSE, a NOOP or 400", r)
		}
	}
	ws, err := eiotest.DialWS(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for {
		f, err := ws.Read(ctx)
		if err != nil {
			if !errors.Is(err, eiotest.ErrClosed) {
				t.Fatal(err)
			}
			break
		}
		if s := f.String(); s != "2" && !strings.HasPrefix(s, "0") {
			t.Fatalf("frame %q while waiting for the ping timeout", s)
		}
	}
}

func TestConformanceInvalidEnginePacketClosesSession(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	p := &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Post(ctx, "abc"); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("POST \"abc\" = %+v, %v; want 400", r, err)
	}
	if r, err := p.Get(ctx); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("poll after an invalid payload = %+v, %v; want 400", r, err)
	}
	ws, _ := confDial(t, ctx, url)
	confSend(t, ws, "abc")
	if err := ws.WaitClosed(ctx); err != nil {
		t.Error(err)
	}
}

func TestConformanceAuth(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	cases := []struct{ prefix, payload, want string }{
		{"", "", `42["auth",{}]`},
		{"", `{"token":"123"}`, `42["auth",{"token":"123"}]`},
		{"/custom,", "", `42/custom,["auth",{}]`},
		{"/custom,", `{"token":"abc"}`, `42/custom,["auth",{"token":"abc"}]`},
	}
	for _, c := range cases {
		ws, _ := confDial(t, ctx, url)
		// Node sends {} (never null) when the client sent no payload.
		if got := confConnect(t, ctx, ws, c.prefix, c.payload); got != c.want {
			t.Errorf("CONNECT %q%q: auth packet %q, want %q", c.prefix, c.payload, got, c.want)
		}
	}
	// The same over long-polling.
	p := &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Post(ctx, "40"); err != nil || r.Status != http.StatusOK {
		t.Fatalf("POST CONNECT = %+v, %v", r, err)
	}
	var packets []string
	for len(packets) < 2 {
		r, err := p.Get(ctx)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("poll = %+v, %v", r, err)
		}
		packets = append(packets, strings.Split(r.Body, "\x1e")...)
	}
	if !strings.HasPrefix(packets[0], `40{"sid":"`) || packets[1] != `42["auth",{}]` {
		t.Errorf("polling CONNECT replies %q, want 40{sid} then 42[\"auth\",{}]", packets)
	}
}

func TestConformanceNamespaces(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	ws, _ := confDial(t, ctx, url)
	confSend(t, ws, "40/random")
	if got := confRead(t, ctx, ws); got != `44/random,{"message":"Invalid namespace"}` {
		t.Errorf("unknown namespace: %q", got)
	}

	ws, _ = confDial(t, ctx, url)
	confConnect(t, ctx, ws, "", "")
	confConnect(t, ctx, ws, "/custom,", "")
	confSend(t, ws, "41/custom,")
	confSend(t, ws, `42["message","message to main namespace"]`)
	if got := confRead(t, ctx, ws); got != `42["message-back","message to main namespace"]` {
		t.Errorf("message after leaving /custom: %q", got)
	}
	confSend(t, ws, "41")
	// Nothing answers a DISCONNECT; the next frame is the PING.
	if f, err := ws.Read(ctx); err != nil || f.String() != "2" {
		t.Errorf("after DISCONNECT: %v, %v; want the PING", f, err)
	}
}

func TestConformanceMessages(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	ws, _ := confDial(t, ctx, url)
	confConnect(t, ctx, ws, "", "")

	confSend(t, ws, `42["message",1,"2",{"3":[true]}]`)
	if got := confRead(t, ctx, ws); got != `42["message-back",1,"2",{"3":[true]}]` {
		t.Errorf("message-back: %q", got)
	}
	confSend(t, ws, `42456["message-with-ack",1,"2",{"3":[false]}]`)
	if got := confRead(t, ctx, ws); got != `43456[1,"2",{"3":[false]}]` {
		t.Errorf("ack: %q", got)
	}

	binary := func(header, want string) {
		t.Helper()
		confSend(t, ws, header)
		for _, b := range [][]byte{{1, 2, 3}, {4, 5, 6}} {
			if err := ws.SendBinary(b); err != nil {
				t.Fatal(err)
			}
		}
		if got := confRead(t, ctx, ws); got != want {
			t.Errorf("binary reply header %q, want %q", got, want)
		}
		for _, b := range [][]byte{{1, 2, 3}, {4, 5, 6}} {
			f, err := ws.Read(ctx)
			if err != nil || !f.Binary || !bytes.Equal(f.Data, b) {
				t.Errorf("attachment = %v, %v; want binary%v", f, err, b)
			}
		}
	}
	binary(`452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
		`452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
	binary(`452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`,
		`462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`)
}

func TestConformanceInvalidSocketIOPacketsClose(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	// Before any CONNECT (an invalid handshake).
	ws, _ := confDial(t, ctx, url)
	confSend(t, ws, "4abc")
	if err := ws.WaitClosed(ctx); err != nil {
		t.Errorf("4abc before CONNECT: %v", err)
	}
	for _, bad := range []string{"4abc", "42{}", `42abc["message-with-ack",1,"2",{"3":[false]}]`} {
		ws, _ := confDial(t, ctx, url)
		confConnect(t, ctx, ws, "", "")
		confSend(t, ws, bad)
		if err := ws.WaitClosed(ctx); err != nil {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestConformanceConnectTimeout(t *testing.T) {
	_, url := confServer(t, 300*time.Millisecond, confPatient)
	ctx := confContext(t)
	ws, _ := confDial(t, ctx, url)
	// No CONNECT: the server closes the connection after ConnectTimeout.
	if err := ws.WaitClosed(ctx); err != nil {
		t.Error(err)
	}
}

func TestConformanceMaxPayload(t *testing.T) {
	_, url := confServer(t, time.Minute, confPatient)
	ctx := confContext(t)
	p := &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	big := `42["message","` + strings.Repeat("x", confMaxPayload) + `"]`
	if r, err := p.Post(ctx, big); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST over maxPayload = %d, %v; want 413", r.Status, err)
	}
	// The session that sent too much is closed (docs/compatibility.md):
	// the chunked case on a session of its own.
	p = &eiotest.Poller{URL: url}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := p.PostReader(ctx, io.MultiReader(strings.NewReader(big))); err != nil || r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST over maxPayload = %d, %v; want 413", r.Status, err)
	}
	ws, _ := confDial(t, ctx, url)
	confConnect(t, ctx, ws, "", "")
	// At the limit the message goes through.
	fits := `42["message","` + strings.Repeat("x", confMaxPayload-len(`42["message",""]`)) + `"]`
	confSend(t, ws, fits)
	if got := confRead(t, ctx, ws); !strings.HasPrefix(got, `42["message-back","xxx`) {
		t.Errorf("message at maxPayload: reply %.40q…", got)
	}
	confSend(t, ws, big)
	if err := ws.WaitClosed(ctx); err != nil {
		t.Errorf("frame over maxPayload: %v", err)
	}
}
