package adapter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
)

// Builder creates the cluster adapter of each namespace of a server: the
// Socket.IO layer calls New when it creates a namespace, and Close on the
// adapter when the server shuts down. One Builder serves one server; its
// namespaces share its Transport.
type Builder struct {
	transport Transport
	opts      Config
	log       *slog.Logger
	metrics   *metrics

	mu       sync.Mutex
	adapters map[string]*NamespaceAdapter // by namespace name, the newest
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
		adapters:  map[string]*NamespaceAdapter{},
	}, nil
}

// New creates and starts the adapter of namespace ns: it is usable at once
// (its room index, and operations, which are queued), and subscribes to
// the namespace's messages in the background, retrying until the
// transport accepts; once subscribed it announces the node
// (INITIAL_HEARTBEAT) and sends heartbeats every HeartbeatInterval. There
// is no separate Init or Start. Close stops it; the Builder forgets it
// then.
func (b *Builder) New(ns Namespace) *NamespaceAdapter {
	a := newNamespaceAdapter(b, ns)
	b.mu.Lock()
	b.adapters[a.name] = a
	b.mu.Unlock()
	a.start()
	return a
}

// Adapter returns the current adapter of the namespace called name, or nil.
func (b *Builder) Adapter(name string) *NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adapters[name]
}

func (b *Builder) forget(a *NamespaceAdapter) {
	b.mu.Lock()
	if b.adapters[a.name] == a {
		delete(b.adapters, a.name)
	}
	b.mu.Unlock()
}

// randomID returns 16 hex characters, like Node's randomBytes(8).toString("hex").
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
