package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/sockstream/sockstream/internal/inflight"
	"github.com/sockstream/sockstream/internal/lograte"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/eio"
)

// Server is a Socket.IO v4 server. Build it with New, mount Handler on a
// net/http server (or call Run), register handlers with OnConnection and Of.
type Server struct {
	cfg      Config
	log      *slog.Logger
	engine   *eio.Server
	registry *prometheus.Registry
	metrics  *serverMetrics
	mux      *http.ServeMux

	// builder makes each namespace's adapter.
	builder *adapter.Builder
	// ready reports whether the adapter's backend is reachable; nil means
	// always.
	ready func() bool
	// closers run at Shutdown, after the clients and the adapters are gone,
	// in order.
	closers []func() error

	// handler is mux behind the shutdown guard: what Handler and Serve serve.
	handler http.Handler
	// limit counts the connections of Run and Serve (MaxConnections).
	limit *connLimit

	nspMu   sync.Mutex
	nsps    map[string]*Namespace // by name, the children of dynamic ones included
	parents []*Namespace          // dynamic namespaces (OfDynamic)
	// onNewNsp are the OnNewNamespace handlers.
	onNewNsp []func(*Namespace)
	// onNspRemoved are told of each child namespace removed as empty
	// (Config.CleanupEmptyChildNamespaces), so that they forget it.
	onNspRemoved []func(*Namespace)
	// engineObs, if set (the Admin UI), is told of Engine.IO sessions
	// opening and closing.
	engineObs atomic.Pointer[engineObserver]

	// busy counts handler goroutines and disconnections in flight.
	busy inflight.Group
	// removals removes, in turn, the children a refused or abandoned
	// connection left empty (cleanup.go release).
	removals handlerQueue
	// hookLog and volatileLog limit the lines about dropped hook
	// notifications and volatile packets to one a second each.
	hookLog, volatileLog lograte.OncePerSecond
	// httpHooks are the HTTP layer's handlers (http_hooks.go).
	httpHooks hookSet

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
	s := &Server{cfg: cfg, log: cfg.Logger, registry: cfg.Registry, nsps: map[string]*Namespace{}}
	s.removals.srv = s
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
	if s.limit, err = newConnLimit(cfg.MaxConnections, fdLimit(), cfg.Logger, s.registry); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := s.setupAdapter(&o); err != nil {
		return nil, err
	}
	s.builder, s.ready, s.closers = o.builder, o.ready, o.closers

	eo := eio.Options{
		PingInterval:     cfg.PingInterval,
		PingTimeout:      cfg.PingTimeout,
		UpgradeTimeout:   cfg.UpgradeTimeout,
		MaxPayload:       cfg.MaxPayload,
		DisableUpgrades:  cfg.DisableUpgrades,
		MaxBufferedBytes: cfg.MaxBufferedBytes,
		WriteTimeout:     cfg.WriteTimeout,
		ReadTimeout:      cfg.ReadTimeout,
		Logger:           cfg.Logger,
		Metrics:          m.engine(),

		PerMessageDeflate:          cfg.PerMessageDeflate,
		PerMessageDeflateThreshold: cfg.PerMessageDeflateThreshold,
	}
	for _, t := range cfg.Transports {
		eo.Transports = append(eo.Transports, string(t))
	}
	s.engineHooks(&eo)
	switch {
	case slices.Contains(cfg.CORSOrigins, "*"):
		// Node's cors with origin "*": a literal *, never credentials
		// (Validate refuses CORSCredentials with it).
		eo.AllowAnyOrigin = true
	case len(cfg.CORSOrigins) > 0:
		eo.AllowOrigin = allowOrigin(cfg.CORSOrigins)
		eo.AllowCredentials = cfg.CORSCredentials
	}
	s.engine, err = eio.NewServer(eo, s.accept)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("engine: %w", err), s.closeBackends())
	}
	s.mux = http.NewServeMux()
	s.mux.Handle(cfg.Path, s.engine)
	if trimmed := strings.TrimSuffix(cfg.Path, "/"); trimmed != cfg.Path && trimmed != "" {
		s.mux.Handle(trimmed, s.engine)
	}
	s.mux.HandleFunc("/healthz", s.healthz)
	s.mux.HandleFunc("/readyz", s.readyz)
	if cfg.MetricsAddr == "" {
		s.mux.Handle("/metrics", s.MetricsHandler())
	}
	s.Of("/")
	if cfg.Admin.enabled() {
		if err := s.instrumentAdmin(); err != nil { // admin*.go
			return nil, errors.Join(err, s.closeBackends())
		}
	}
	s.handler = s.guard(s.mux)
	return s, nil
}

// allowOrigin is the CORS check of a list of origins (normalized by
// Config): the Origin must be one of them ("null" only if listed).
func allowOrigin(origins []string) func(string) bool {
	return func(origin string) bool {
		return slices.Contains(origins, normalizeOrigin(origin))
	}
}

// newAdapter makes the adapter of namespace n.
func (s *Server) newAdapter(n *local) adapter.Adapter { return s.builder.New(observed{n}) }

// Option configures what Config cannot express as plain values, such as the
// cluster adapter. Most programs need none.
type Option func(*options)

type options struct {
	builder *adapter.Builder
	ready   func() bool
	closers []func() error
}

// WithAdapter makes the server use an adapter of its own (an
// adapter.Builder over some Transport); nil keeps the server's own choice.
// ready, if not nil, backs /readyz; close, if not nil, runs at Shutdown
// after the clients are disconnected and the adapters closed.
func WithAdapter(b *adapter.Builder, ready func() bool, close func() error) Option {
	return func(o *options) {
		if b != nil {
			o.builder = b
		}
		if ready != nil {
			o.ready = ready
		}
		if close != nil {
			o.closers = append(o.closers, close)
		}
	}
}

// Handler serves Socket.IO at the configured path, /healthz, /readyz and,
// unless Config.MetricsAddr is set, /metrics. Mount it at the root of a
// mux, or use it as the whole handler.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves the Prometheus metrics of Registry, as /metrics
// does: for programs that set Config.MetricsAddr and serve it themselves
// (Run serves it on MetricsAddr).
func (s *Server) MetricsHandler() http.Handler { return metricsHandler(s.registry) }

// guard answers what no route should see:
//   - a path that is not UTF-8 gets 400: no route can name it, and an
//     http.FileServerFS mounted on the Mux would answer 500 (fs.ValidPath
//     refuses it with fs.ErrInvalid, which net/http maps to 500), as for
//     the overlong encoding of "../" in /%c0%ae%c0%ae/etc/passwd;
//   - a request on a connection over Config.MaxConnections is answered
//     with Connection: close, and 503 for Socket.IO (health checks and
//     the other routes are served);
//   - once Shutdown has begun, new Engine.IO sessions (requests without a
//     sid) get 503, so that no client connects between the disconnection
//     of the others and the end of the listener; requests of existing
//     sessions go through, to receive their close.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) {
			http.Error(w, "400 Bad Request: the URL path is not UTF-8", http.StatusBadRequest)
			return
		}
		if overCap(r) {
			w.Header().Set("Connection", "close")
			if s.isEnginePath(r.URL.Path) {
				s.limit.refuse(refusedOverCap)
				http.Error(w, "server at its connection limit", http.StatusServiceUnavailable)
				return
			}
		}
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

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Run listens on Config.Addr (and Config.MetricsAddr when set, for
// /metrics) and serves until ctx ends, then shuts down gracefully within
// Config.ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s (metrics): %w", s.cfg.MetricsAddr, err)
		}
		done, err := s.serveMetrics(mln)
		if err != nil {
			_ = ln.Close()
			return err
		}
		// Shutdown, which Serve always reaches, stops it.
		defer func() { <-done }()
	}
	return s.Serve(ctx, ln)
}

// serveMetrics serves /metrics, alone, on ln until Shutdown; done is closed
// when it has stopped.
func (s *Server) serveMetrics(ln net.Listener) (done <-chan struct{}, err error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.MetricsHandler())
	hs := s.httpServer(mux)
	if err := s.addHTTPServer(hs); err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.log.Info("sockstream metrics listening", "addr", ln.Addr().String())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed: /metrics is no longer served", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ch, nil
}

// httpServer is an http.Server with the configured timeouts and limits.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// Headers come first: their bound is the shorter of 10s and
		// ReadTimeout. The engine lifts the deadline of long polls and
		// WebSockets (see eio.Options.ReadTimeout).
		ReadHeaderTimeout: min(10*time.Second, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// addHTTPServer makes Shutdown stop hs, unless it has begun
// (ErrServerClosed).
func (s *Server) addHTTPServer(hs *http.Server) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown.Load() {
		return ErrServerClosed
	}
	s.httpSrvs = append(s.httpSrvs, hs)
	return nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully within
// Config.ShutdownTimeout. It returns nil after a clean shutdown. Its
// connections count towards Config.MaxConnections (those of a crypto/tls
// listener are not counted: net/http must see their *tls.Conn).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer(s.handler)
	hs.ConnContext = s.limit.connContext
	if err := s.addHTTPServer(hs); err != nil {
		_ = ln.Close()
		return err
	}
	ln = s.limit.wrap(ln)

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
	// Every socket disconnects with "server shutting down" (its session
	// kept for recovery, as Node's io.close() does), then the engine
	// closes every connection: clients see a transport close and
	// reconnect, to another node in a cluster.
	for _, n := range s.namespaces() {
		for _, sock := range n.connectedSockets() {
			sock.onclose("server shutting down")
		}
	}
	// A client reconnects the moment its connection closes, maybe to
	// another node: its session must be stored by then (make soak saw 21
	// of 4,130 reconnections get a fresh session without this wait).
	if s.cfg.Recovery.Enabled {
		for _, n := range s.namespaces() {
			if err := n.adapter.SessionsPersisted(ctx); err != nil {
				errs = append(errs, fmt.Errorf("persist sessions of %s: %w", n.name, err))
				break
			}
		}
	}
	if err := s.engine.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close connections: %w", err))
	}
	// Let the disconnect handlers (and the handlers still running) finish.
	if err := s.busy.Wait(ctx); err != nil {
		errs = append(errs, fmt.Errorf("wait for handlers: %w", err))
	}
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			// Long-polling requests may still be held; cut them.
			errs = append(errs, fmt.Errorf("stop http server: %w", err))
			_ = hs.Close()
		}
	}
	for _, n := range s.namespaces() {
		if err := n.adapter.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close adapter of %s: %w", n.name, err))
		}
	}
	if err := s.closeBackends(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeBackends runs the closers (the adapter's transport and stores).
func (s *Server) closeBackends() error {
	var errs []error
	for _, c := range s.closers {
		if err := c(); err != nil {
			errs = append(errs, fmt.Errorf("close adapter: %w", err))
		}
	}
	return errors.Join(errs...)
}

// namespaces are the namespaces with an adapter (every one but the
// dynamic parents).
func (s *Server) namespaces() []*Namespace {
	s.nspMu.Lock()
	defer s.nspMu.Unlock()
	out := make([]*Namespace, 0, len(s.nsps))
	for _, n := range s.nsps {
		out = append(out, n)
	}
	return out
}

func (n *Namespace) connectedSockets() []*Socket {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Socket, 0, len(n.sockets))
	for _, s := range n.sockets {
		out = append(out, s)
	}
	return out
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
