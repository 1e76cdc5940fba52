package server

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// serverMetrics are the metrics of the Socket.IO layer, declared in one place.
type serverMetrics struct {
	connected    *prometheus.GaugeVec
	connections  *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	emits        *prometheus.CounterVec
	instrumented sync.Map // socket.Namespace → struct{}
	// gatedNames are the names of the instrumented namespaces: those whose
	// "connection" event opens the connect gate (conn.go).
	gatedNames sync.Map // string → struct{}

	// Engine.IO level: every packet of every transport, heartbeats and
	// handshakes included.
	engineConns prometheus.Gauge
	packetsIn   prometheus.Counter
	packetsOut  prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
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
	}
	for _, c := range []prometheus.Collector{m.connected, m.connections, m.disconnects, m.emits,
		m.engineConns, m.packetsIn, m.packetsOut, m.bytesIn, m.bytesOut} {
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
	s.metrics.gatedNames.Store(nsp.Name(), struct{}{})
	// zishang520 leaves Handshake.Auth nil when the client sends no auth
	// payload (the official client sends none unless told to); Node's
	// socket.io gives {}. Fixed here, first thing, so that middlewares,
	// handlers, Raw() and FetchSockets all see {} (TestHandshakeAuth).
	nsp.Use(func(raw *socket.Socket, next func(*socket.ExtendedError)) {
		// The children of a dynamic namespace inherit this middleware
		// and the "connection" listener below, not the name above.
		if name := raw.Nsp().Name(); name != nsp.Name() {
			s.metrics.gatedNames.LoadOrStore(name, struct{}{})
		}
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
			// zishang520 fires "connection" right after it registered
			// the socket with its client: the namespace's packets may
			// pass now (connectGate).
			if cs := s.connState(raw.Conn()); cs != nil {
				cs.registered(raw.Nsp().Name())
			}
			s.wrap(raw).connected()
		}
	})
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// packetReceived counts a packet an engine socket received ("packet",
// emitted before anything reads its payload), except the PONG copies of the
// heartbeat correction, which no client sent (see engineio.WebSocket).
func (m *serverMetrics) packetReceived(p *packet.Packet) {
	if engineio.IsReplayedPong(p) {
		return
	}
	m.packetsIn.Inc()
	m.bytesIn.Add(payloadSize(p))
}

// packetQueued counts a packet queued for a client ("packetCreate", whose
// payload is the socket's own copy: broadcasts clone it per client).
func (m *serverMetrics) packetQueued(p *packet.Packet) {
	m.packetsOut.Inc()
	m.bytesOut.Add(payloadSize(p))
}

// payloadSize is the size of p's payload; 0 for packets without one.
func payloadSize(p *packet.Packet) float64 {
	if p == nil || p.Data == nil {
		return 0
	}
	// Both embed a *types.Buffer, whose Len panics when it is nil.
	switch d := p.Data.(type) {
	case *types.StringBuffer:
		if d != nil && d.Buffer != nil {
			return float64(d.Len())
		}
	case *types.BytesBuffer:
		if d != nil && d.Buffer != nil {
			return float64(d.Len())
		}
	case interface{ Len() int }:
		return float64(d.Len())
	}
	return 0
}
