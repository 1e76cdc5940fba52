package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sockstream/sockstream/internal/eio"
)

// serverMetrics are the metrics of the Socket.IO layer, declared in one place.
type serverMetrics struct {
	connected   *prometheus.GaugeVec
	connections *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	emits       *prometheus.CounterVec

	// Engine.IO level: every packet of every transport, heartbeats and
	// handshakes included.
	engineConns prometheus.Gauge
	packetsIn   prometheus.Counter
	packetsOut  prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	slow        prometheus.Counter
	// volatileDrops counts volatile packets (broadcasts and emits to one
	// socket) not written to a busy client.
	volatileDrops prometheus.Counter

	// hookDrops counts the notifications of OnAnyOutgoing and room
	// handlers dropped because their bounded queue was full.
	hookDrops *prometheus.CounterVec
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockstream_connected_sockets",
			Help: "Sockets connected to this node, by namespace.",
		}, []string{"namespace"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_connections_total",
			Help: "Sockets connected to this node since start, by namespace.",
		}, []string{"namespace"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_disconnections_total",
			Help: "Sockets disconnected from this node since start, by namespace and reason.",
		}, []string{"namespace", "reason"}),
		emits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_socket_emits_total",
			Help: "Events emitted to single sockets through Socket.Emit, by namespace.",
		}, []string{"namespace"}),
		engineConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sockstream_engine_connections",
			Help: "Engine.IO connections (clients, whatever their namespaces) open on this node.",
		}),
		packetsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_engine_packets_received_total",
			Help: "Engine.IO packets received from clients (messages, pings, pongs, upgrades, closes).",
		}),
		packetsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_engine_packets_sent_total",
			Help: "Engine.IO packets queued for clients (messages, pings, pongs, opens, closes).",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_engine_received_bytes_total",
			Help: "Payload bytes of the Engine.IO packets received (without the transport's framing).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_engine_sent_bytes_total",
			Help: "Payload bytes of the Engine.IO packets queued for clients (without the transport's framing).",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_engine_slow_consumers_total",
			Help: "Engine.IO connections closed because what was queued for them passed Config.MaxBufferedBytes.",
		}),
		volatileDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_volatile_dropped_total",
			Help: "Volatile packets (volatile broadcasts and Socket.Volatile emits) not written to a client because its transport was busy (something queued or being written, or no polling GET waiting), as Node drops them.",
		}),
		hookDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_hook_events_dropped_total",
			Help: "Notifications for OnAnyOutgoing handlers (hook=\"outgoing\") and room handlers (hook=\"room\") dropped because too many waited for slow handlers.",
		}, []string{"hook"}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.connections, m.disconnects, m.emits,
		m.engineConns, m.packetsIn, m.packetsOut, m.bytesIn, m.bytesOut, m.slow, m.volatileDrops, m.hookDrops} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// nspMetrics are a namespace's series, looked up once (Namespace.metrics):
// no label hashing per emit, and a series deleted with its namespace
// (forget) is not created again by a late increment on the old namespace.
type nspMetrics struct {
	connected   prometheus.Gauge
	connections prometheus.Counter
	emits       prometheus.Counter
}

func (m *serverMetrics) of(nsp string) *nspMetrics {
	return &nspMetrics{
		connected:   m.connected.WithLabelValues(nsp),
		connections: m.connections.WithLabelValues(nsp),
		emits:       m.emits.WithLabelValues(nsp),
	}
}

// forget deletes the series of a namespace removed (see
// Config.CleanupEmptyChildNamespaces), each by its exact labels: one
// lookup each, whatever the number of namespaces.
func (m *serverMetrics) forget(nsp string) {
	m.connected.DeleteLabelValues(nsp)
	m.connections.DeleteLabelValues(nsp)
	m.emits.DeleteLabelValues(nsp)
	for r := range knownReasons {
		m.disconnects.DeleteLabelValues(nsp, r)
	}
	m.disconnects.DeleteLabelValues(nsp, otherReason)
}

func (m *serverMetrics) socketDisconnected(nsp string, nm *nspMetrics, reason string) {
	if !knownReasons[reason] {
		reason = otherReason
	}
	nm.connected.Dec()
	m.disconnects.WithLabelValues(nsp, reason).Inc()
}

// otherReason labels the disconnections whose reason is not a known one.
const otherReason = "other"

// knownReasons bounds the label values of disconnection reasons.
var knownReasons = map[string]bool{
	"client namespace disconnect": true, "server namespace disconnect": true,
	"transport close": true, "transport error": true, "ping timeout": true,
	"parse error": true, "forced close": true, "forced server close": true,
	"server shutting down": true, "slow consumer": true, "event backlog": true,
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// engine is what the Engine.IO server counts.
func (m *serverMetrics) engine() *eio.Metrics {
	return &eio.Metrics{
		Sessions:      m.engineConns,
		PacketsIn:     m.packetsIn,
		PacketsOut:    m.packetsOut,
		BytesIn:       m.bytesIn,
		BytesOut:      m.bytesOut,
		SlowConsumers: m.slow,
	}
}
