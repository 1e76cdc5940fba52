package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Server is a Socket.IO v4 server. Build it with New, mount Handler on a
// net/http server (or call Run), register handlers with OnConnection and Of.
type Server struct {
	cfg      Config
	log      *slog.Logger
	io       *socket.Server
	engine   http.Handler
	registry *prometheus.Registry
	metrics  *serverMetrics
	mux      *http.ServeMux

	// ready reports whether the adapter's backend is reachable; nil means
	// always (the in-memory adapter).
	ready func() bool
	// closers run at Shutdown, after the clients are gone, in order.
	closers []func() error

	// handler is mux behind the shutdown guard: what Handler and Serve serve.
	handler http.Handler

	// sockets maps each *socket.Socket to its *Socket, from its first
	// middleware or its connection until it disconnects.
	sockets sync.Map
	wrapMu  sync.Mutex
	// conns maps each open engine.Socket to its *connState.
	conns sync.Map
	// busy counts handler goroutines and disconnections in flight.
	busy activity

	shuttingDown atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error

	mu       sync.Mutex
	httpSrvs []*http.Server
}

// New builds a server from cfg, or returns a *ConfigError naming the first
// invalid option.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, registry: cfg.Registry}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m, err := newServerMetrics(s.registry)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	s.metrics = m
	if err := s.setupCluster(&o); err != nil {
		return nil, err
	}

	so := socket.DefaultServerOptions()
	so.SetPath(strings.TrimSuffix(cfg.Path, "/"))
	so.SetPingInterval(cfg.PingInterval)
	so.SetPingTimeout(cfg.PingTimeout)
	so.SetConnectTimeout(cfg.ConnectTimeout)
	so.SetUpgradeTimeout(cfg.UpgradeTimeout)
	so.SetMaxHttpBufferSize(cfg.MaxPayload)
	so.SetAllowUpgrades(!cfg.DisableUpgrades)
	so.SetServeClient(false)
	// internal/engineio's transports correct upstream's where it answers
	// differently from Node; Polling needs the engine, attached below.
	polling := engineio.NewPolling(cfg.Logger)
	replay := pongReplay(cfg.PingInterval, cfg.PingTimeout)
	polling.SetPongReplay(replay)
	ts := types.NewSet[transports.TransportCtor]()
	for _, t := range cfg.Transports {
		switch t {
		case Polling:
			ts.Add(polling)
		case WebSocket:
			ts.Add(engineio.WebSocket{PongReplay: replay})
		}
	}
	so.SetTransports(ts)
	if len(cfg.CORSOrigins) > 0 {
		var origin any = cfg.CORSOrigins
		if len(cfg.CORSOrigins) == 1 {
			origin = cfg.CORSOrigins[0]
		}
		so.SetCors(&types.Cors{Origin: origin, Credentials: true})
	}
	if cfg.Recovery.Enabled {
		r := socket.DefaultConnectionStateRecovery()
		r.SetMaxDisconnectionDuration(cfg.Recovery.MaxDisconnection.Milliseconds())
		// Set explicitly: zishang520 defaults skipMiddlewares to true where
		// Node's socket.io defaults it to false.
		r.SetSkipMiddlewares(cfg.Recovery.SkipMiddlewares)
		so.SetConnectionStateRecovery(r)
	}
	if o.adapter != nil {
		so.SetAdapter(o.adapter)
	}
	s.ready = o.ready
	s.closers = o.closers

	s.io = socket.NewServer(nil, so)
	s.engine = engineio.ReleaseAfterHijack(s.io.ServeHandler(nil))
	polling.Attach(s.io.Engine())
	s.mux = http.NewServeMux()
	s.mux.Handle(cfg.Path, s.engine)
	if trimmed := strings.TrimSuffix(cfg.Path, "/"); trimmed != cfg.Path && trimmed != "" {
		s.mux.Handle(trimmed, s.engine)
	}
	s.mux.HandleFunc("/healthz", s.healthz)
	s.mux.HandleFunc("/readyz", s.readyz)
	s.mux.Handle("/metrics", metricsHandler(s.registry))
	s.instrument(s.io.Sockets())
	s.trackConnections()
	s.handler = s.guard(s.mux)
	return s, nil
}

// Option configures what Config cannot express as plain values, such as the
// cluster adapter. Most programs need none.
type Option func(*options)

type options struct {
	adapter socket.AdapterConstructor
	ready   func() bool
	closers []func() error
}

// WithAdapter makes the server use a custom zishang520 adapter constructor.
// ready, if not nil, backs /readyz; close, if not nil, runs at Shutdown after
// the clients are disconnected.
func WithAdapter(a socket.AdapterConstructor, ready func() bool, close func() error) Option {
	return func(o *options) {
		o.adapter = a
		o.ready = ready
		if close != nil {
			o.closers = append(o.closers, close)
		}
	}
}

// Handler serves Socket.IO at the configured path, /healthz, /readyz and
// /metrics. Mount it at the root of a mux, or use it as the whole handler.
func (s *Server) Handler() http.Handler { return s.handler }

// guard refuses new Engine.IO sessions (requests without a sid) once
// Shutdown has begun, so that no client connects between the disconnection
// of the others and the end of the listener; requests of existing sessions
// go through, to receive their close.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.shuttingDown.Load() && r.URL.Query().Get("sid") == "" && s.isEnginePath(r.URL.Path) {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) isEnginePath(p string) bool {
	return strings.HasPrefix(p, s.cfg.Path) || p == strings.TrimSuffix(s.cfg.Path, "/")
}

// Mux is the server's own ServeMux, for adding routes (such as a web page)
// beside Socket.IO.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Registry is the Prometheus registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Raw is the underlying zishang520 server, for what this package does not wrap.
func (s *Server) Raw() *socket.Server { return s.io }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Run listens on Config.Addr and serves until ctx ends, then shuts down
// gracefully within Config.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully within
// Config.ShutdownTimeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	if s.shuttingDown.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.httpSrvs = append(s.httpSrvs, hs)
	s.mu.Unlock()

	s.log.Info("sockstream listening", "addr", ln.Addr().String(), "path", s.cfg.Path)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			// Shutdown was called by someone else; wait for it to finish.
			return s.Shutdown(context.Background())
		}
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.Shutdown(sctx)
	<-errc
	return err
}

// ErrServerClosed is returned by Serve and Run on a server already shut down.
var ErrServerClosed = errors.New("sockstream: server closed")

// Shutdown stops the server gracefully: /readyz turns false, every client is
// disconnected (clients then reconnect, to another node in a cluster), the
// listener of Run/Serve stops, and the adapter is closed. It returns when done
// or when ctx ends, whichever is first. Calling it again returns the first
// result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.shutdownErr = s.shutdown(ctx)
	})
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shuttingDown.Store(true)
	servers := slices.Clone(s.httpSrvs)
	s.mu.Unlock()
	s.log.Info("sockstream shutting down")

	var errs []error
	done := make(chan struct{})
	go func() {
		// socket.io's Close disconnects every socket of every namespace, closes
		// the namespace adapters and the Engine.IO server.
		s.io.Close(nil)
		close(done)
	}()
	select {
	case <-done:
		// Let the disconnect handlers (and the handlers still running) finish.
		if err := s.busy.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wait for handlers: %w", err))
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("disconnect clients: %w", ctx.Err()))
	}
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			// Long-polling requests may still be held; cut them.
			errs = append(errs, fmt.Errorf("stop http server: %w", err))
			_ = hs.Close()
		}
	}
	for _, c := range s.closers {
		if err := c(); err != nil {
			errs = append(errs, fmt.Errorf("close adapter: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.shuttingDown.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
	case s.ready != nil && !s.ready():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("adapter not ready\n"))
	default:
		_, _ = w.Write([]byte("ok\n"))
	}
}

// pongReplay is the delay of the transports' PONG copies (the heartbeat
// correction of internal/engineio): engineio's default, 1 s, unless the
// ping interval or timeout is short. The copy must come before the next
// PING (or it is dropped) and before the timeout it clears.
func pongReplay(interval, timeout time.Duration) time.Duration {
	return min(engineio.DefaultPongReplay, min(interval, timeout)/2)
}
