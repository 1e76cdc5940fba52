package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The server side of the Socket.IO Admin UI (@socket.io/admin-ui 0.5), as
// Node's instrument() provides it: the admin namespace, its authentication
// (admin_auth.go), the UI's actions (admin_actions.go), the server stats
// (admin_stats.go) and, in development mode, the events feed of every
// socket (admin_feed.go). Everything the UI sees is emitted into the admin
// namespace, which the cluster adapter carries to the admin sockets of
// every node, Go or Node: one UI shows the whole cluster.

// The admin features, as @socket.io/admin-ui's Feature enum names them.
const (
	featureEmit             = "EMIT"
	featureJoin             = "JOIN"
	featureLeave            = "LEAVE"
	featureDisconnect       = "DISCONNECT"
	featureMJoin            = "MJOIN"
	featureMLeave           = "MLEAVE"
	featureMDisconnect      = "MDISCONNECT"
	featureAggregatedEvents = "AGGREGATED_EVENTS"
	featureAllEvents        = "ALL_EVENTS"
)

// adminStatsInterval is how often each node emits its server_stats, as
// instrument() does; the UI counts a server silent for 10s as unhealthy.
const adminStatsInterval = 2 * time.Second

// adminFetchTimeout bounds the cluster-wide fetch of all_sockets when the
// server is not clustered (a cluster uses Redis.RequestTimeout).
const adminFetchTimeout = 5 * time.Second

// processStart stands for the process's start, for the uptime the UI shows.
var processStart = time.Now()

// admin is the Admin UI support of one Server.
type admin struct {
	srv      *Server
	cfg      AdminConfig
	nsp      *Namespace
	log      *slog.Logger
	dev      bool
	features []string
	auth     *adminAuth // nil with NoAuth
	feed     *adminFeed
	stats    *adminStats

	mu   sync.Mutex
	seen map[*Namespace]bool // namespaces instrumented
	// transports are the sockets the feed follows, with the transport
	// last reported.
	transports map[*Socket]Transport

	cancel context.CancelFunc
	done   chan struct{}
}

// instrumentAdmin serves the admin namespace of Config.Admin and starts
// the goroutine that emits the server stats and the events feed; it stops
// at Shutdown.
func (s *Server) instrumentAdmin() error {
	cfg := s.cfg.Admin
	a := &admin{
		srv:  s,
		cfg:  cfg,
		log:  s.log.With("component", "admin"),
		dev:  cfg.Mode == AdminDevelopment,
		seen: map[*Namespace]bool{},
		done: make(chan struct{}),
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sockstream_admin_events_dropped_total",
		Help: "Admin UI events (server stats, the events feed) not sent, by reason: queue full (the feed's bounded queue), cluster (the cluster did not take the emit).",
	}, []string{"reason"})
	if err := s.registry.Register(dropped); err != nil {
		return fmt.Errorf("register admin metrics: %w", err)
	}
	if !cfg.NoAuth {
		a.auth = newAdminAuth(cfg.Username, cfg.PasswordHash, a.log)
	}
	if !cfg.ReadOnly {
		a.features = []string{featureEmit, featureJoin, featureLeave, featureDisconnect,
			featureMJoin, featureMLeave, featureMDisconnect}
	}
	a.features = append(a.features, featureAggregatedEvents)
	if a.dev {
		a.features = append(a.features, featureAllEvents)
	}

	a.nsp = s.Of(cfg.Namespace)
	a.feed = newAdminFeed(a.nsp, adminFeedSize, dropped, a.log)
	a.stats = newAdminStats(s, cfg.ServerID)
	a.stats.observeEngine()
	if a.auth != nil {
		a.nsp.Use(a.auth.middleware)
	}
	a.nsp.OnConnection(a.onAdminConnection)
	if a.dev {
		// The namespaces there are, and each one created later before
		// its first socket connects.
		s.OnNewNamespace(a.instrumentNamespace)
		a.instrumentNamespaces()
		s.nspMu.Lock()
		s.onNspRemoved = append(s.onNspRemoved, a.forgetNamespace)
		s.nspMu.Unlock()
	}

	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(ctx)
	s.closers = append(s.closers, a.close)
	a.log.Info("admin UI namespace served", "nsp", cfg.Namespace, "server_id", cfg.ServerID,
		"mode", cfg.Mode, "read_only", cfg.ReadOnly, "auth", !cfg.NoAuth)
	if cfg.NoAuth {
		a.log.Warn("admin UI namespace served without authentication: anyone who reaches the server can watch and act on every socket")
	}
	return nil
}

// run emits the server stats every adminStatsInterval and the events of
// the feed as they come, until ctx ends.
func (a *admin) run(ctx context.Context) {
	defer close(a.done)
	tick := time.NewTicker(adminStatsInterval)
	defer tick.Stop()
	a.emitStats()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if a.srv.shuttingDown.Load() {
				continue
			}
			if a.dev {
				a.reportUpgrades()
			}
			a.emitStats()
			a.feed.logDrops()
		case m := <-a.feed.ch:
			a.feed.send(m)
		}
	}
}

// close stops the admin goroutine; it runs at Shutdown.
func (a *admin) close() error {
	a.cancel()
	<-a.done
	return nil
}

func (a *admin) emitStats() {
	a.feed.emit("server_stats", a.stats.collect())
}

// onAdminConnection answers an admin socket as instrument() does: its
// session id when it logged in with a password, the features the UI may
// offer, then (in development mode) every socket of the cluster.
func (a *admin) onAdminConnection(s *Socket) {
	if a.auth != nil {
		if id, ok := a.auth.newSession(s); ok {
			_ = s.Emit("session", id)
		}
	}
	a.registerActions(s)
	if err := s.Emit("config", map[string]any{"supportedFeatures": a.features}); err != nil {
		return // gone already
	}
	if !a.dev {
		return
	}
	all, err := a.allSockets(s.Context())
	if err != nil {
		// Some servers did not answer: the UI still gets what came in.
		a.log.Warn("admin: all_sockets is incomplete", "err", err)
	}
	_ = s.Emit("all_sockets", all)
}

// allSockets serializes every socket of the cluster in the namespaces this
// node has (as instrument() does with fetchSockets over io._nsps): the
// local ones from the socket itself, the others from FetchSockets.
func (a *admin) allSockets(ctx context.Context) ([]any, error) {
	timeout := adminFetchTimeout
	if a.srv.cfg.Redis.Enabled() {
		timeout = a.srv.cfg.Redis.RequestTimeout + time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := []any{}
	var errs []error
	for _, n := range a.srv.namespaces() {
		remote, err := n.FetchSockets(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		for _, r := range remote {
			if s := n.socket(r.ID()); s != nil {
				out = append(out, serializeSocket(s))
			} else {
				out = append(out, serializeRemote(r))
			}
		}
	}
	return out, errors.Join(errs...)
}

// hostname is this machine's name, or "" when the system does not say.
func hostname() string {
	h, _ := os.Hostname()
	return h
}
