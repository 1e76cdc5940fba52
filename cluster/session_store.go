package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/recovery"
)

// SessionStore is the recovery.Store of a cluster: it keeps sessions in
// Redis as @socket.io/redis-streams-adapter does, key prefix+pid, value
// base64 of MessagePack of {sid, pid, rooms, data}, written with SET PX and
// taken with GETDEL (Redis 6.2 or later), so either kind of node restores
// a session the other persisted. It works against standalone Redis and
// Redis Cluster alike (one key per command).
type SessionStore struct {
	client rueidis.Client
	prefix string
	logger *slog.Logger
}

var _ recovery.Store = (*SessionStore)(nil)

// SessionStoreOptions configure a SessionStore made by NewSessionStore.
type SessionStoreOptions struct {
	// KeyPrefix is the prefix of the session keys. Default
	// DefaultSessionKeyPrefix, Node's: a Go node and a Node node sharing a
	// Redis find each other's sessions.
	KeyPrefix string
	// Logger reports corrupt stored sessions. Default slog.Default().
	Logger *slog.Logger
}

// NewSessionStore returns a SessionStore on client, which stays the
// caller's: the store never closes it. Transport.SessionStore is the usual
// way to get one.
func NewSessionStore(client rueidis.Client, opts SessionStoreOptions) *SessionStore {
	s := &SessionStore{client: client, prefix: opts.KeyPrefix, logger: opts.Logger}
	if s.prefix == "" {
		s.prefix = DefaultSessionKeyPrefix
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s
}

// SessionStore returns the SessionStore on t's client, with t's
// SessionKeyPrefix and Logger.
func (t *Transport) SessionStore() *SessionStore {
	return NewSessionStore(t.client, SessionStoreOptions{KeyPrefix: t.opts.SessionKeyPrefix, Logger: t.log})
}

// Persist implements recovery.Store with SET key value PX ttl.
func (s *SessionStore) Persist(ctx context.Context, sess recovery.Session, ttl time.Duration) error {
	if !recovery.ValidPID(sess.PID) {
		return recovery.ErrInvalidPID
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: %v", recovery.ErrInvalidTTL, ttl)
	}
	value, err := encodeSession(sess)
	if err != nil {
		return err
	}
	cmd := s.client.B().Set().Key(s.prefix + sess.PID).Value(value).PxMilliseconds(ttl.Milliseconds()).Build()
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("cluster: persist session: %w", err)
	}
	return nil
}

// Take implements recovery.Store with GETDEL: of two concurrent Takes of
// one pid, at most one gets the session, across nodes too.
func (s *SessionStore) Take(ctx context.Context, pid string) (*recovery.Session, error) {
	if !recovery.ValidPID(pid) {
		return nil, recovery.ErrInvalidPID
	}
	value, err := s.client.Do(ctx, s.client.B().Getdel().Key(s.prefix+pid).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, recovery.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: take session: %w", err)
	}
	sess, err := decodeSession(value, pid)
	if err != nil {
		// Logged here because only the store sees the value; the caller
		// sees a typed error. The value is gone (GETDEL), so it is reported
		// once, not at every retry.
		s.logger.Warn("cluster: discarding a corrupt stored session",
			"pid_hash", recovery.PIDHash(pid), "bytes", len(value), "err", err)
		return nil, err
	}
	return sess, nil
}
