package adapter

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Builder creates the cluster adapter of each namespace of a server. It is a
// socket.AdapterConstructor: pass it to socket.ServerOptions.SetAdapter.
// One Builder serves one server; its namespaces share its Transport.
type Builder struct {
	transport Transport
	opts      Config
	log       *slog.Logger
	metrics   *metrics

	mu       sync.Mutex
	adapters map[string]*NamespaceAdapter // by namespace name, the newest
}

var _ socket.AdapterConstructor = (*Builder)(nil)

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

// New creates the adapter of namespace nsp; socket.io calls it for every
// namespace it creates, then calls Init.
func (b *Builder) New(nsp socket.Namespace) socket.Adapter {
	a := newNamespaceAdapter(b, nsp)
	b.mu.Lock()
	b.adapters[nsp.Name()] = a
	b.mu.Unlock()
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
