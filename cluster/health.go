package cluster

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// health tracks whether Redis is reachable, from the outcome of every
// command and from a periodic PING, and lets waiting loops wake up as soon
// as it comes back.
type health struct {
	mu      sync.Mutex
	up      bool
	back    chan struct{} // closed when Redis comes back; replaced when it goes
	gone    chan struct{} // closed when Redis goes; replaced when it comes back
	lastLog time.Time
	log     *slog.Logger
	m       *metrics
}

func newHealth(log *slog.Logger, m *metrics) *health {
	h := &health{up: true, back: make(chan struct{}), gone: make(chan struct{}), log: log, m: m}
	close(h.back)
	m.redisUp.Set(1)
	return h
}

func (h *health) isUp() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

// ok records a successful command.
func (h *health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up {
		return
	}
	h.up = true
	close(h.back)
	h.gone = make(chan struct{})
	h.m.reconnects.Inc() // first: whoever sees redis_up 1 sees the count
	h.m.redisUp.Set(1)
	h.logTransition(msgBack)
}

// fail records a failed command; only connection failures count, not
// error replies such as WRONGTYPE.
func (h *health) fail(err error) {
	// Before the first connection, Ready is false anyway; the connect
	// loop reports its own failures.
	if !isConnErr(err) || errors.Is(err, errNotConnected) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		return
	}
	h.up = false
	close(h.gone)
	h.back = make(chan struct{})
	h.m.redisUp.Set(0)
	h.logTransition(msgGone, "err", err)
}

// cameBack returns a channel closed when Redis is (or becomes) reachable.
func (h *health) cameBack() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.back
}

// wentAway returns a channel closed when Redis is (or becomes) unreachable.
func (h *health) wentAway() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gone
}

// logTransition logs a change of state, at Debug when the previous one was
// less than logEvery ago: with a Redis Cluster one failing shard makes the
// state flap as other shards keep answering.
func (h *health) logTransition(msg string, args ...any) {
	const logEvery = 10 * time.Second
	level := slog.LevelWarn
	if msg == msgBack {
		level = slog.LevelInfo
	}
	if now := time.Now(); now.Sub(h.lastLog) < logEvery {
		level = slog.LevelDebug
	} else {
		h.lastLog = now
	}
	h.log.Log(context.Background(), level, msg, args...)
}

const (
	msgBack = "cluster: Redis is reachable again"
	msgGone = "cluster: Redis is unreachable"
)

// isConnErr reports whether err means Redis could not be talked to (or is
// not ready to serve), as opposed to an error reply to a valid exchange.
func isConnErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		return re.IsLoading() || re.IsClusterDown() || re.IsTryAgain() || hasPrefix(re.Error(), "MASTERDOWN", "READONLY", "BUSY ")
	}
	return !rueidis.IsRedisNil(err)
}

// isTransient reports whether a command that failed with err may succeed if
// sent again: connection failures and the error replies of a Redis that is
// loading, failing over, out of memory or busy.
func isTransient(err error) bool {
	if isConnErr(err) {
		return true
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		return hasPrefix(re.Error(), "OOM", "NOREPLICAS")
	}
	return false
}

func hasPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// backoff is an exponential delay with jitter between retries, from 100ms
// to 5s, so that a node does not hammer a Redis that is down.
type backoff struct {
	next time.Duration
}

const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

func (b *backoff) reset() { b.next = 0 }

// wait sleeps for the next delay, or until h sees Redis coming back (but
// at least backoffMin), or until ctx is done. It reports whether ctx is
// still alive.
func (b *backoff) wait(ctx context.Context, h *health) bool {
	if b.next == 0 {
		b.next = backoffMin
	}
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(b.next*2, backoffMax)
	var back <-chan struct{}
	if h != nil && !h.isUp() {
		back = h.cameBack()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-back:
	case <-ctx.Done():
		return false
	}
	// Woken because another command succeeded: retry soon, not at once,
	// since what failed for us may still fail (another shard, say).
	t.Reset(backoffMin)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return ctx.Err() == nil
}
