package eio

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a gauge's or counter's value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

func TestMetrics(t *testing.T) {
	m := &Metrics{
		Sessions:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}),
		PacketsIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "pi"}),
		PacketsOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "po"}),
		BytesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "bi"}),
		BytesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "bo"}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "sc"}),
	}
	h := newHarness(t, Options{Metrics: m, MaxBufferedBytes: 1000}, true)
	c, _ := h.dialWS()
	rec := h.next()
	if got := value(m.Sessions); got != 1 {
		t.Errorf("sessions %v", got)
	}
	send(t, c, "4hello")
	readText(t, c)
	if in, out := value(m.PacketsIn), value(m.PacketsOut); in != 1 || out != 2 {
		t.Errorf("packets in %v out %v, want 1 and 2 (open, echo)", in, out)
	}
	if bi, bo := value(m.BytesIn), value(m.BytesOut); bi != 6 || bo < 6 {
		t.Errorf("bytes in %v out %v", bi, bo)
	}
	if err := rec.s.Send(TextMessage(make([]byte, 2000))); err != ErrSlowConsumer {
		t.Fatalf("Send over the bound: %v", err)
	}
	rec.waitClose(t)
	if got := value(m.SlowConsumers); got != 1 {
		t.Errorf("slow consumers %v", got)
	}
	if got := value(m.Sessions); got != 0 {
		t.Errorf("sessions %v after the close", got)
	}
}
