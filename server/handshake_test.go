package server_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sockstream/sockstream/server"
)

// TestSocketHandshake: Socket.Handshake gives the handshake request as
// net/http read it (every header, repeated ones and long ones included, the
// query, the address, the URL, the time), from the compact record the
// connection keeps; each call builds new Headers and Query, the auth
// payload is the client's. FetchSockets gives the same in Node's shape.
func TestSocketHandshake(t *testing.T) {
	t.Parallel()
	type request struct {
		header      http.Header
		query       url.Values
		remote, uri string
	}
	reqs := make(chan request, 4)
	socks := make(chan *server.Socket, 4)
	ts := startServer(t, server.Config{AllowRequest: func(r *http.Request) error {
		reqs <- request{r.Header.Clone(), r.URL.Query(), r.RemoteAddr, r.RequestURI}
		return nil
	}}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) { socks <- s })
	})

	connect := func(connectPacket string) (*websocket.Conn, request, *server.Socket) {
		t.Helper()
		hdr := http.Header{
			"User-Agent": {"handshake-test"},
			"X-Multi":    {"one", "two"},
			"Cookie":     {"a=1; b=2"},
			"X-Long":     {strings.Repeat("v", 300)},
			"X-Empty":    {""},
		}
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+ts.addr+"/socket.io/?EIO=4&transport=websocket&room=r1&multi=a&multi=b&e=%20x%26", hdr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, open, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
			t.Fatalf("open packet %q: %v", open, err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(connectPacket)); err != nil {
			t.Fatal(err)
		}
		if _, reply, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(reply), "40{") {
			t.Fatalf("CONNECT answer %q: %v", reply, err)
		}
		var req request
		select {
		case req = <-reqs:
		case <-time.After(10 * time.Second):
			t.Fatal("no handshake request seen")
		}
		select {
		case s := <-socks:
			return ws, req, s
		case <-time.After(10 * time.Second):
			t.Fatal("no connection")
		}
		return nil, request{}, nil
	}

	before := time.Now()
	_, req, s := connect(`40{"token":"t1"}`)
	after := time.Now()
	h := s.Handshake()
	if !reflect.DeepEqual(h.Headers, req.header) {
		t.Errorf("Headers\n got %q\nwant %q", h.Headers, req.header)
	}
	if h.Headers.Get("X-Long") != strings.Repeat("v", 300) || len(h.Headers["X-Multi"]) != 2 {
		t.Errorf("Headers %q: not the client's", h.Headers)
	}
	if !reflect.DeepEqual(h.Query, req.query) || h.Query.Get("e") != " x&" {
		t.Errorf("Query %q, want %q", h.Query, req.query)
	}
	if h.Address != req.remote || h.URL != req.uri || h.Secure {
		t.Errorf("Address %q URL %q Secure %v; the request's: %q %q", h.Address, h.URL, h.Secure, req.remote, req.uri)
	}
	if h.Time.Before(before) || h.Time.After(after) {
		t.Errorf("Time %v, not between %v and %v", h.Time, before, after)
	}
	if !reflect.DeepEqual(h.Auth, map[string]any{"token": "t1"}) {
		t.Errorf("Auth %v", h.Auth)
	}

	// New Headers and Query on each call; the same Auth.
	h.Headers.Set("X-Multi", "changed")
	h.Query.Set("room", "changed")
	h.Auth["seen"] = true
	h2 := s.Handshake()
	if !reflect.DeepEqual(h2.Headers, req.header) || !reflect.DeepEqual(h2.Query, req.query) {
		t.Errorf("a change to one Handshake's maps is seen by the next: %q %q", h2.Headers, h2.Query)
	}
	if h2.Auth["seen"] != true {
		t.Errorf("Auth %v: not the same map", h2.Auth)
	}

	// FetchSockets: Node's shape (lower-case names, values joined, the
	// host among the headers, the address without its port).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	remote, err := ts.FetchSockets(ctx)
	if err != nil || len(remote) != 1 || remote[0].ID() != s.ID() {
		t.Fatalf("FetchSockets: %v, %d sockets", err, len(remote))
	}
	rh := remote[0].Handshake()
	if rh.Headers.Get("X-Multi") != "one, two" || rh.Headers.Get("Host") != ts.addr || rh.Headers.Get("User-Agent") != "handshake-test" {
		t.Errorf("FetchSockets headers %q", rh.Headers)
	}
	if !reflect.DeepEqual(rh.Query["multi"], []string{"a", "b"}) || rh.Query.Get("room") != "r1" {
		t.Errorf("FetchSockets query %q", rh.Query)
	}
	if rh.Address != "127.0.0.1" || rh.URL != req.uri || rh.Auth["token"] != "t1" || rh.Time.UnixMilli() != h.Time.UnixMilli() {
		t.Errorf("FetchSockets handshake %+v", rh)
	}

	// No auth payload: Auth is an empty map, never nil.
	_, _, s2 := connect("40")
	a := s2.Handshake().Auth
	if a == nil || len(a) != 0 {
		t.Errorf("Auth %v without a payload, want {}", a)
	}
	a["x"] = 1 // a new map each call: harmless
	if a2 := s2.Handshake().Auth; a2 == nil || len(a2) != 0 {
		t.Errorf("Auth %v after a change to another call's", a2)
	}
}
