package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sockstream/sockstream/internal/servetest"
	"github.com/sockstream/sockstream/server"
)

func TestRunRejectsBadFlags(t *testing.T) {
	if err := run(context.Background(), []string{"-no-such-flag"}); err == nil {
		t.Fatal("run accepted an unknown flag")
	}
	if err := run(context.Background(), []string{"-ping-interval", "soon"}); err == nil {
		t.Fatal("run accepted a malformed duration")
	}
}

// dialRoom connects a raw Engine.IO v4 WebSocket client to room and
// returns it once the namespace CONNECT is answered.
func dialRoom(t *testing.T, addr, room string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket&room="+room, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	expect(t, c, "0")
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "40")
	return c
}

// expect reads frames until one starts with prefix, answering pings.
func expect(t *testing.T, c *websocket.Conn, prefix string) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(string(msg), prefix) {
			return string(msg)
		}
	}
}

func TestAppBroadcastsToTheRoomAndEchoes(t *testing.T) {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mount(srv)
	addr := strings.TrimPrefix(servetest.Serve(t, srv), "http://")

	a, b, other := dialRoom(t, addr, "r1"), dialRoom(t, addr, "r1"), dialRoom(t, addr, "r2")
	// The echo acks prove each connection handler ran (the room is joined).
	for i, c := range []*websocket.Conn{a, b, other} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`421["echo","hi",2]`)); err != nil {
			t.Fatal(err)
		}
		if got := expect(t, c, "431"); got != `431["hi",2]` {
			t.Fatalf("client %d: echo ack %s", i, got)
		}
	}
	if err := a.WriteMessage(websocket.TextMessage, []byte(`42["bcast","one"]`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := expect(t, c, "42"); got != `42["m","one"]` {
			t.Fatalf("broadcast received as %s", got)
		}
	}
	if err := other.WriteMessage(websocket.TextMessage, []byte(`42["bcast","two"]`)); err != nil {
		t.Fatal(err)
	}
	// r2's own broadcast is the first event its client sees: "one" never
	// reached it.
	if got := expect(t, other, "42"); got != `42["m","two"]` {
		t.Fatalf("client of room r2 received %s", got)
	}
}
