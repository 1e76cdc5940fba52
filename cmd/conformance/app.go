package main

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/sockstream/sockstream/server"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
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
	engine engine.Server
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

	eng := newEngine(log)
	srv.Mux().Handle("/engine.io/", engineio.ReleaseAfterHijack(eng))
	return &app{srv: srv, engine: eng}, nil
}

// newEngine builds the bare Engine.IO server of the engine.io-protocol suite:
// every message a client sends comes back as is. Its long-polling transport
// carries the corrections of internal/engineio, as server.Server's does.
func newEngine(log *slog.Logger) engine.Server {
	polling := engineio.NewPolling(log)
	opts := config.DefaultServerOptions()
	opts.SetPingInterval(pingInterval)
	opts.SetPingTimeout(pingTimeout)
	opts.SetMaxHttpBufferSize(maxPayload)
	// As the suite README: origin "*", no credentials.
	opts.SetCors(&types.Cors{Origin: "*"})
	opts.SetTransports(types.NewSet[transports.TransportCtor](polling, engineio.WebSocket{}))
	eng := engine.NewServer(opts)
	polling.Attach(eng)
	_ = eng.On("connection", func(args ...any) {
		sock, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		_ = sock.On("data", func(args ...any) {
			if data, ok := args[0].(io.Reader); ok {
				sock.Send(data, nil, nil)
			}
		})
	})
	return eng
}

// handler serves everything: /socket.io/, /engine.io/, /healthz, /readyz and
// /metrics.
func (a *app) handler() http.Handler { return a.srv.Handler() }
