package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/eiotest"
)

// TestServesBothSuites starts the program on a free port and checks, with
// raw frames, that it serves the socket.io-protocol suite's server at
// /socket.io/ and the engine.io-protocol suite's bare engine at /engine.io/,
// both configured as the suites' READMEs ask, and that it stops cleanly.
func TestServesBothSuites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"-addr", "127.0.0.1:0"}, ready) }()
	var base string
	select {
	case addrs := <-ready:
		base = "http://" + addrs[0].String()
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	for _, path := range []string{"/socket.io/", "/engine.io/"} {
		p := &eiotest.Poller{URL: base + path}
		o, err := p.Handshake(ctx)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.PingInterval != 300 || o.PingTimeout != 200 || o.MaxPayload != 1_000_000 || len(o.Upgrades) != 1 {
			t.Errorf("%s handshake %+v, want 300/200/1000000 and the websocket upgrade", path, o)
		}
	}

	// /engine.io/ (internal/eio) echoes over both transports and closes a
	// session on an invalid payload.
	p := &eiotest.Poller{URL: base + "/engine.io/"}
	if _, err := p.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Post(ctx, "4hello\x1ebAQIDBA=="); err != nil || r.Status != http.StatusOK {
		t.Fatalf("POST = %+v, %v", r, err)
	}
	if r, err := p.Get(ctx); err != nil || r.Body != "4hello\x1ebAQIDBA==" {
		t.Errorf("echo over polling = %+v, %v", r, err)
	}
	if r, err := p.Post(ctx, "abc"); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("invalid payload = %+v, %v; want 400", r, err)
	}
	if r, err := p.Get(ctx); err != nil || r.Status != http.StatusBadRequest {
		t.Errorf("poll after an invalid payload = %+v, %v; want 400", r, err)
	}
	ws, err := eiotest.DialWS(ctx, base+"/engine.io/", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, err := ws.ReadText(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ws.Send("4hello"); err != nil {
		t.Fatal(err)
	}
	if got, err := ws.ReadText(ctx); err != nil || got != "4hello" {
		t.Errorf("echo over websocket = %q, %v", got, err)
	}

	// /socket.io/ emits the auth back, {} when none was sent.
	sio, err := eiotest.DialWS(ctx, base+"/socket.io/", "")
	if err != nil {
		t.Fatal(err)
	}
	defer sio.Close()
	if _, err := sio.ReadText(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sio.Send("40"); err != nil {
		t.Fatal(err)
	}
	if _, err := sio.ReadText(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := sio.ReadText(ctx); err != nil || got != `42["auth",{}]` {
		t.Errorf("auth packet = %q, %v", got, err)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("run did not return after its context ended")
	}
}

// Without -addr the program listens on every default address; the test uses
// port 0 in place of 3000.
func TestListenDefaultsToBothLoopbacks(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	lns, err := listen(log, "", []string{"127.0.0.1:0", "[::1]:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(lns)
	var v4, v6 bool
	for _, ln := range lns {
		ip := ln.Addr().(*net.TCPAddr).IP
		v4 = v4 || ip.Equal(net.IPv4(127, 0, 0, 1))
		v6 = v6 || ip.Equal(net.IPv6loopback)
	}
	if !v4 || !v6 {
		t.Errorf("listening on %v, want 127.0.0.1 and ::1", lns)
	}
	for i, want := range []string{"127.0.0.1:3000", "[::1]:3000"} {
		if i >= len(defaultAddrs) || defaultAddrs[i] != want {
			t.Errorf("defaultAddrs = %q, want 127.0.0.1:3000 and [::1]:3000", defaultAddrs)
		}
	}
	// An explicit address replaces the defaults.
	one, err := listen(log, "127.0.0.1:0", []string{"127.0.0.1:0", "[::1]:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(one)
	if len(one) != 1 {
		t.Errorf("with -addr: %d listeners, want 1", len(one))
	}
}
