package recovery_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/recovery"
)

// localBackend: one node without Redis, LocalTransport over a MemoryLog,
// sessions in a MemoryStore.
func localBackend(t *testing.T, maxLen int) *backend {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := recovery.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{})
	t.Cleanup(func() { _ = store.Close() })
	log := recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxLen: maxLen})
	return &backend{
		newNode: func(*testing.T) (adapter.Transport, *recovery.Sessions, func()) {
			tr := recovery.NewLocalTransport(log)
			return tr, &recovery.Sessions{Store: store, Log: log, Metrics: m, Logger: testLogger(t)}, func() { _ = tr.Close() }
		},
		reg:    reg,
		logged: func(*testing.T) int { return log.Len() },
	}
}

// TestRecoverLocal: a single node without Redis; the client drops for 2 s
// while the node broadcasts to its room.
func TestRecoverLocal(t *testing.T) {
	be := localBackend(t, 100_000)
	a := be.node(t, "a", time.Minute)
	c := startClients(t)
	first := c.connect("c1", a.url, map[string]string{"rooms": "r1", "user": "u1"})
	e := startEmitter(t, a, "ta", "r1")
	c.waitN("some ticks", 20, 10*time.Second, isEvent("c1", "ta"))
	c.drop("c1")
	waitPersisted(t, be.reg, 1)
	time.Sleep(2 * time.Second)
	c.reconnect("c1", "")
	second := c.nextConnect("c1", 1)
	if !second.Recovered || second.Sid != first.Sid {
		t.Fatalf("recovered=%v sid=%s; want recovered with sid %s", second.Recovered, second.Sid, first.Sid)
	}
	before := len(c.filter(isEvent("c1", "ta")))
	c.waitN("live ticks after the reconnection", before+20, 10*time.Second, isEvent("c1", "ta"))
	checkSequence(t, c, "c1", "ta", e.halt())
	if noise := c.filter(isEvent("c1", "noise")); len(noise) > 0 {
		t.Errorf("the client got %d packets not meant for it", len(noise))
	}
}

func TestRecoverLocalExpired(t *testing.T) { testExpired(t, localBackend(t, 1000)) }

func TestRecoverLocalTrimmed(t *testing.T) { testTrimmed(t, localBackend(t, 50), 50) }
