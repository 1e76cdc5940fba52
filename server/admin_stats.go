package server

import (
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// adminStats makes this node's server_stats, as instrument() emits them
// every 2 seconds. The aggregated events (bytes and packets in and out)
// are the growth of the server's Engine.IO counters since the previous
// stats: the same figures /metrics serves, in the UI's format; with
// rawConnection and rawDisconnection (by the engine's reason), the
// sessions opened and closed meanwhile.
type adminStats struct {
	srv      *Server
	serverID string
	hostname string
	pid      int

	// The counters' values at the previous stats (only the admin
	// goroutine reads and writes them).
	last map[string]float64

	// Engine.IO sessions opened, and closed by reason, since the previous
	// stats (engineObserver).
	rawMu     sync.Mutex
	rawOpened int64
	rawClosed map[string]int64
}

// observeEngine counts the sessions opening and closing from now on.
func (st *adminStats) observeEngine() {
	st.srv.engineObs.Store(&engineObserver{
		opened: func() {
			st.rawMu.Lock()
			st.rawOpened++
			st.rawMu.Unlock()
		},
		closed: func(reason string) {
			st.rawMu.Lock()
			if st.rawClosed == nil {
				st.rawClosed = map[string]int64{}
			}
			st.rawClosed[reason]++ // a handful of reasons: bounded
			st.rawMu.Unlock()
		},
	})
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
	st.rawMu.Lock()
	opened, closed := st.rawOpened, st.rawClosed
	st.rawOpened, st.rawClosed = 0, nil
	st.rawMu.Unlock()
	if opened > 0 {
		out = append(out, map[string]any{"timestamp": ts, "type": "rawConnection", "count": opened})
	}
	for reason, n := range closed {
		out = append(out, map[string]any{"timestamp": ts, "type": "rawDisconnection", "subType": reason, "count": n})
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
