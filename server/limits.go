package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// overCapLife bounds the life of a connection over MaxConnections: its
// request must come, and its answer go, within it. It holds a descriptor of
// the reserve, which idle connections must not keep: a probe or a scrape
// sends its request at once.
const overCapLife = 3 * time.Second

// connLimit enforces Config.MaxConnections over the listeners of Run and
// Serve: it counts their open connections (hijacked WebSockets included,
// until the engine closes them) and marks those over the cap, which guard
// answers once and closes.
type connLimit struct {
	max      int64 // MaxConnections
	overflow int64 // connections over max answered; past it, closed unanswered
	log      *slog.Logger

	open atomic.Int64 // connections open, over the cap included
	over atomic.Int64 // connections over the cap open

	gauge   prometheus.Gauge
	refused *prometheus.CounterVec // by reason

	// limited is set while connections are over the cap, for one log line
	// when it starts and one when it ends.
	limited   atomic.Bool
	mu        sync.Mutex
	refusedAt int64 // connections refused when the episode started
	total     atomic.Int64
}

// Reasons of sockstream_tcp_connections_refused_total.
const (
	refusedOverCap  = "max_connections" // a Socket.IO request answered 503
	refusedOverflow = "overflow"        // a connection closed unanswered
)

func newConnLimit(max, fdLimit int, log *slog.Logger, reg prometheus.Registerer) (*connLimit, error) {
	l := &connLimit{
		max: int64(max),
		log: log,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockstream_tcp_connections",
			Help: "TCP connections open on the listeners of Run and Serve, those over Config.MaxConnections included.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_tcp_connections_refused_total",
			Help: "Connections refused over Config.MaxConnections: a Socket.IO request answered 503 (max_connections), or the connection closed unanswered (overflow).",
		}, []string{"reason"}),
	}
	// Half the descriptors left above the cap answer the connections over
	// it; the other half stay for Redis, files and the rest of the process.
	l.overflow = max64(int64(fdLimit-max)/2, 1)
	if fdLimit <= max {
		l.overflow = max64(int64(max)/10, 1)
	}
	l.refused.WithLabelValues(refusedOverCap)
	l.refused.WithLabelValues(refusedOverflow)
	for _, c := range []prometheus.Collector{l.gauge, l.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// wrap counts the connections of ln.
func (l *connLimit) wrap(ln net.Listener) net.Listener { return &limitListener{Listener: ln, l: l} }

type limitListener struct {
	net.Listener
	l *connLimit
}

// Accept returns the next connection, marked when it is over the cap; past
// the overflow it closes connections unanswered and accepts the next.
func (ln *limitListener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if _, ok := c.(*tls.Conn); ok {
			// net/http must see the *tls.Conn: not counted.
			return c, nil
		}
		n := l.open.Add(1)
		l.gauge.Inc()
		lc := &limitConn{Conn: c, l: l}
		if n <= l.max {
			return lc, nil
		}
		lc.overCap = true
		l.startLimited(n)
		if l.over.Add(1) > l.overflow {
			// Counted before the close, so that whoever sees the
			// connection end also sees the refusal; Close counts it out.
			l.refuse(refusedOverflow)
			_ = lc.Close()
			continue
		}
		lc.end = time.Now().Add(overCapLife)
		_ = c.SetDeadline(lc.end)
		return lc, nil
	}
}

// refuse counts one refusal.
func (l *connLimit) refuse(reason string) {
	l.refused.WithLabelValues(reason).Inc()
	l.total.Add(1)
}

// startLimited logs the start of an episode over the cap.
func (l *connLimit) startLimited(open int64) {
	if l.limited.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limited.Swap(true) {
		return
	}
	l.refusedAt = l.total.Load()
	l.log.Warn("connection limit reached: new Socket.IO requests are refused (503) until connections close; health checks are served",
		"open", open, "max_connections", l.max)
}

// closed counts a connection out, and logs the end of an episode over the
// cap.
func (l *connLimit) closed(overCap bool) {
	n := l.open.Add(-1)
	l.gauge.Dec()
	if overCap {
		l.over.Add(-1)
	}
	if n >= l.max || !l.limited.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limited.Swap(false) {
		l.log.Warn("connection limit: back under the cap", "open", n, "max_connections", l.max,
			"refused", l.total.Load()-l.refusedAt)
	}
}

// limitConn is a counted connection.
type limitConn struct {
	net.Conn
	l       *connLimit
	overCap bool
	end     time.Time // over the cap: no deadline is set past it
	once    sync.Once
}

// clamp keeps the deadlines net/http sets (it sets them for each request)
// within the life of a connection over the cap.
func (c *limitConn) clamp(t time.Time) time.Time {
	if c.overCap && (t.IsZero() || t.After(c.end)) {
		return c.end
	}
	return t
}

func (c *limitConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *limitConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *limitConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// Close counts the connection out before closing it, so that the place is
// free by the time the peer sees the end.
func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.closed(c.overCap) })
	return c.Conn.Close()
}

type overCapKey struct{}

// connContext marks the requests of a connection over the cap (for
// http.Server.ConnContext).
func (l *connLimit) connContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitConn); ok && lc.overCap {
		return context.WithValue(ctx, overCapKey{}, true)
	}
	return ctx
}

// overCap reports whether r came on a connection over the cap.
func overCap(r *http.Request) bool {
	v, _ := r.Context().Value(overCapKey{}).(bool)
	return v
}
