package recovery_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/recovery"
)

// redisBackend: nodes on the Redis Streams transport, one real
// redis-server, sessions in Redis (cluster.SessionStore) and missed
// packets read from the stream (cluster.StreamLog), as in production.
func redisBackend(t *testing.T, maxLen int64) (*backend, *redistest.Server) {
	t.Helper()
	srv := redistest.StartStandalone(t)
	reg := prometheus.NewRegistry()
	m, err := recovery.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := siotest.Logger(t)
	be := &backend{
		reg: reg,
		logged: func(t *testing.T) int {
			v, err := srv.Do("XLEN", cluster.DefaultStreamName)
			if err != nil {
				t.Fatal(err)
			}
			return int(v.(int64))
		},
	}
	be.newNode = func(t *testing.T) (adapter.Transport, *recovery.Sessions, func()) {
		return redisNode(t, srv.Addr(), maxLen, m, logger)
	}
	return be, srv
}

// redisNode is one node's transport to Redis at addr, and its Sessions on
// the transport's client.
func redisNode(t *testing.T, addr string, maxLen int64, m *recovery.Metrics, logger *slog.Logger) (adapter.Transport, *recovery.Sessions, func()) {
	t.Helper()
	tr, err := cluster.New(cluster.Options{
		InitAddress:    []string{addr},
		MaxLen:         maxLen,
		RequestTimeout: 2 * time.Second,
		Logger:         logger,
		Registerer:     prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sessions := &recovery.Sessions{Store: tr.SessionStore(), Log: tr.StreamLog(cluster.StreamLogOptions{Metrics: m}), Metrics: m, Logger: logger}
	return tr, sessions, func() { _ = tr.Close() }
}

func TestRecoverRedisSameNode(t *testing.T) {
	be, _ := redisBackend(t, 100_000)
	testRecovery(t, be, false, false)
}

func TestRecoverRedisOtherNode(t *testing.T) {
	be, _ := redisBackend(t, 100_000)
	testRecovery(t, be, true, false)
}

func TestRecoverRedisBothNodesSameNode(t *testing.T) {
	be, _ := redisBackend(t, 100_000)
	testRecovery(t, be, false, true)
}

func TestRecoverRedisBothNodesOtherNode(t *testing.T) {
	be, _ := redisBackend(t, 100_000)
	testRecovery(t, be, true, true)
}

func TestRecoverRedisExpired(t *testing.T) {
	be, _ := redisBackend(t, 1000)
	testExpired(t, be)
}

func TestRecoverRedisTrimmed(t *testing.T) {
	be, _ := redisBackend(t, 100)
	testTrimmed(t, be, 100)
}

func TestRecoverRedisManyMissed(t *testing.T) {
	be, _ := redisBackend(t, 50_000)
	testManyMissed(t, be, true)
}

// TestRecoverRedisCutDuringOutage: the node the client comes back to loses
// Redis while the client is away and the other node keeps broadcasting;
// once Redis is back, the client still recovers everything.
func TestRecoverRedisCutDuringOutage(t *testing.T) {
	be, srv := redisBackend(t, 100_000)
	proxy := redistest.NewProxy(t, srv.Addr())
	m, err := recovery.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, sessions, closeTr := redisNode(t, proxy.Addr(), 100_000, m, siotest.Logger(t))
	a := newNode(t, "a", nodeConfig{transport: tr, closeTransport: closeTr, sessions: sessions,
		maxDisconnect: time.Minute, skipMiddlewares: true})
	b := be.node(t, "b", time.Minute)
	waitPeers(t, a, b)
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1"}, nil)
	eb := startEmitter(t, b, "tb", "r1")
	c.WaitN(t, "some ticks", 20, 10*time.Second, siotest.IsEventFor("c1", "tb"))

	c.Drop(t, "c1")
	// The session is persisted by a after the disconnection: let it land
	// before cutting a off.
	siotest.Eventually(t, 10*time.Second, "the session is persisted", func() bool {
		v, err := srv.Do("DBSIZE")
		return err == nil && v.(int64) >= 2 // the stream and the session
	})
	proxy.Cut()
	time.Sleep(2 * time.Second) // a is cut off from Redis; b broadcasts on
	proxy.Restore()
	siotest.Eventually(t, 20*time.Second, "a is connected to Redis again", tr.Ready)
	reconnectRecovered(t, c, a.url+"/", first.Sid, "after the cut: ")
	waitLive(t, c, "c1", "tb", 20, 20*time.Second)
	checkSequence(t, c, "c1", "tb", eb.halt())
}

// TestRecoverRedisManyClients: ten clients drop at once and reconnect at
// once, half of them to the other node, while both nodes broadcast: each
// gets every packet exactly once, in order (Node's adapter loses or
// duplicates packets around the reconnection in about a quarter of such
// runs).
func TestRecoverRedisManyClients(t *testing.T) {
	be, _ := redisBackend(t, 100_000)
	a := be.node(t, "a", time.Minute)
	b := be.node(t, "b", time.Minute)
	waitPeers(t, a, b)
	c := siotest.StartClients(t)
	const n = 10
	sids := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		sids[id] = c.Connect(t, id, a.url+"/", map[string]string{"rooms": "r1"}, nil).Sid
	}
	ea := startEmitter(t, a, "ta", "r1")
	eb := startEmitter(t, b, "tb", "r1")
	c.WaitN(t, "some ticks", 20, 10*time.Second, siotest.IsEventFor("c9", "tb"))
	for i := range n {
		c.Do(t, map[string]any{"cmd": "drop", "id": fmt.Sprintf("c%d", i)})
	}
	c.WaitN(t, "disconnections", n, 10*time.Second, func(ev siotest.Event) bool { return ev.Type == "disconnect" })
	waitPersisted(t, be.reg, n)
	time.Sleep(time.Second)
	for i := range n {
		target := a
		if i%2 == 1 {
			target = b
		}
		c.Reconnect(t, fmt.Sprintf("c%d", i), target.url+"/")
	}
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		ev := c.NthConnect(t, id, 1)
		if !ev.Recovered || ev.Sid != sids[id] {
			t.Fatalf("%s: recovered=%v sid=%s, want recovered with sid %s", id, ev.Recovered, ev.Sid, sids[id])
		}
	}
	waitLive(t, c, "c0", "tb", 20, 10*time.Second)
	na, nb := ea.halt(), eb.halt()
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		checkSequence(t, c, id, "ta", na)
		checkSequence(t, c, id, "tb", nb)
	}
	if got := attempts(t, be.reg, "recovered"); got != n {
		t.Errorf("recovered attempts = %v, want %d", got, n)
	}
}
