package server

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// serverMetrics are the metrics of the Socket.IO layer, declared in one place.
type serverMetrics struct {
	connected    *prometheus.GaugeVec
	connections  *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	emits        *prometheus.CounterVec
	instrumented sync.Map // socket.Namespace → struct{}
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
	}
	for _, c := range []prometheus.Collector{m.connected, m.connections, m.disconnects, m.emits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *serverMetrics) emitted(nsp string) { m.emits.WithLabelValues(nsp).Inc() }

func (m *serverMetrics) socketConnected(nsp string) {
	m.connected.WithLabelValues(nsp).Inc()
	m.connections.WithLabelValues(nsp).Inc()
}

func (m *serverMetrics) socketDisconnected(nsp, reason string) {
	if !knownReasons[reason] {
		reason = "other"
	}
	m.connected.WithLabelValues(nsp).Dec()
	m.disconnects.WithLabelValues(nsp, reason).Inc()
}

// knownReasons bounds the label values of disconnection reasons.
var knownReasons = map[string]bool{
	"client namespace disconnect": true, "server namespace disconnect": true,
	"transport close": true, "transport error": true, "ping timeout": true,
	"parse error": true, "forced close": true, "forced server close": true,
	"server shutting down": true,
}

// instrument sets a namespace up, once: it fixes the handshake's auth before
// any middleware sees it, and wraps and counts each connection before the
// OnConnection handlers run. A dynamic namespace passes both on to the
// namespaces it creates.
func (s *Server) instrument(nsp socket.Namespace) {
	if _, loaded := s.metrics.instrumented.LoadOrStore(nsp, struct{}{}); loaded {
		return
	}
	// zishang520 leaves Handshake.Auth nil when the client sends no auth
	// payload (the official client sends none unless told to); Node's
	// socket.io gives {}. Fixed here, first thing, so that middlewares,
	// handlers, Raw() and FetchSockets all see {} (TestHandshakeAuth).
	nsp.Use(func(raw *socket.Socket, next func(*socket.ExtendedError)) {
		if h := raw.Handshake(); h != nil && h.Auth == nil {
			h.Auth = map[string]any{}
		}
		next(nil)
	})
	_ = nsp.On("connection", func(args ...any) {
		if len(args) == 0 {
			return
		}
		if raw, ok := args[0].(*socket.Socket); ok {
			s.wrap(raw).connected()
		}
	})
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
