package recovery_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/recovery"
	"github.com/sockstream/sockstream/server"
)

// ---- in-process cluster with an in-memory packet log ----

// hubLog makes an adaptertest hub behave like the Redis stream for
// recovery: every durable broadcast a node publishes is appended, at the
// offset the hub gave it, to one MemoryLog all nodes restore from. The
// publications of all nodes are serialized so that the log receives the
// offsets in the hub's order, as a stream would.
type hubLog struct {
	hub *adaptertest.Hub
	log *recovery.MemoryLog
	mu  sync.Mutex
	err error // the first append that failed; checked at cleanup
}

type loggingTransport struct {
	*adaptertest.Transport
	hl *hubLog
}

func (t loggingTransport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	r := t.PublishBatch(ctx, []*adapter.Message{msg})
	return r[0].Offset, r[0].Err
}

func (t loggingTransport) PublishBatch(ctx context.Context, msgs []*adapter.Message) []adapter.PublishResult {
	t.hl.mu.Lock()
	defer t.hl.mu.Unlock()
	res := t.Transport.PublishBatch(ctx, msgs)
	for i, r := range res {
		d, ok := msgs[i].Data.(*adapter.BroadcastData)
		if r.Err != nil || r.Offset == "" || !ok || msgs[i].Type != adapter.Broadcast || d.RequestID != "" || d.Packet.ID != nil || d.Packet.Type != 2 {
			continue
		}
		if err := t.hl.log.AppendAt(recovery.Packet{Offset: r.Offset, Nsp: msgs[i].Nsp, UID: msgs[i].UID, Data: d.Packet.Data,
			Opts: recovery.PacketOptions{Rooms: d.Opts.Rooms, Except: d.Opts.Except, Volatile: d.Opts.Flags.Volatile},
		}); err != nil && t.hl.err == nil {
			t.hl.err = err
		}
	}
	return res
}

// ---- nodes ----

type node struct {
	name string
	io   *server.Server
	srv  *siotest.Server
	b    *adapter.Builder
	url  string
	// sessions is what the node's adapter persists to and restores from.
	sessions *recovery.Sessions
}

type nodeConfig struct {
	transport       adapter.Transport
	sessions        *recovery.Sessions
	maxDisconnect   time.Duration
	closeTransport  func()
	skipMiddlewares bool
}

func newNode(t *testing.T, name string, nc nodeConfig) *node {
	t.Helper()
	log := siotest.Logger(t).With("node", name)
	b, err := adapter.New(nc.transport, adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		RequestTimeout:    5 * time.Second,
		Logger:            log,
		Registerer:        prometheus.NewRegistry(),
		Sessions:          nc.sessions,
	})
	if err != nil {
		t.Fatal(err)
	}
	var closeTransport func() error
	if nc.closeTransport != nil {
		closeTransport = func() error { nc.closeTransport(); return nil }
	}
	n := &node{name: name, b: b, sessions: nc.sessions}
	n.srv = siotest.StartServer(t, name, server.Config{
		Recovery: server.RecoveryConfig{
			Enabled:          true,
			MaxDisconnection: nc.maxDisconnect,
			SkipMiddlewares:  nc.skipMiddlewares,
		},
		Logger: log,
	}, server.WithAdapter(b, nil, closeTransport))
	n.io, n.url = n.srv.Srv, n.srv.URL
	// The rooms of the "rooms" query parameter; a recovered socket skips
	// this (SkipMiddlewares) and gets its rooms from the session.
	n.io.Use(siotest.JoinQueryRooms(func(q url.Values) any {
		return map[string]any{"user": q.Get("user")}
	}))
	return n
}

// local fetches the sockets of n in room sid (this node's only).
func (n *node) local(t *testing.T, sid string) []*server.RemoteSocket {
	t.Helper()
	ss, err := siotest.Fetch(n.io.Of("/").Local().In(sid))
	if err != nil {
		t.Fatalf("%s: fetch %s: %v", n.name, sid, err)
	}
	return ss
}

// socketRooms returns the rooms of socket sid on n, nil if n has no such
// socket.
func (n *node) socketRooms(t *testing.T, sid string) []string {
	t.Helper()
	var rooms []string
	for _, s := range n.local(t, sid) {
		rooms = append(rooms, s.Rooms()...)
	}
	return rooms
}

// socketData returns the data of socket sid on n.
func (n *node) socketData(t *testing.T, sid string) any {
	t.Helper()
	var data any
	for _, s := range n.local(t, sid) {
		data = s.Data()
	}
	return data
}

func waitPeers(t *testing.T, nodes ...*node) {
	t.Helper()
	siotest.Eventually(t, 10*time.Second, "nodes see each other", func() bool {
		for _, n := range nodes {
			a := n.b.Adapter("/")
			if a == nil || a.AlivePeers() != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// series returns the series of metric family name in reg whose "result"
// label is result, nil if there is none yet.
func series(t *testing.T, reg *prometheus.Registry, name, result string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m
			}
		}
	}
	return nil
}

func attempts(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return series(t, reg, "sockstream_recovery_attempts_total", result).GetCounter().GetValue()
}

// restoreTime is the total time of the successful restores.
func restoreTime(t *testing.T, reg *prometheus.Registry) time.Duration {
	t.Helper()
	m := series(t, reg, "sockstream_recovery_restore_duration_seconds", "recovered")
	return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
}

// persisted is how many sessions were persisted successfully.
func persisted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	return series(t, reg, "sockstream_recovery_sessions_persisted_total", "ok").GetCounter().GetValue()
}

// waitPersisted waits until n sessions were persisted: the adapter writes
// them off the disconnection path, so a client reconnecting at once could
// otherwise come back before its session is stored.
func waitPersisted(t *testing.T, reg *prometheus.Registry, n int) {
	t.Helper()
	siotest.Eventually(t, 10*time.Second, "the sessions are persisted", func() bool { return persisted(t, reg) >= float64(n) })
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}
