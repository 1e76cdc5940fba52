package adapter

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Request kinds and outcomes, the label values of the request metrics.
const (
	kindFetchSockets   = "fetch_sockets"
	kindServerSideEmit = "server_side_emit"
	kindBroadcastAck   = "broadcast_ack"

	// outcomeOK: every expected live node answered.
	outcomeOK = "ok"
	// outcomeTimeout: the request timed out with answers missing.
	outcomeTimeout = "timeout"
	// outcomeLocal: no other node was expected; answered locally.
	outcomeLocal = "local"
	// outcomeClosed: the adapter closed while the request waited.
	outcomeClosed = "closed"
)

// metrics are shared by every namespace adapter of one Builder.
type metrics struct {
	requests         *prometheus.CounterVec   // kind, outcome
	requestDuration  *prometheus.HistogramVec // kind
	peersAlive       *prometheus.GaugeVec     // nsp
	peersDead        *prometheus.CounterVec   // reason
	broadcastsPub    prometheus.Counter
	broadcastsRecv   prometheus.Counter
	malformed        *prometheus.CounterVec // reason
	publishErrors    *prometheus.CounterVec // type
	volatileDropped  prometheus.Counter
	responsesDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_adapter_requests_total",
			Help: "Cluster requests (fetch_sockets, server_side_emit, broadcast_ack) by outcome (ok, timeout, local, closed).",
		}, []string{"kind", "outcome"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockstream_adapter_request_duration_seconds",
			Help:    "Time from the start of a cluster request to its completion, timeouts included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		peersAlive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockstream_adapter_peers_alive",
			Help: "Peers (other nodes' adapters of the namespace) that sent a heartbeat recently.",
		}, []string{"nsp"}),
		peersDead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_adapter_peers_declared_dead_total",
			Help: "Peers dropped, because they were silent for the heartbeat timeout or announced their close.",
		}, []string{"reason"}),
		broadcastsPub: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_adapter_broadcasts_published_total",
			Help: "BROADCAST messages published to the cluster.",
		}),
		broadcastsRecv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_adapter_broadcasts_received_total",
			Help: "BROADCAST messages received from other nodes and applied to local sockets.",
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_adapter_malformed_messages_total",
			Help: "Messages from peers that were dropped because they were malformed.",
		}, []string{"reason"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_adapter_publish_errors_total",
			Help: "Publications (messages and responses) the transport rejected.",
		}, []string{"type"}),
		volatileDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_adapter_volatile_dropped_total",
			Help: "Volatile broadcasts not published because the transport was not ready (delivered locally only).",
		}),
		responsesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_adapter_late_responses_total",
			Help: "Responses received for requests that had already completed or timed out.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.requestDuration, err = register(reg, m.requestDuration); err != nil {
		return nil, err
	}
	if m.peersAlive, err = register(reg, m.peersAlive); err != nil {
		return nil, err
	}
	if m.peersDead, err = register(reg, m.peersDead); err != nil {
		return nil, err
	}
	if m.broadcastsPub, err = register(reg, m.broadcastsPub); err != nil {
		return nil, err
	}
	if m.broadcastsRecv, err = register(reg, m.broadcastsRecv); err != nil {
		return nil, err
	}
	if m.malformed, err = register(reg, m.malformed); err != nil {
		return nil, err
	}
	if m.publishErrors, err = register(reg, m.publishErrors); err != nil {
		return nil, err
	}
	if m.volatileDropped, err = register(reg, m.volatileDropped); err != nil {
		return nil, err
	}
	if m.responsesDropped, err = register(reg, m.responsesDropped); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg; when an identical collector is already there
// (a second Builder on the same registry), that one is used instead.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("adapter: registering metrics: %w", err)
	}
	return c, nil
}
