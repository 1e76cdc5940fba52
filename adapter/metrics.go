package adapter

import (
	"errors"
	"fmt"
	"sync"
	"time"

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
	inboundDropped   *prometheus.CounterVec // type
	callbacksDropped prometheus.Counter
	peers            *peerCollector
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
		inboundDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_adapter_inbound_dropped_total",
			Help: "Requests received over pub/sub (fetch_sockets, broadcasts with acks) dropped because the namespace's inbound queue was full.",
		}, []string{"type"}),
		callbacksDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_adapter_callbacks_dropped_total",
			Help: "Callbacks of broadcasts with acks (the client count of a lost peer) not run because their adapter had closed.",
		}),
		peers: newPeerCollector(),
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
	if m.inboundDropped, err = register(reg, m.inboundDropped); err != nil {
		return nil, err
	}
	if m.callbacksDropped, err = register(reg, m.callbacksDropped); err != nil {
		return nil, err
	}
	if m.peers, err = register(reg, m.peers); err != nil {
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

// peerCollector reports, at scrape time, each live peer's silence and each
// adapter's uid. Computed from the adapters' own peer tables rather than
// kept in a GaugeVec, the series exist exactly as long as the peer is
// alive: a peer declared dead or closed disappears from the next scrape, so
// the label cardinality is bounded by the live nodes, and no ticker has to
// refresh ages between scrapes.
type peerCollector struct {
	age  *prometheus.Desc
	info *prometheus.Desc

	mu       sync.Mutex
	adapters map[*NamespaceAdapter]struct{}
}

func newPeerCollector() *peerCollector {
	return &peerCollector{
		age: prometheus.NewDesc("sockstream_adapter_peer_last_seen_seconds",
			"Seconds since the last message (a heartbeat or any other) of each live peer, by namespace and peer uid; the series goes when the peer is declared dead or closes.",
			[]string{"nsp", "peer"}, nil),
		info: prometheus.NewDesc("sockstream_adapter_info",
			"1 for each running namespace adapter of this node, labelled with the uid other nodes know it by (the peer label of their sockstream_adapter_peer_last_seen_seconds).",
			[]string{"nsp", "uid"}, nil),
		adapters: map[*NamespaceAdapter]struct{}{},
	}
}

func (c *peerCollector) add(a *NamespaceAdapter) {
	c.mu.Lock()
	c.adapters[a] = struct{}{}
	c.mu.Unlock()
}

func (c *peerCollector) remove(a *NamespaceAdapter) {
	c.mu.Lock()
	delete(c.adapters, a)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.info
}

// Collect implements prometheus.Collector.
func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	adapters := make([]*NamespaceAdapter, 0, len(c.adapters))
	for a := range c.adapters {
		adapters = append(adapters, a)
	}
	c.mu.Unlock()
	now := time.Now()
	// Two Builders on one registry may both see a peer: a series is sent
	// once (the freshest), as the registry refuses duplicates.
	type key struct{ nsp, peer string }
	ages := map[key]float64{}
	for _, a := range adapters {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, a.name, a.uid)
		for _, p := range a.Peers() {
			k := key{a.name, p.UID}
			age := max(0, now.Sub(p.LastSeen).Seconds())
			if old, ok := ages[k]; !ok || age < old {
				ages[k] = age
			}
		}
	}
	for k, age := range ages {
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, k.nsp, k.peer)
	}
}
