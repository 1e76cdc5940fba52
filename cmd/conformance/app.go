package main

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/sockstream/sockstream/server"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
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
		auth := s.Handshake().Auth
		if auth == nil {
			// The suite expects `{}` when the client sent no payload, as Node does.
			auth = map[string]any{}
		}
		_ = s.Emit("auth", auth)
		s.On("message", func(e *server.Event) {
			_ = s.Emit("message-back", e.Args...)
		})
		s.On("message-with-ack", func(e *server.Event) {
			e.Ack(e.Args...)
		})
	}
	srv.OnConnection(onConnection)
	srv.Of("/custom").OnConnection(onConnection)

	eng := newEngine()
	srv.Mux().Handle("/engine.io/", eng)
	return &app{srv: srv, engine: eng}, nil
}

// newEngine builds the bare Engine.IO server of the engine.io-protocol suite:
// every message a client sends comes back as is.
func newEngine() engine.Server {
	opts := config.DefaultServerOptions()
	opts.SetPingInterval(pingInterval)
	opts.SetPingTimeout(pingTimeout)
	opts.SetMaxHttpBufferSize(maxPayload)
	opts.SetCors(&types.Cors{Origin: "*", Credentials: true})
	opts.SetTransports(types.NewSet(engine.Polling, engine.WebSocket))
	eng := engine.NewServer(opts)
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
