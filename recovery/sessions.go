package recovery

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sockstream/sockstream/adapter"
)

// Sessions is the adapter.SessionStore of connection state recovery: set it
// as adapter.Config.Sessions. It persists sessions in Store and restores
// them with the packets missed, read from Log:
//
//	// a cluster over Redis: the transport's stream and session keys
//	cfg.Sessions = &recovery.Sessions{
//		Store: tr.SessionStore(),
//		Log:   tr.StreamLog(cluster.StreamLogOptions{}),
//	}
//
// Every failure of a restore (expired, trimmed, invalid, backend error)
// gives the client a fresh session and is counted and logged by the
// Restorer; the adapter sees only an error.
type Sessions struct {
	Store Store
	Log   PacketLog
	// Metrics, when set, records restores and persisted sessions.
	Metrics *Metrics
	// Logger defaults to slog.Default(). Pids are never logged.
	Logger *slog.Logger
}

var _ adapter.SessionStore = (*Sessions)(nil)

// PersistSession implements adapter.SessionStore.
func (s *Sessions) PersistSession(ctx context.Context, ps adapter.PersistedSession) error {
	sess := Session{SID: ps.SID, PID: ps.PID, Rooms: ps.Rooms, Data: ps.Data, Nsp: ps.Nsp, Origin: ps.Origin, Marks: ps.Marks}
	err := s.Store.Persist(ctx, sess, ps.TTL)
	s.Metrics.sessionPersisted(err)
	if err != nil {
		s.logger().Warn("recovery: persisting a session failed",
			"pid_hash", PIDHash(ps.PID), "nsp", ps.Nsp, "err", err)
		return fmt.Errorf("recovery: persist session of %s: %w", ps.SID, err)
	}
	return nil
}

// RestoreSession implements adapter.SessionStore. The error, when there is
// one, is a *RestoreError.
func (s *Sessions) RestoreSession(ctx context.Context, nsp, pid, offset string) (*adapter.RestoredSession, error) {
	r := Restorer{Store: s.Store, Log: s.Log, Metrics: s.Metrics, Logger: s.Logger}
	res, err := r.Restore(ctx, pid, offset, nsp)
	if err != nil {
		return nil, err
	}
	return &adapter.RestoredSession{
		SID:           res.Session.SID,
		PID:           res.Session.PID,
		Rooms:         res.Session.Rooms,
		Data:          res.Session.Data,
		MissedPackets: res.MissedPackets,
		LastOffset:    res.LastOffset,
	}, nil
}

func (s *Sessions) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
