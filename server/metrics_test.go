package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sockstream/sockstream/internal/promtest"
	"github.com/sockstream/sockstream/server"
)

// TestMetricsEngineTraffic: the Engine.IO counters follow the packets and
// payload bytes of official clients on every transport, the connection
// gauge follows the clients, and promtool finds nothing wrong with the
// exposition of a single (unclustered) node.
func TestMetricsEngineTraffic(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{}, func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
		})
	})
	const (
		conns      = "sockstream_engine_connections"
		packetsIn  = "sockstream_engine_packets_received_total"
		packetsOut = "sockstream_engine_packets_sent_total"
		bytesIn    = "sockstream_engine_received_bytes_total"
		bytesOut   = "sockstream_engine_sent_bytes_total"
	)
	if got := metric(t, ts, conns); got != 0 {
		t.Fatalf("%s before any client = %v", conns, got)
	}
	d := startDriver(t)
	for i, mode := range transportModes {
		id := "c-" + mode.name
		d.connected(id, ts.URL, mode.opts)
		settle(d, id, mode.name)
		eventually(t, "engine connection counted", func() bool { return metric(t, ts, conns) == float64(i+1) })

		before := map[string]float64{}
		for _, name := range []string{packetsIn, packetsOut, bytesIn, bytesOut} {
			before[name] = metric(t, ts, name)
		}
		payload := strings.Repeat(mode.name, 500)
		if got := d.call(id, "echo", payload); len(got) != 1 || got[0] != payload {
			t.Fatalf("%s: echo = %v", mode.name, got)
		}
		// The event and its ack are one packet each way, with at least the
		// payload as bytes; pings may add more.
		if got := metric(t, ts, packetsIn); got < before[packetsIn]+1 {
			t.Errorf("%s: %s %v -> %v", mode.name, packetsIn, before[packetsIn], got)
		}
		if got := metric(t, ts, packetsOut); got < before[packetsOut]+1 {
			t.Errorf("%s: %s %v -> %v", mode.name, packetsOut, before[packetsOut], got)
		}
		if got := metric(t, ts, bytesIn); got < before[bytesIn]+float64(len(payload)) {
			t.Errorf("%s: %s %v -> %v, want at least +%d", mode.name, bytesIn, before[bytesIn], got, len(payload))
		}
		if got := metric(t, ts, bytesOut); got < before[bytesOut]+float64(len(payload)) {
			t.Errorf("%s: %s %v -> %v, want at least +%d", mode.name, bytesOut, before[bytesOut], got, len(payload))
		}
	}
	d.send(map[string]any{"op": "close", "id": "c-websocket"})
	eventually(t, "engine connection gone", func() bool { return metric(t, ts, conns) == float64(len(transportModes)-1) })

	_, body := get(t, ts.URL+"/metrics")
	if problems := promtest.CheckMetrics(t, []byte(body)); len(problems) > 0 {
		t.Errorf("promtool check metrics: %s\n%s", strings.Join(problems, "\n"), body)
	}
}

// TestMetricsDocs: the alerting rules of docs/metrics.md and the queries of
// docs/grafana-dashboard.json are valid PromQL, as promtool checks them.
func TestMetricsDocs(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (`make test` does, as root)")
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("docs/metrics.md has no ```yaml block of alerting rules")
	}
	rules, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/metrics.md: unterminated ```yaml block")
	}

	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	// Each query becomes a recording rule, Grafana's variables replaced by
	// what they expand to, so that promtool parses it.
	grafana := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
	var rec strings.Builder
	rec.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			expr, err := json.Marshal(grafana.Replace(tg.Expr))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&rec, "      - record: dashboard:query%d\n        expr: %s\n", n, expr)
			n++
		}
	}
	if n < 20 {
		t.Fatalf("the dashboard has %d queries", n)
	}

	dir := t.TempDir()
	for name, content := range map[string]string{"alerts.yml": rules, "dashboard.yml": rec.String()} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules %s: %v\n%s\n%s", name, err, out, content)
		}
	}
}

// A program that has its own metrics passes its registry: the server adds
// its metrics there and /metrics serves the lot. The Go and process
// collectors are then the program's to register (the server registers them
// only on a registry of its own).
func ExampleServer_Registry() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	jobs := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_jobs_total", Help: "Jobs done."})
	reg.MustRegister(jobs)
	jobs.Inc()

	srv, err := server.New(server.Config{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if line == "app_jobs_total 1" || line == "sockstream_engine_connections 0" {
			fmt.Println(line)
		}
	}
	fmt.Println(srv.Registry() == reg)
	// Output:
	// app_jobs_total 1
	// sockstream_engine_connections 0
	// true
}
