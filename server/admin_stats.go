package server

import (
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// adminStats makes this node's server_stats, as instrument() emits them
// every 2 seconds. The aggregated events (bytes and packets in and out)
// are the growth of the server's Engine.IO counters since the previous
// stats: the same figures /metrics serves, in the UI's format.
type adminStats struct {
	srv      *Server
	serverID string
	hostname string
	pid      int

	// The counters' values at the previous stats (only the admin
	// goroutine reads and writes them).
	last map[string]float64
}

func newAdminStats(s *Server, serverID string) *adminStats {
	st := &adminStats{srv: s, serverID: serverID, hostname: hostname(), pid: os.Getpid(), last: map[string]float64{}}
	st.aggregated(time.Now()) // from now on
	return st
}

// collect returns the stats of now.
func (st *adminStats) collect() map[string]any {
	now := time.Now()
	namespaces := []any{}
	for _, n := range st.srv.Namespaces() {
		namespaces = append(namespaces, map[string]any{"name": n.Name(), "socketsCount": n.LocalSocketCount()})
	}
	return map[string]any{
		"serverId":            st.serverID,
		"hostname":            st.hostname,
		"pid":                 st.pid,
		"uptime":              now.Sub(processStart).Seconds(),
		"clientsCount":        st.srv.ClientsCount(),
		"pollingClientsCount": st.srv.PollingClientsCount(),
		"aggregatedEvents":    st.aggregated(now),
		"namespaces":          namespaces,
	}
}

// aggregated returns the growth of the counters since its previous call,
// as instrument()'s NamespaceEvent values, stamped with the second of now.
func (st *adminStats) aggregated(now time.Time) []any {
	m := st.srv.metrics
	out := []any{}
	ts := now.Truncate(time.Second).UnixMilli()
	for _, c := range []struct {
		typ string
		c   prometheus.Counter
	}{
		{"packetsIn", m.packetsIn},
		{"packetsOut", m.packetsOut},
		{"bytesIn", m.bytesIn},
		{"bytesOut", m.bytesOut},
	} {
		v := counterValue(c.c)
		if d := v - st.last[c.typ]; d > 0 {
			out = append(out, map[string]any{"timestamp": ts, "type": c.typ, "count": int64(d)})
		}
		st.last[c.typ] = v
	}
	return out
}

// counterValue reads a Prometheus counter.
func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}
