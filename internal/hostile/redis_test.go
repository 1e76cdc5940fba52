package hostile

import (
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// redisConfig clusters over the Redis at url, with timeouts short enough
// for a test.
func redisConfig(url string) server.Config {
	return server.Config{Redis: server.RedisConfig{
		URL:               url,
		RequestTimeout:    time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		HeartbeatTimeout:  2 * time.Second,
	}}
}

// readyz waits until /readyz answers want.
func (h *harness) readyz(t testing.TB, want int) {
	t.Helper()
	var st int
	var body string
	deadline := time.Now().Add(waitFor)
	for {
		st, body = h.get(t, "/readyz")
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q after %v, want %d", st, strings.TrimSpace(body), waitFor, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reaches broadcasts from node "from" to the room until the client g (on
// another node, or the same) has received one more; broadcasts sent while
// the cluster heals may be late, so it sends one every 200 ms.
func reaches(t testing.TB, from *harness, g *goodClient) {
	t.Helper()
	before := g.floods.Load()
	deadline := time.Now().Add(waitFor)
	next := time.Now()
	for g.floods.Load() == before {
		if time.Now().After(deadline) {
			t.Fatalf("%s received no broadcast within %v", g.name, waitFor)
		}
		if time.Now().After(next) {
			if err := from.srv.To("room").Emit("flood", "x"); err != nil {
				t.Fatalf("broadcast: %v", err)
			}
			next = time.Now().Add(200 * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pair is two nodes on one Redis (b through url, which may be a proxy's),
// with a good client on each, broadcasts flowing both ways.
func pair(t *testing.T, r *redistest.Server, bURL string) (a, b *harness, ga, gb *goodClient) {
	t.Helper()
	a = start(t, redisConfig(r.URL()), nil)
	b = start(t, redisConfig(bURL), nil)
	a.readyz(t, 200)
	b.readyz(t, 200)
	ga = a.good(t, "good-a")
	gb = b.good(t, "good-b")
	reaches(t, a, gb)
	reaches(t, b, ga)
	return a, b, ga, gb
}

// healthy asserts that both nodes serve their clients and broadcast to
// each other.
func healthy(t *testing.T, a, b *harness, ga, gb *goodClient) {
	t.Helper()
	ga.alive(t)
	gb.alive(t)
	reaches(t, a, gb)
	reaches(t, b, ga)
}

// TestRedis: Redis failing under the cluster. The nodes stay up, their
// clients keep their connections and are served (acks do not need Redis),
// /readyz follows Redis, and broadcasts resume once it is back.
func TestRedis(t *testing.T) {
	t.Parallel()

	t.Run("down at start", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		r.Kill()
		a := start(t, redisConfig(r.URL()), nil)
		// Documented: New does not wait for Redis; /readyz answers 503
		// until Redis answers; clients are served meanwhile.
		if st, body := a.get(t, "/readyz"); st != 503 {
			t.Errorf("/readyz with Redis down: %d %q, want 503", st, body)
		}
		if st, _ := a.get(t, "/healthz"); st != 200 {
			t.Errorf("/healthz with Redis down: %d, want 200", st)
		}
		ga := a.good(t, "good-a")
		ga.alive(t)
		// Broadcasts reach this node's clients (the cluster's copy waits
		// in the outbox).
		reaches(t, a, ga)
		r.Restart()
		a.readyz(t, 200)
		b := start(t, redisConfig(r.URL()), nil)
		b.readyz(t, 200)
		gb := b.good(t, "good-b")
		healthy(t, a, b, ga, gb)
	})

	t.Run("killed mid-traffic and restarted", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		a, b, ga, gb := pair(t, r, r.URL())
		f := flood(t, func(i int) error {
			time.Sleep(5 * time.Millisecond) // traffic, not a flood
			return a.srv.To("room").Emit("flood", i)
		})
		r.Kill()
		a.readyz(t, 503)
		b.readyz(t, 503)
		ga.alive(t)
		gb.alive(t)
		reaches(t, a, ga) // each node's own clients
		reaches(t, b, gb)
		r.Restart()
		a.readyz(t, 200)
		b.readyz(t, 200)
		if n, err := f.stop(); err != nil {
			t.Errorf("broadcast %d failed: %v", n, err)
		}
		healthy(t, a, b, ga, gb)
	})

	t.Run("frozen (SIGSTOP)", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		a, b, ga, gb := pair(t, r, r.URL())
		r.Pause()
		// A broadcast while Redis is frozen: queued, not an error.
		if err := a.srv.To("room").Emit("flood", "frozen"); err != nil {
			t.Errorf("broadcast while Redis is frozen: %v", err)
		}
		ga.alive(t)
		gb.alive(t)
		reaches(t, b, gb)
		r.Resume()
		healthy(t, a, b, ga, gb)
	})

	t.Run("CLIENT PAUSE", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		a, b, ga, gb := pair(t, r, r.URL())
		r.ClientPause(2 * time.Second)
		ga.alive(t)
		gb.alive(t)
		healthy(t, a, b, ga, gb)
	})

	t.Run("connection cut", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		p := redistest.NewProxy(t, r.Addr())
		a, b, ga, gb := pair(t, r, "redis://"+p.Addr())
		p.Cut()
		b.readyz(t, 503)
		ga.alive(t)
		gb.alive(t)
		reaches(t, a, ga) // the node that still has Redis
		reaches(t, b, gb) // and the one cut off, to its own clients
		p.Restore()
		b.readyz(t, 200)
		healthy(t, a, b, ga, gb)
	})

	t.Run("blackholed", func(t *testing.T) {
		t.Parallel()
		r := redistest.StartStandalone(t)
		p := redistest.NewProxy(t, r.Addr())
		a, b, ga, gb := pair(t, r, "redis://"+p.Addr())
		p.Blackhole()
		if err := b.srv.To("room").Emit("flood", "blackholed"); err != nil {
			t.Errorf("broadcast while Redis is blackholed: %v", err)
		}
		ga.alive(t)
		gb.alive(t)
		reaches(t, a, ga)
		reaches(t, b, gb)
		p.Restore()
		healthy(t, a, b, ga, gb)
	})
}
