package server

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/adapter"
)

// adminFeedSize bounds the admin events waiting to be emitted: the feed's
// producers (every socket's connection, rooms and events, in development
// mode) must never wait for the cluster, so past the bound an event is
// dropped, counted and logged.
const adminFeedSize = 4096

// adminMsg is one event for the admin namespace.
type adminMsg struct {
	event string
	args  []any
}

// adminFeed queues the events for the admin namespace; the admin goroutine
// emits them in order.
type adminFeed struct {
	nsp     *Namespace
	ch      chan adminMsg
	dropped *prometheus.CounterVec
	log     *slog.Logger

	// Drops since the last log line, logged once per stats interval.
	full, cluster atomic.Int64
	lastErr       atomic.Value // error
}

func newAdminFeed(nsp *Namespace, size int, dropped *prometheus.CounterVec, log *slog.Logger) *adminFeed {
	return &adminFeed{nsp: nsp, ch: make(chan adminMsg, size), dropped: dropped, log: log}
}

// push queues an event without waiting; a full queue drops it.
func (f *adminFeed) push(event string, args ...any) {
	select {
	case f.ch <- adminMsg{event: event, args: args}:
	default:
		f.dropped.WithLabelValues("queue full").Inc()
		f.full.Add(1)
	}
}

// emit sends an event at once, on the admin goroutine.
func (f *adminFeed) emit(event string, args ...any) { f.send(adminMsg{event: event, args: args}) }

// send emits m to every admin socket of the cluster.
func (f *adminFeed) send(m adminMsg) {
	err := f.nsp.Emit(m.event, m.args...)
	if err == nil || errors.Is(err, adapter.ErrClosed) {
		return // sent, or the server is shutting down
	}
	f.dropped.WithLabelValues("cluster").Inc()
	f.cluster.Add(1)
	f.lastErr.Store(err)
}

// logDrops logs the drops since its last call, if any: one line per stats
// interval at most, however many were dropped.
func (f *adminFeed) logDrops() {
	full, cluster := f.full.Swap(0), f.cluster.Swap(0)
	if full > 0 {
		f.log.Warn("admin: events feed queue full: events dropped (the UI misses them)",
			"dropped", full, "bound", cap(f.ch), "total_metric", "sockstream_admin_events_dropped_total")
	}
	if cluster > 0 {
		err, _ := f.lastErr.Load().(error)
		f.log.Warn("admin: the cluster did not take admin events: other nodes' UIs miss them",
			"dropped", cluster, "err", err)
	}
}

// adminTime is a timestamp as the UI gets it from Node: a Date, which
// JSON makes an ISO 8601 string in UTC with milliseconds.
func adminTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
