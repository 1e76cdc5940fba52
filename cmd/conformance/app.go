package main

import (
	"log/slog"
	"time"

	"github.com/sockstream/sockstream/internal/eio"
	"github.com/sockstream/sockstream/server"
)

// The configuration both protocol test suites expect (their READMEs).
const (
	pingInterval   = 300 * time.Millisecond
	pingTimeout    = 200 * time.Millisecond
	maxPayload     = 1_000_000
	connectTimeout = time.Second
)

// app is the conformance server: Socket.IO at /socket.io/ and a bare
// Engine.IO server at /engine.io/, on one handler.
type app struct {
	srv    *server.Server
	engine *eio.Server
}

func newApp(log *slog.Logger) (*app, error) {
	srv, err := server.New(server.Config{
		Path:           "/socket.io/",
		CORSOrigins:    []string{"*"},
		PingInterval:   pingInterval,
		PingTimeout:    pingTimeout,
		ConnectTimeout: connectTimeout,
		MaxPayload:     maxPayload,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	onConnection := func(s *server.Socket) {
		// server.Socket's Handshake().Auth is {} when the client sent none,
		// as in Node; the suite checks `42["auth",{}]`.
		_ = s.Emit("auth", s.Handshake().Auth)
		s.On("message", func(e *server.Event) {
			_ = s.Emit("message-back", e.Args...)
		})
		s.On("message-with-ack", func(e *server.Event) {
			e.Ack(e.Args...)
		})
	}
	srv.OnConnection(onConnection)
	srv.Of("/custom").OnConnection(onConnection)

	eng, err := newEngine(log)
	if err != nil {
		return nil, err
	}
	srv.Mux().Handle("/engine.io/", eng)
	return &app{srv: srv, engine: eng}, nil
}

// newEngine builds the bare Engine.IO server of the engine.io-protocol suite
// (internal/eio): every message a client sends comes back as is.
func newEngine(log *slog.Logger) (*eio.Server, error) {
	return eio.NewServer(eio.Options{
		PingInterval: pingInterval,
		PingTimeout:  pingTimeout,
		MaxPayload:   maxPayload,
		// The suite README asks for origin "*", as Node's cors means it:
		// a literal "*", without credentials.
		AllowAnyOrigin: true,
		Logger:         log,
	}, func(s *eio.Session) eio.Handler { return echo{s} })
}

// echo sends every message of its session back.
type echo struct{ s *eio.Session }

func (e echo) OnMessage(data []byte, binary bool) {
	if binary {
		_ = e.s.Send(eio.BinaryMessage(data))
	} else {
		_ = e.s.Send(eio.TextMessage(data))
	}
}

func (echo) OnClose(string) {}
