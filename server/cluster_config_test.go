package server_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// TestClusterFromConfig: New clusters over Redis when Config.Redis.URL is
// set: /readyz follows Redis, and a broadcast reaches the clients of another
// server on the same Redis.
func TestClusterFromConfig(t *testing.T) {
	t.Parallel()
	rs := redistest.StartStandalone(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	proxy.Cut()
	reg := prometheus.NewRegistry()
	a := startServer(t, server.Config{Registry: reg, Redis: fastCluster("redis://" + proxy.Addr())}, nil)
	if code := readyz(t, a); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis unreachable = %d", code)
	}
	proxy.Restore()
	eventually(t, "/readyz 200", func() bool { return readyz(t, a) == http.StatusOK })
	b := startClusterServer(t, rs.URL(), nil)
	eventually(t, "/readyz 200", func() bool { return readyz(t, b) == http.StatusOK })

	d := startDriver(t)
	d.connected("on-b", b.URL, transportModes[0].opts)
	if err := a.Emit("from-a", "x"); err != nil {
		t.Fatal(err)
	}
	d.waitEvent("on-b", "from-a")
	// a counts the publication once Redis has answered its XADD, which
	// can be after b's client got the broadcast.
	eventually(t, "a counts its broadcast", func() bool {
		return metric(t, a, "sockstream_adapter_broadcasts_published_total") >= 1
	})
	if err := a.stop(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
	eventually(t, "transport closed at Shutdown", func() bool { return proxy.Conns() == 0 })

	// An invalid Redis section is a *ConfigError from New, before anything
	// starts.
	_, err := server.New(server.Config{Logger: quiet(), Redis: server.RedisConfig{URL: "redis://" + proxy.Addr(), StreamCount: -1}})
	var ce *server.ConfigError
	if !errors.As(err, &ce) || ce.Option != "redis-stream-count" {
		t.Errorf("New with a bad Redis section = %v", err)
	}
}
