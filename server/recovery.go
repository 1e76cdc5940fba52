package server

import (
	"errors"
	"fmt"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/recovery"
)

// setupLocalRecovery serves connection state recovery on a single node
// without Redis with sockstream's adapter over recovery.LocalTransport: a
// bounded memory log of the broadcasts and an expiring memory store of the
// sessions. zishang520's own in-memory adapter also recovers sessions, but
// without the handover between replayed and live packets, so a broadcast
// sent while a client is being restored can reach it twice or not at all.
func (s *Server) setupLocalRecovery(o *options) error {
	if s.cfg.Redis.Enabled() || !s.cfg.Recovery.Enabled || o.adapter != nil {
		return nil
	}
	m, err := recovery.NewMetrics(s.registry)
	if err != nil {
		return fmt.Errorf("recovery metrics: %w", err)
	}
	plog := recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxAge: s.cfg.Recovery.MaxDisconnection})
	store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{Logger: s.log})
	tr := recovery.NewLocalTransport(plog)
	b, err := adapter.New(tr, adapter.Config{
		Logger:     s.log,
		Registerer: s.registry,
		Sessions:   &recovery.Sessions{Store: store, Log: plog, Metrics: m, Logger: s.log},
	})
	if err != nil {
		return errors.Join(fmt.Errorf("recovery adapter: %w", err), tr.Close(), store.Close())
	}
	WithAdapter(b, tr.Ready, func() error { return errors.Join(tr.Close(), store.Close()) })(o)
	return nil
}
