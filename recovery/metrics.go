package recovery

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the restore metrics. A nil *Metrics records nothing.
//
//	sockstream_recovery_attempts_total{result}            counter
//	sockstream_recovery_restore_duration_seconds{result}  histogram
//	sockstream_recovery_replayed_packets_total            counter
//	sockstream_recovery_malformed_entries_total           counter
//	sockstream_recovery_sessions_persisted_total{result}  counter
//
// result is "recovered" or one of the Reason values: "expired", "trimmed",
// "invalid", "error". Malformed entries are stream entries of the namespace
// a restore skipped because they do not decode. Persisted sessions are
// counted by result, "ok" or "error" (see Sessions).
type Metrics struct {
	attempts  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	replayed  prometheus.Counter
	malformed prometheus.Counter
	persisted *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg. A nil reg keeps
// them unregistered (still counting, which tests can read); the global
// registry is never used implicitly. It fails when reg already holds them.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_recovery_attempts_total",
			Help: "Connection state recovery attempts by result (recovered, expired, trimmed, invalid, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockstream_recovery_restore_duration_seconds",
			Help:    "Time to restore a session: take it from the store and read the missed packets from the log.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_recovery_replayed_packets_total",
			Help: "Missed packets handed back to recovered sockets.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sockstream_recovery_malformed_entries_total",
			Help: "Stream entries of a restored namespace skipped because they do not decode.",
		}),
		persisted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstream_recovery_sessions_persisted_total",
			Help: "Sessions persisted at an abnormal disconnection, by result (ok, error).",
		}, []string{"result"}),
	}
	m.persisted.WithLabelValues("ok")
	m.persisted.WithLabelValues("error")
	// Every result exists from the start, so a rate() over a result that
	// has not happened yet reads 0, not "no data".
	for _, r := range []string{resultRecovered, string(ReasonExpired), string(ReasonTrimmed), string(ReasonInvalid), string(ReasonError)} {
		m.attempts.WithLabelValues(r)
		m.duration.WithLabelValues(r)
	}
	if reg != nil {
		cs := []prometheus.Collector{m.attempts, m.duration, m.replayed, m.malformed, m.persisted}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] { // all or nothing
					reg.Unregister(done)
				}
				return nil, fmt.Errorf("recovery: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

const resultRecovered = "recovered"

func (m *Metrics) observe(result string, d time.Duration, replayed int) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(result).Inc()
	m.duration.WithLabelValues(result).Observe(d.Seconds())
	if replayed > 0 {
		m.replayed.Add(float64(replayed))
	}
}

// MalformedEntries counts n stream entries of the namespace being restored
// that a PacketLog skipped because they did not decode. A nil Metrics
// counts nothing.
func (m *Metrics) MalformedEntries(n int) {
	if m != nil {
		m.malformed.Add(float64(n))
	}
}

func (m *Metrics) sessionPersisted(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.persisted.WithLabelValues("error").Inc()
		return
	}
	m.persisted.WithLabelValues("ok").Inc()
}
