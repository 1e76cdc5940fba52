package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sockstream/sockstream/internal/eiotest"
	"github.com/sockstream/sockstream/server"
)

// TestSlowConsumer floods a room in which one client never reads: that
// client is disconnected with the reason "slow consumer" once what waits for
// it passes MaxBufferedBytes, the server's heap stays far below what the
// flood would have queued for it, and the client that reads receives every
// message, in order. Not parallel: it measures the process's heap.
func TestSlowConsumer(t *testing.T) {
	const (
		messages = 2000
		size     = 20 << 10 // 40 MB in all
		bound    = 1 << 20
	)
	connected := make(chan *server.Socket, 2)
	reasons := make(chan string, 2)
	srv, err := server.New(server.Config{Logger: quiet(), MaxBufferedBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.Join("flood")
		s.OnDisconnect(func(reason string) { reasons <- reason })
		connected <- s
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	url := hs.URL + "/socket.io/"
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()

	dial := func() *eiotest.WS {
		ws, err := eiotest.DialWS(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.Close() })
		if _, err := ws.ReadText(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ws.Send("40"); err != nil {
			t.Fatal(err)
		}
		return ws
	}
	slow := dial() // never read again
	_ = slow
	slowSock := recv(t, connected, "the slow client's connection")
	reader := dial()
	readerSock := recv(t, connected, "the reader's connection")
	if f, err := reader.ReadText(ctx); err != nil || !strings.HasPrefix(f, "40") {
		t.Fatalf("reader: CONNECT reply %q, %v", f, err)
	}

	var received atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for n := 0; n < messages; {
			f, err := reader.ReadText(ctx)
			if err != nil {
				readErr <- fmt.Errorf("after %d messages: %w", n, err)
				return
			}
			if f == "2" {
				_ = reader.Send("3")
				continue
			}
			if want := fmt.Sprintf(`42["m",%d,`, n); !strings.HasPrefix(f, want) {
				readErr <- fmt.Errorf("message %d: got %.20q, want %s…", n, f, want)
				return
			}
			n++
			received.Store(int64(n))
		}
		readErr <- nil
	}()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	payload := strings.Repeat("x", size)
	for i := range messages {
		if err := srv.To("flood").Emit("m", i, payload); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		// Let the reader keep up: the bound is per client, and the
		// reader must stay under it too (20 messages, 400 KB).
		for received.Load() < int64(i-20) {
			select {
			case err := <-readErr:
				t.Fatalf("reader: %v", err)
			default:
				runtime.Gosched()
			}
		}
	}
	if err := recv(t, readErr, "the reader's messages"); err != nil {
		t.Fatalf("reader: %v", err)
	}
	if r := recv(t, reasons, "the slow client's disconnection"); r != "slow consumer" {
		t.Errorf("slow client disconnected with %q, want slow consumer", r)
	}
	if slowSock.Connected() {
		t.Error("the slow client is still connected")
	}
	if !readerSock.Connected() {
		t.Error("the reader was disconnected")
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use: %.1f MB before the flood, peak growth %.1f MB (the flood is %.0f MB)", float64(base)/1e6, float64(growth)/1e6, float64(messages*size)/1e6)
	if growth > 16<<20 {
		t.Errorf("heap grew by %d bytes during the flood: the slow client's queue is not bounded", growth)
	}
}
