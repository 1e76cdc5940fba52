package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sockstream/sockstream/server"
)

// benchRoom is a server with n WebSocket clients in room "r", each counting
// the "m" events it receives.
type benchRoom struct {
	srv      *server.Server
	received atomic.Int64
	target   atomic.Int64
	reached  chan struct{}
	conns    []*websocket.Conn
	wg       sync.WaitGroup
}

func startBenchRoom(b *testing.B, n int) *benchRoom {
	b.Helper()
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.Join("r")
		s.On("ready", func(e *server.Event) { e.Ack() })
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	room := &benchRoom{srv: srv, reached: make(chan struct{}, 1)}
	b.Cleanup(func() {
		for _, c := range room.conns {
			_ = c.Close()
		}
		room.wg.Wait()
		cancel()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})

	url := "ws://" + ln.Addr().String() + "/socket.io/?EIO=4&transport=websocket"
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 32)
	var dials sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		dials.Add(1)
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			c, err := room.join(dialer, url)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			room.conns = append(room.conns, c)
		}()
	}
	dials.Wait()
	if firstErr != nil {
		b.Fatalf("client: %v", firstErr)
	}
	for _, c := range room.conns {
		room.wg.Add(1)
		go room.read(c)
	}
	return room
}

// join connects one client and waits for the ack of "ready", which comes
// after the connection handler has put the socket in the room.
func (r *benchRoom) join(dialer websocket.Dialer, url string) (*websocket.Conn, error) {
	c, _, err := dialer.Dial(url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	steps := []struct{ send, want string }{{"", "0"}, {"40", "40"}, {`421["ready"]`, "431"}}
	for _, st := range steps {
		if st.send != "" {
			if err := c.WriteMessage(websocket.TextMessage, []byte(st.send)); err != nil {
				c.Close()
				return nil, fmt.Errorf("send %s: %w", st.send, err)
			}
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("waiting for %s: %w", st.want, err)
			}
			if strings.HasPrefix(string(msg), st.want) {
				break
			}
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

var benchEvent = []byte(`42["m"`)

func (r *benchRoom) read(c *websocket.Conn) {
	defer r.wg.Done()
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case bytes.HasPrefix(msg, benchEvent):
			if r.received.Add(1) == r.target.Load() {
				select { // never block a reader: a stray signal is harmless
				case r.reached <- struct{}{}:
				default:
				}
			}
		case bytes.Equal(msg, []byte("2")):
			// Only this goroutine writes once the client has joined.
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
		}
	}
}

// BenchmarkBroadcastRoom1000 broadcasts a 100-byte event to a room of 1,000
// local sockets and waits until every client has received it: the whole
// local fan-out path (packet encoding, per-socket queues, WebSocket writes),
// with the clients' reads on the same CPUs.
func BenchmarkBroadcastRoom1000(b *testing.B) {
	const n = 1000
	room := startBenchRoom(b, n)
	payload := strings.Repeat("x", 100)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		room.target.Add(n)
		if err := room.srv.To("r").Emit("m", payload); err != nil {
			b.Fatal(err)
		}
		select {
		case <-room.reached:
		case <-time.After(20 * time.Second):
			b.Fatalf("%d of %d deliveries after 20 s", room.received.Load(), room.target.Load())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/delivery")
}

// BenchmarkBroadcastRoom1000Pipelined keeps 16 broadcasts on their way, as a
// busy room does, so the figure is throughput rather than one round trip.
func BenchmarkBroadcastRoom1000Pipelined(b *testing.B) {
	const n, window = 1000, 16
	room := startBenchRoom(b, n)
	payload := strings.Repeat("x", 100)
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for b.Loop() {
		if err := room.srv.To("r").Emit("m", payload); err != nil {
			b.Fatal(err)
		}
		sent++
		// Wait while more than window broadcasts are not fully delivered.
		for int64(sent-window)*n > room.received.Load() {
			time.Sleep(50 * time.Microsecond)
		}
	}
	room.target.Store(int64(sent) * n)
	if room.received.Load() < int64(sent)*n {
		select {
		case <-room.reached:
		case <-time.After(20 * time.Second):
			b.Fatalf("%d of %d deliveries after 20 s", room.received.Load(), int64(sent)*n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(sent)*n), "ns/delivery")
}
