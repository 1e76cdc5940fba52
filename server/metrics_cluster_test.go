package server_test

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/promtest"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// seriesOf returns every series of the metric family name on ts's /metrics,
// keyed by their label set as the text format writes it ("" when none).
func seriesOf(t testing.TB, ts *testServer, name string) map[string]float64 {
	t.Helper()
	code, body := get(t, ts.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return parseSeries(t, body, name)
}

// counter is metric for a series that appears with its first increment:
// absent reads 0.
func counter(t testing.TB, ts *testServer, series string) float64 {
	t.Helper()
	return max(metric(t, ts, series), 0)
}

func parseSeries(t testing.TB, body, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			continue // another family sharing the prefix
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			t.Fatalf("metric %s{%s}: %v", name, labels, err)
		}
		out[labels] = v
	}
	return out
}

// TestMetricsCluster runs two clustered servers, a with its own Redis
// connection, b through a proxy that the test cuts, and checks what their
// /metrics say about lag, liveness and traffic, directly and through a real
// Prometheus scraping both.
func TestMetricsCluster(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	setup := func(srv *server.Server) {
		srv.OnConnection(func(s *server.Socket) {
			s.On("echo", func(e *server.Event) { e.Ack(e.Args...) })
		})
	}
	// No Registry: the server's own, with the Go and process collectors.
	a := startServer(t, server.Config{Redis: fastCluster(rs.URL())}, setup)
	b := startServer(t, server.Config{Redis: fastCluster("redis://" + proxy.Addr())}, setup)
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	const (
		alive   = `sockstream_adapter_peers_alive{nsp="/"}`
		redisUp = "sockstream_cluster_redis_up"
		lagSec  = `sockstream_cluster_stream_lag_seconds{stream="socket.io"}`
		lagEnt  = `sockstream_cluster_stream_lag_entries{stream="socket.io"}`
		outbox  = "sockstream_cluster_outbox_messages"
	)
	for _, ts := range []*testServer{a, b} {
		eventually(t, "one peer alive", func() bool { return metric(t, ts, alive) == 1 })
	}
	// a knows b by the uid b's adapter_info gives, and its silence is short.
	var uidB string
	for labels := range seriesOf(t, b, "sockstream_adapter_info") {
		if strings.HasPrefix(labels, `nsp="/",uid="`) {
			uidB = strings.TrimSuffix(strings.TrimPrefix(labels, `nsp="/",uid="`), `"`)
		}
	}
	if uidB == "" {
		t.Fatalf("b has no sockstream_adapter_info for /: %v", seriesOf(t, b, "sockstream_adapter_info"))
	}
	peerB := `sockstream_adapter_peer_last_seen_seconds{nsp="/",peer="` + uidB + `"}`
	if age := metric(t, a, peerB); age < 0 || age > 2 {
		t.Errorf("a: %s = %v, want a recent heartbeat", peerB, age)
	}

	// Traffic: official clients, 2 on a, 1 on b.
	d := startDriver(t)
	d.connected("a1", a.URL, transportModes[0].opts)
	d.connected("a2", a.URL, transportModes[1].opts)
	d.connected("b1", b.URL, transportModes[0].opts)
	// The client may see its CONNECT before the server's connection
	// handlers (which count it) have run.
	eventually(t, "a: 2 connected sockets", func() bool { return metric(t, a, `sockstream_connected_sockets{namespace="/"}`) == 2 })
	eventually(t, "b: 1 connected socket", func() bool { return metric(t, b, `sockstream_connected_sockets{namespace="/"}`) == 1 })
	inPackets, inBytes := metric(t, a, "sockstream_engine_packets_received_total"), metric(t, a, "sockstream_engine_received_bytes_total")
	outPackets, outBytes := metric(t, a, "sockstream_engine_packets_sent_total"), metric(t, a, "sockstream_engine_sent_bytes_total")
	payload := strings.Repeat("x", 1000)
	if got := d.call("a1", "echo", payload); len(got) != 1 || got[0] != payload {
		t.Fatalf("echo = %v", got)
	}
	if got := metric(t, a, "sockstream_engine_packets_received_total"); got <= inPackets {
		t.Errorf("a: packets received %v -> %v after an emit", inPackets, got)
	}
	if got := metric(t, a, "sockstream_engine_received_bytes_total"); got < inBytes+1000 {
		t.Errorf("a: bytes received %v -> %v after a 1000-byte emit", inBytes, got)
	}
	if got := metric(t, a, "sockstream_engine_packets_sent_total"); got <= outPackets {
		t.Errorf("a: packets sent %v -> %v after an ack", outPackets, got)
	}
	if got := metric(t, a, "sockstream_engine_sent_bytes_total"); got < outBytes+1000 {
		t.Errorf("a: bytes sent %v -> %v after a 1000-byte ack", outBytes, got)
	}
	if got := metric(t, a, "sockstream_engine_connections"); got != 2 {
		t.Errorf("a: engine connections = %v, want 2", got)
	}

	// A cluster request and a broadcast across the nodes.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	socks, err := a.Of("/").FetchSockets(ctx)
	if err != nil || len(socks) != 3 {
		t.Fatalf("FetchSockets = %d sockets, %v", len(socks), err)
	}
	if got := metric(t, a, `sockstream_adapter_requests_total{kind="fetch_sockets",outcome="ok"}`); got != 1 {
		t.Errorf("a: fetch_sockets ok = %v, want 1", got)
	}
	if got := metric(t, a, `sockstream_adapter_request_duration_seconds_count{kind="fetch_sockets"}`); got != 1 {
		t.Errorf("a: fetch_sockets duration count = %v, want 1", got)
	}
	recvB := metric(t, b, "sockstream_adapter_broadcasts_received_total")
	if err := a.Emit("hello", 1); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("b1", "hello")
	// a counts the publication once Redis has answered its XADD, which
	// can be after b's client got the broadcast.
	eventually(t, "a counts its broadcast", func() bool {
		return metric(t, a, "sockstream_adapter_broadcasts_published_total") >= 1
	})
	eventually(t, "b counts the broadcast", func() bool {
		return metric(t, b, "sockstream_adapter_broadcasts_received_total") > recvB
	})
	if got := metric(t, a, "sockstream_cluster_xadd_duration_seconds_count"); got < 1 {
		t.Errorf("a: XADD latency count = %v", got)
	}

	// A real Prometheus scrapes both nodes.
	prom := promtest.Start(t, 500*time.Millisecond,
		promtest.Target{Job: "sockstream", Addr: a.addr}, promtest.Target{Job: "sockstream", Addr: b.addr})
	prom.Eventually(t, waitFor, "sum(sockstream_connected_sockets)", func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 3
	})
	prom.Eventually(t, waitFor, `count(sockstream_cluster_redis_up == 1)`, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})
	prom.Eventually(t, waitFor, `sum(sockstream_adapter_peers_alive{nsp="/"})`, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})
	// The Go and process collectors are there too.
	prom.Eventually(t, waitFor, `count(go_goroutines{job="sockstream"})`, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 2
	})

	// b loses Redis while a publishes: b's lag rises, a declares b dead,
	// and what b publishes meanwhile waits in its outbox.
	deadA := counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="timeout"}`)
	reconnectsB := metric(t, b, "sockstream_cluster_reconnects_total")
	proxy.Cut()
	eventually(t, "b: redis_up 0", func() bool { return metric(t, b, redisUp) == 0 })
	for i := range 5 {
		if err := a.Emit("tick", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Emit("from-b", "queued"); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, b, outbox); got != 1 {
		t.Errorf("b: outbox messages while cut = %v, want 1", got)
	}
	eventually(t, "b: lag seconds rise while cut", func() bool { return metric(t, b, lagSec) >= 1.5 })
	eventually(t, "a: b declared dead", func() bool { return metric(t, a, alive) == 0 })
	if got := counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="timeout"}`); got != deadA+1 {
		t.Errorf("a: peers declared dead (timeout) %v -> %v, want +1", deadA, got)
	}
	if got := metric(t, a, peerB); got != -1 {
		t.Errorf("a: %s = %v after b was declared dead, want no series", peerB, got)
	}
	if got := metric(t, a, lagSec); got != 0 {
		t.Errorf("a: lag seconds = %v, want 0 (a is connected)", got)
	}

	proxy.Restore()
	for i := range 5 {
		if got := d.waitEvent("b1", "tick").Args; len(got) != 1 || got[0] != float64(i) {
			t.Fatalf("b1 tick %d = %v", i, got)
		}
	}
	d.waitEvent("a1", "from-b")
	eventually(t, "b: redis_up 1", func() bool { return metric(t, b, redisUp) == 1 })
	eventually(t, "b: lag back to 0", func() bool { return metric(t, b, lagSec) == 0 && metric(t, b, lagEnt) == 0 })
	if got := metric(t, b, "sockstream_cluster_reconnects_total"); got < reconnectsB+1 {
		t.Errorf("b: reconnects %v -> %v, want at least +1", reconnectsB, got)
	}
	// The entry is readable on Redis before b's writer has its reply and
	// empties the outbox: that part is asynchronous.
	eventually(t, "b: outbox empty after restore", func() bool { return metric(t, b, outbox) == 0 })
	eventually(t, "a: b alive again", func() bool { return metric(t, a, alive) == 1 })

	// promtool finds nothing on either busy node's exposition, and
	// docs/metrics.md documents every family.
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		_, body := get(t, ts.URL+"/metrics")
		if problems := promtest.CheckMetrics(t, []byte(body)); len(problems) > 0 {
			t.Errorf("promtool check metrics on %s: %s", name, strings.Join(problems, "\n"))
		}
		for line := range strings.SplitSeq(body, "\n") {
			family, ok := strings.CutPrefix(line, "# TYPE ")
			if !ok || !strings.HasPrefix(family, "sockstream_") {
				continue
			}
			family, _, _ = strings.Cut(family, " ")
			if !strings.Contains(string(doc), "`"+family+"`") {
				t.Errorf("docs/metrics.md does not document %s", family)
			}
		}
	}

	// b shuts down: a stops counting it.
	deadA = counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="timeout"}`) +
		counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="close"}`)
	if err := b.stop(t); err != nil {
		t.Fatalf("b: Serve = %v", err)
	}
	prom.Eventually(t, waitFor, `sockstream_adapter_peers_alive{instance="`+a.addr+`",nsp="/"}`, func(s []promtest.Sample) bool {
		return len(s) == 1 && s[0].Value == 0
	})
	if got := counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="timeout"}`) +
		counter(t, a, `sockstream_adapter_peers_declared_dead_total{reason="close"}`); got != deadA+1 {
		t.Errorf("a: peers declared dead %v -> %v after b's shutdown, want +1", deadA, got)
	}
}
