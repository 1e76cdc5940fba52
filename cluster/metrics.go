package cluster

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the transport's Prometheus metrics. They always exist (so the
// code never checks for nil) and are registered only on Options.Registerer.
type metrics struct {
	published        *prometheus.CounterVec // route
	publishErrors    *prometheus.CounterVec // route, reason
	xaddDuration     prometheus.Histogram   // one DoMulti of XADDs
	publishWait      prometheus.Histogram   // from Publish to the entry id
	outboxMessages   prometheus.Gauge       // messages waiting for Redis
	outboxCapacity   prometheus.Gauge       // PublishBufferSize
	outboxFull       prometheus.Counter     // Publish refused: buffer full
	xaddReconciled   prometheus.Counter     // XADDs found applied after a lost reply
	entriesRead      *prometheus.CounterVec // stream
	malformed        *prometheus.CounterVec // source, reason
	entriesLost      *prometheus.CounterVec // stream
	lagEntries       *prometheus.GaugeVec   // stream
	lagSeconds       *prometheus.GaugeVec   // stream
	pubsubReceived   prometheus.Counter     //
	redisUp          prometheus.Gauge       //
	reconnects       prometheus.Counter     //
	handlerQueue     prometheus.Gauge       // messages waiting for the handlers
	subscriptions    prometheus.Gauge       // active Subscribe calls
	readerErrors     *prometheus.CounterVec // stream
	collectorsToFree []prometheus.Collector // registered, for Close
	registerer       prometheus.Registerer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "sockstream", "cluster"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	latency := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		published: counterVec("messages_published_total",
			"Messages written to Redis, by route: stream (XADD), pubsub (PUBLISH to the namespace) or response (PUBLISH to one node).", "route"),
		publishErrors: counterVec("publish_errors_total",
			"Messages that could not be published, by route and reason (encode, buffer_full, redis, closed, canceled).", "route", "reason"),
		xaddDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "xadd_duration_seconds",
			Help: "Round trip of one pipelined batch of XADD commands.", Buckets: latency}),
		publishWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "publish_delay_seconds",
			Help: "Time from Publish to the stream entry being written, outages included.", Buckets: latency}),
		outboxMessages: gauge("outbox_messages", "Durable messages waiting to be written to the stream."),
		outboxCapacity: gauge("outbox_capacity", "Maximum number of durable messages that may wait (PublishBufferSize)."),
		outboxFull:     counter("outbox_full_total", "Publish calls refused because the outbox was full."),
		xaddReconciled: counter("xadd_reconciled_total",
			"Messages whose XADD reply was lost but which were found in the stream, and so were not written twice."),
		entriesRead: counterVec("entries_read_total", "Stream entries read, by stream.", "stream"),
		malformed: counterVec("messages_malformed_total",
			"Stream entries and pub/sub payloads skipped because they could not be decoded, by source (stream name or pubsub) and reason.", "source", "reason"),
		entriesLost: counterVec("stream_entries_trimmed_unread_total",
			"Stream entries trimmed (MAXLEN) before this node read them: messages it never received.", "stream"),
		lagEntries: gaugeVec("stream_lag_entries",
			"Entries added to the stream that this node has not read yet (Redis 7+); measured every second, the last measure is kept while Redis is unreachable.", "stream"),
		lagSeconds: gaugeVec("stream_lag_seconds",
			"Age of the oldest stream entry this node has not read yet, from its id, 0 when caught up; while Redis is unreachable, the seconds since this node last knew it was caught up.", "stream"),
		pubsubReceived: counter("pubsub_messages_received_total", "Pub/sub messages received."),
		redisUp:        gauge("redis_up", "1 when the last command to Redis succeeded, 0 when it failed."),
		reconnects:     counter("reconnects_total", "Times the connection to Redis came back after a failure."),
		handlerQueue:   gauge("handler_queue_messages", "Received messages waiting to be handed to the subscribers."),
		subscriptions:  gauge("subscriptions", "Active subscriptions (namespace adapters)."),
		readerErrors:   counterVec("stream_read_errors_total", "Failed stream reads, by stream.", "stream"),
	}
	if reg == nil {
		return m, nil
	}
	all := []prometheus.Collector{
		m.published, m.publishErrors, m.xaddDuration, m.publishWait, m.outboxMessages, m.outboxCapacity,
		m.outboxFull, m.xaddReconciled, m.entriesRead, m.malformed, m.entriesLost, m.lagEntries, m.lagSeconds,
		m.pubsubReceived, m.redisUp, m.reconnects, m.handlerQueue, m.subscriptions, m.readerErrors,
	}
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			m.registerer = reg
			m.unregister()
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("cluster: metrics already registered (two transports need two registries): %w", err)
			}
			return nil, fmt.Errorf("cluster: registering metrics: %w", err)
		}
		m.collectorsToFree = append(m.collectorsToFree, c)
	}
	m.registerer = reg
	return m, nil
}

// unregister removes the metrics from the registry, so that a transport
// created after Close can register again.
func (m *metrics) unregister() {
	if m.registerer == nil {
		return
	}
	for _, c := range m.collectorsToFree {
		m.registerer.Unregister(c)
	}
	m.collectorsToFree = nil
}
