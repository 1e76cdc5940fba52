package recovery_test

import (
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/recovery"
)

// localBackend: one node without Redis, LocalTransport over a MemoryLog,
// sessions in a MemoryStore.
func localBackend(t *testing.T, maxLen int) *backend {
	t.Helper()
	reg, m, store := memoryStore(t)
	log := recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxLen: maxLen})
	return &backend{
		newNode: func(*testing.T) (adapter.Transport, *recovery.Sessions, func()) {
			tr := recovery.NewLocalTransport(log)
			return tr, &recovery.Sessions{Store: store, Log: log, Metrics: m, Logger: siotest.Logger(t)}, func() { _ = tr.Close() }
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
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1", "user": "u1"}, nil)
	e := startEmitter(t, a, "ta", "r1")
	c.WaitN(t, "some ticks", 20, 10*time.Second, siotest.IsEventFor("c1", "ta"))
	c.Drop(t, "c1")
	waitPersisted(t, be.reg, 1)
	time.Sleep(2 * time.Second)
	reconnectRecovered(t, c, "", first.Sid, "")
	waitLive(t, c, "c1", "ta", 20, 10*time.Second)
	checkSequence(t, c, "c1", "ta", e.halt())
	if noise := c.Filter(siotest.IsEventFor("c1", "noise")); len(noise) > 0 {
		t.Errorf("the client got %d packets not meant for it", len(noise))
	}
}

func TestRecoverLocalExpired(t *testing.T) { testExpired(t, localBackend(t, 1000)) }

func TestRecoverLocalTrimmed(t *testing.T) { testTrimmed(t, localBackend(t, 50), 50) }
