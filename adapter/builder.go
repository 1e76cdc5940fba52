package adapter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Builder creates the cluster adapter of each namespace of a server: the
// Socket.IO layer calls New when it creates a namespace, and Close on the
// adapter when the server shuts down. One Builder serves one server; its
// namespaces share its Transport.
//
// The Builder holds the node-level resources its adapters share, so that a
// namespace costs no goroutine of its own: at most Config.Workers workers
// run the namespaces' queued work (scheduler.go) and exit when there is
// none, and one ticker goroutine, running while an adapter is subscribed,
// queues every adapter's heartbeats and checks its peers' liveness.
type Builder struct {
	transport Transport
	opts      Config
	log       *slog.Logger
	metrics   *metrics
	sched     *scheduler

	mu       sync.Mutex
	adapters map[string]*NamespaceAdapter // by namespace name, the newest
	count    int                          // adapters not closed yet
	// subscribed: the adapters the ticker serves; tickStop and tickDone
	// stop and await the ticker, which runs while subscribed is not empty.
	subscribed map[*NamespaceAdapter]struct{}
	tickStop   chan struct{}
	tickDone   chan struct{}
}

// New returns the adapter constructor of a server whose nodes talk through
// transport. Zero fields of cfg take their defaults; an invalid cfg gives an
// error wrapping ErrInvalidConfig.
func New(transport Transport, cfg Config) (*Builder, error) {
	if transport == nil {
		return nil, &ConfigError{Field: "transport", Reason: "must not be nil"}
	}
	o, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, errors.Join(ErrInvalidConfig, err)
	}
	return &Builder{
		transport: transport,
		opts:      o,
		log:       o.Logger,
		metrics:   m,
		sched:     newScheduler(o.Workers),
		adapters:  map[string]*NamespaceAdapter{},

		subscribed: map[*NamespaceAdapter]struct{}{},
	}, nil
}

// New creates and starts the adapter of namespace ns: it is usable at once
// (its room index, and operations, which are queued), and subscribes to
// the namespace's messages in the background, retrying until the
// transport accepts; once subscribed it announces the node
// (INITIAL_HEARTBEAT) and sends heartbeats every HeartbeatInterval. There
// is no separate Init or Start. Close stops it; the Builder forgets it
// then. It starts no goroutine of its own (see Builder).
func (b *Builder) New(ns Namespace) *NamespaceAdapter {
	a := newNamespaceAdapter(b, ns)
	b.mu.Lock()
	b.adapters[a.name] = a
	b.count++
	b.mu.Unlock()
	a.start()
	return a
}

// Workers returns the number of goroutines running the namespaces' work
// right now (at most Config.Workers; 0 when no namespace has work).
func (b *Builder) Workers() int { return b.sched.running() }

// live adds a subscribed adapter to the ticker's, starting the ticker.
func (b *Builder) live(a *NamespaceAdapter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subscribed[a] = struct{}{}
	if b.tickStop == nil {
		b.tickStop, b.tickDone = make(chan struct{}), make(chan struct{})
		go b.tick(b.tickStop, b.tickDone)
	}
}

// unlive removes a from the ticker's adapters; the ticker stops (and is
// waited for) with the last one.
func (b *Builder) unlive(a *NamespaceAdapter) {
	b.mu.Lock()
	delete(b.subscribed, a)
	var done chan struct{}
	if len(b.subscribed) == 0 && b.tickStop != nil {
		close(b.tickStop)
		done = b.tickDone
		b.tickStop, b.tickDone = nil, nil
	}
	b.mu.Unlock()
	if done != nil {
		<-done
	}
}

// tick queues a HEARTBEAT for every subscribed adapter every
// HeartbeatInterval and drops their silent peers every HeartbeatTimeout/4,
// until stop is closed.
func (b *Builder) tick(stop, done chan struct{}) {
	defer close(done)
	hb := time.NewTicker(b.opts.HeartbeatInterval)
	defer hb.Stop()
	check := time.NewTicker(max(b.opts.HeartbeatTimeout/4, 5*time.Millisecond))
	defer check.Stop()
	for {
		select {
		case <-stop:
			return
		case <-hb.C:
			for _, a := range b.liveAdapters() {
				a.heartbeat()
			}
		case now := <-check.C:
			for _, a := range b.liveAdapters() {
				a.checkPeers(now)
			}
		}
	}
}

func (b *Builder) liveAdapters() []*NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*NamespaceAdapter, 0, len(b.subscribed))
	for a := range b.subscribed {
		out = append(out, a)
	}
	return out
}

// Adapter returns the current adapter of the namespace called name, or nil.
func (b *Builder) Adapter(name string) *NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adapters[name]
}

// forget drops a closed adapter; with the last one, it waits for the
// workers to exit, so that nothing of the Builder runs once every adapter
// is closed.
func (b *Builder) forget(a *NamespaceAdapter) {
	b.mu.Lock()
	if b.adapters[a.name] == a {
		delete(b.adapters, a.name)
	}
	b.count--
	last := b.count == 0
	b.mu.Unlock()
	if last {
		b.sched.waitIdle()
	}
}

// randomID returns 16 hex characters, like Node's randomBytes(8).toString("hex").
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
