package adapter

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Default values of Config, used for zero fields.
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultRequestTimeout    = 5 * time.Second
	DefaultInboundQueueSize  = 1024
	DefaultWorkers           = 64
)

// Config configures the cluster adapter (it is not called Options because
// that name is the wire type of broadcast options). The zero value is valid:
// every zero field takes its default.
type Config struct {
	// HeartbeatInterval is the period of the HEARTBEAT messages each namespace
	// adapter publishes (over pub/sub). Default 5s, as Node.
	HeartbeatInterval time.Duration

	// HeartbeatTimeout is how long a peer that once sent a heartbeat may stay
	// silent before it is declared dead. It must exceed HeartbeatInterval.
	// Default 10s, as Node.
	HeartbeatTimeout time.Duration

	// RequestTimeout bounds fetchSockets (unless the operator sets its own
	// Timeout) and serverSideEmit-with-ack requests, and the wait for pending
	// publications at Close. Default 5s, as Node.
	RequestTimeout time.Duration

	// InboundQueueSize bounds, per namespace adapter, the messages from
	// other nodes waiting to be applied to local sockets (broadcasts,
	// socketsJoin/Leave, disconnectSockets, fetchSockets), counting the
	// one being applied. When it is reached, the transport's handler waits
	// for room before queueing a message it read from the stream, which
	// stops the stream reader: a node that cannot keep up leaves its
	// backlog in Redis, where the transport's lag metrics show it (and, if
	// MAXLEN trimming overtakes the reader, counts what was lost), instead
	// of piling it up in memory. Messages that came over pub/sub (requests:
	// fetchSockets, broadcasts with acks) never wait: they may use as much
	// room again, beyond which they are dropped, counted by
	// sockstream_adapter_inbound_dropped_total and logged. Default
	// DefaultInboundQueueSize (1,024 messages).
	InboundQueueSize int

	// Workers bounds the goroutines that run the queued work of all the
	// namespaces of a Builder (publishing, applying other nodes' messages,
	// server-side events, subscribing): a namespace with work is served by
	// one of them, in order, and an idle namespace holds none; they exit
	// when no namespace has work. A worker may wait for the transport (up
	// to its request timeout while Redis does not answer), so this is also
	// how many namespaces can publish at once. Default DefaultWorkers (64).
	Workers int

	// Logger receives warnings (malformed peer messages, publish errors) and
	// debug lines. Default slog.Default().
	Logger *slog.Logger

	// Registerer receives the adapter's metrics (see metrics.go). Nil means
	// the metrics are kept but registered nowhere; the global registry is
	// never used implicitly.
	Registerer prometheus.Registerer

	// Sessions, when set, persists and restores the sessions of connection
	// state recovery (Adapter.PersistSession / RestoreSession);
	// recovery.Sessions implements it. The adapter hands a restored socket
	// over from the replayed packets to live delivery without loss or
	// duplicate (see session.go). Setting it is what turns connection state
	// recovery on in the adapter: the stream offset is then appended to
	// every event broadcast without ack and not volatile (see addOffset),
	// as Node's ClusterAdapter does when the server's
	// connectionStateRecovery option is set. Nil: no offsets, nothing is
	// persisted, no session is ever restored.
	Sessions SessionStore
}

// withDefaults validates o and fills its zero fields.
func (o Config) withDefaults() (Config, error) {
	if o.HeartbeatInterval < 0 {
		return o, &ConfigError{Field: "HeartbeatInterval", Reason: "must not be negative"}
	}
	if o.HeartbeatTimeout < 0 {
		return o, &ConfigError{Field: "HeartbeatTimeout", Reason: "must not be negative"}
	}
	if o.RequestTimeout < 0 {
		return o, &ConfigError{Field: "RequestTimeout", Reason: "must not be negative"}
	}
	if o.InboundQueueSize < 0 {
		return o, &ConfigError{Field: "InboundQueueSize", Reason: "must not be negative"}
	}
	if o.Workers < 0 {
		return o, &ConfigError{Field: "Workers", Reason: "must not be negative"}
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.InboundQueueSize == 0 {
		o.InboundQueueSize = DefaultInboundQueueSize
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
		if o.HeartbeatTimeout <= o.HeartbeatInterval {
			o.HeartbeatTimeout = 2 * o.HeartbeatInterval
		}
	}
	if o.HeartbeatTimeout <= o.HeartbeatInterval {
		return o, &ConfigError{Field: "HeartbeatTimeout", Reason: "must exceed HeartbeatInterval (" + o.HeartbeatInterval.String() + ")"}
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
