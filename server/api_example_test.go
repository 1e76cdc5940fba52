package server_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sockstream/sockstream/server"
)

// A packet middleware refuses some events; the socket's error handlers
// hear why.
func ExampleSocket_Use() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.Use(func(e *server.Event) error {
			if e.Name == "admin" && s.Handshake().Auth["role"] != "admin" {
				return errors.New("not allowed")
			}
			return nil
		})
		s.OnError(func(err error) { _ = s.Emit("refused", err.Error()) })
		s.On("admin", func(e *server.Event) { e.Ack("done") })
	})
}

// Telling a socket's rooms that it left, with the rooms still listed.
func ExampleSocket_OnDisconnecting() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.OnDisconnecting(func(reason string) {
			for _, room := range s.Rooms() {
				if room != s.ID() {
					_ = s.To(room).Emit("user left", s.ID(), reason)
				}
			}
		})
	})
}

// Watching what the server sends to a socket: its own emits and the
// broadcasts it receives.
func ExampleSocket_OnAnyOutgoing() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	srv.OnConnection(func(s *server.Socket) {
		s.OnAnyOutgoing(func(e *server.Event) { log.Printf("-> %s %s %v", s.ID(), e.Name, e.Args) })
	})
}

// Keeping a count of the rooms of this node as they come and go.
func ExampleNamespace_OnRoomCreated() {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	rooms := 0
	nsp := srv.Of("/")
	// The room handlers run one at a time: no lock needed for rooms.
	nsp.OnRoomCreated(func(room string) { rooms++ })
	nsp.OnRoomDeleted(func(room string) { rooms-- })
	nsp.OnRoomJoined(func(room, id string) { log.Println(id, "joined", room) })
}

// Refusing handshakes before any session is made, and watching the
// refusals.
func ExampleConfig_allowRequest() {
	srv, err := server.New(server.Config{
		Logger: slog.New(slog.DiscardHandler),
		AllowRequest: func(r *http.Request) error {
			if r.Header.Get("Origin") == "https://evil.example" {
				return errors.New("origin not allowed")
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	srv.OnConnectionError(func(e *server.ConnectionError) {
		fmt.Println(e.Code, e.Message, e.Context["message"])
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://evil.example")
	srv.Handler().ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 4 Forbidden origin not allowed
	// 403 {"code":4,"message":"origin not allowed"}
}

// Every method that waits for acknowledgements ends, when they do not come
// in time, with an error wrapping ErrAckTimeout.
func ExampleErrAckTimeout() {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	replies, err := srv.EmitWithAck(ctx, "ping")
	if errors.Is(err, server.ErrAckTimeout) {
		fmt.Println("some clients did not answer; replies so far:", len(replies))
		return
	}
	fmt.Println(len(replies), err) // no clients: no answers to wait for
	// Output: 0 <nil>
}
