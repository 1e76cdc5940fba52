package recovery_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/recovery"
)

// backend is where sessions and missed packets live: in memory over the
// in-process hub, or in Redis over the cluster transport.
type backend struct {
	// newNode returns a node's transport and sessions, and what closes them.
	newNode func(t *testing.T) (adapter.Transport, *recovery.Sessions, func())
	reg     *prometheus.Registry
	// logged returns how many entries the packet log holds.
	logged func(t *testing.T) int
}

// memoryStore returns a registry, recovery metrics on it and a memory
// store closed at cleanup: what the in-memory backends share.
func memoryStore(t *testing.T) (*prometheus.Registry, *recovery.Metrics, *recovery.MemoryStore) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := recovery.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{})
	t.Cleanup(func() { _ = store.Close() })
	return reg, m, store
}

func memoryBackend(t *testing.T, maxLen int) *backend {
	t.Helper()
	reg, m, store := memoryStore(t)
	hl := &hubLog{hub: adaptertest.NewHub(), log: recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxLen: maxLen})}
	t.Cleanup(func() {
		hl.mu.Lock()
		defer hl.mu.Unlock()
		if hl.err != nil {
			t.Errorf("the hub's offsets reached the log out of order: %v", hl.err)
		}
	})
	sessions := &recovery.Sessions{Store: store, Log: hl.log, Metrics: m, Logger: siotest.Logger(t)}
	return &backend{
		newNode: func(*testing.T) (adapter.Transport, *recovery.Sessions, func()) {
			tr := hl.hub.NewTransport()
			return loggingTransport{Transport: tr, hl: hl}, sessions, func() { _ = tr.Close() }
		},
		reg:    reg,
		logged: func(*testing.T) int { return hl.log.Len() },
	}
}

func (be *backend) node(t *testing.T, name string, maxDisconnect time.Duration) *node {
	t.Helper()
	tr, sessions, closeTr := be.newNode(t)
	return newNode(t, name, nodeConfig{transport: tr, closeTransport: closeTr, sessions: sessions,
		maxDisconnect: maxDisconnect, skipMiddlewares: true})
}

// emitter broadcasts event i = 0, 1, 2... to room from node n until
// stopped, then "<event>-end" with the count.
type emitter struct {
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	count int
}

func startEmitter(t *testing.T, n *node, event, room string) *emitter {
	e := &emitter{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { e.halt() }) // a test that failed early
	go func() {
		defer close(e.done)
		for i := 0; ; i++ {
			select {
			case <-e.stop:
				e.count = i
				if err := n.io.To(room).Emit(event+"-end", i); err != nil {
					t.Errorf("emit: %v", err)
				}
				return
			default:
			}
			if err := n.io.To(room).Emit(event, i); err != nil {
				t.Errorf("emit: %v", err)
			}
			// Noise the client must never get: another room, and the
			// client's room excluded.
			_ = n.io.To("elsewhere").Emit("noise", i)
			_ = n.io.To(room).Except(room).Emit("noise", i)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return e
}

func (e *emitter) halt() int {
	e.once.Do(func() { close(e.stop) })
	<-e.done
	return e.count
}

// reconnectRecovered reconnects client c1 (to url when not "") and fails t
// unless it got its session, sid, back; when prefixes the failure.
func reconnectRecovered(t *testing.T, c *siotest.Clients, url, sid, when string) {
	t.Helper()
	c.Reconnect(t, "c1", url)
	second := c.NthConnect(t, "c1", 1)
	if !second.Recovered || second.Sid != sid {
		t.Fatalf("%srecovered=%v sid=%s; want recovered with sid %s", when, second.Recovered, second.Sid, sid)
	}
}

// waitLive waits until client id got n more events named event: after a
// reconnection, live broadcasts flow again.
func waitLive(t *testing.T, c *siotest.Clients, id, event string, n int, timeout time.Duration) {
	t.Helper()
	before := c.Count(siotest.IsEventFor(id, event))
	c.WaitN(t, "live ticks after the reconnection", before+n, timeout, siotest.IsEventFor(id, event))
}

// checkSequence checks that client id got event 0..n-1 exactly once, in
// order, each with an offset as last argument, then the end marker.
func checkSequence(t *testing.T, c *siotest.Clients, id, event string, n int) {
	t.Helper()
	c.WaitN(t, event+"-end", 1, 30*time.Second, siotest.IsEventFor(id, event+"-end"))
	got := c.Filter(siotest.IsEventFor(id, event))
	if len(got) != n {
		t.Errorf("%s: got %d %q events, want %d", id, len(got), event, n)
	}
	for i, ev := range got {
		if len(ev.Args) != 2 || ev.Args[0] != float64(i) {
			t.Fatalf("%s: %q event #%d has args %v, want [%d <offset>]", id, event, i, ev.Args, i)
		}
		if _, ok := ev.Args[1].(string); !ok {
			t.Fatalf("%s: %q event #%d has no offset: %v", id, event, i, ev.Args)
		}
	}
}

// testRecovery: a client in room "r1" of node a loses its transport for 2 s
// while node b (and a too, when bothNodes) keeps broadcasting to its room;
// it comes back (to b when otherNode) and must have every packet exactly
// once, in order.
//
// With both nodes broadcasting, node a delivers its own packets as soon as
// they are written and b's when its reader gets them, so the client's last
// offset can be ahead of packets it was never sent, and behind packets it
// was: the session's delivery marks must sort that out.
func testRecovery(t *testing.T, be *backend, otherNode, bothNodes bool) {
	a := be.node(t, "a", time.Minute)
	b := be.node(t, "b", time.Minute)
	waitPeers(t, a, b)
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1", "user": "u1"}, nil)
	if first.Recovered {
		t.Fatal("first connection reported recovered")
	}

	eb := startEmitter(t, b, "tb", "r1")
	var ea *emitter
	if bothNodes {
		ea = startEmitter(t, a, "ta", "r1")
	}
	c.WaitN(t, "some ticks", 20, 10*time.Second, siotest.IsEventFor("c1", "tb"))

	c.Drop(t, "c1")
	waitPersisted(t, be.reg, 1)
	time.Sleep(2 * time.Second) // the outage, while b keeps broadcasting
	target := a
	if otherNode {
		target = b
	}
	reconnectRecovered(t, c, target.url+"/", first.Sid, "after the outage: ")
	waitLive(t, c, "c1", "tb", 20, 10*time.Second)
	nb, na := eb.halt(), 0
	if ea != nil {
		na = ea.halt()
		checkSequence(t, c, "c1", "ta", na)
	}
	checkSequence(t, c, "c1", "tb", nb)
	if noise := c.Filter(siotest.IsEventFor("c1", "noise")); len(noise) > 0 {
		t.Errorf("the client got %d packets not meant for it: %v", len(noise), noise[0].Args)
	}
	rooms := target.socketRooms(t, first.Sid)
	slices.Sort(rooms)
	if want := sorted(first.Sid, "r1"); !slices.Equal(rooms, want) {
		t.Errorf("rooms after recovery = %v, want %v", rooms, want)
	}
	if data := target.socketData(t, first.Sid); !reflect.DeepEqual(data, map[string]any{"user": "u1"}) {
		t.Errorf("data after recovery = %#v, want the session's {user: u1}", data)
	}
	if got := attempts(t, be.reg, "recovered"); got != 1 {
		t.Errorf("recovered attempts = %v, want 1", got)
	}
	t.Logf("%d + %d packets, the client recovered without loss or duplicate", na, nb)
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestRecoverMemorySameNode(t *testing.T) {
	testRecovery(t, memoryBackend(t, 100_000), false, false)
}

func TestRecoverMemoryOtherNode(t *testing.T) {
	testRecovery(t, memoryBackend(t, 100_000), true, false)
}

func TestRecoverMemoryBothNodesBroadcast(t *testing.T) {
	testRecovery(t, memoryBackend(t, 100_000), true, true)
}

// testExpired: a disconnection longer than maxDisconnectionDuration gives a
// fresh session.
func testExpired(t *testing.T, be *backend) {
	a := be.node(t, "a", 500*time.Millisecond)
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1"}, nil)
	_ = a.io.To("r1").Emit("x", 1) // gives the client an offset
	c.WaitN(t, "x", 1, 10*time.Second, siotest.IsEventFor("c1", "x"))
	c.Drop(t, "c1")
	waitPersisted(t, be.reg, 1)
	time.Sleep(1500 * time.Millisecond)
	c.Reconnect(t, "c1", "")
	second := c.NthConnect(t, "c1", 1)
	if second.Recovered || second.Sid == first.Sid {
		t.Fatalf("after an expired session: recovered=%v sid=%s (was %s); want a fresh session", second.Recovered, second.Sid, first.Sid)
	}
	if got := attempts(t, be.reg, "expired"); got != 1 {
		t.Errorf("expired attempts = %v, want 1", got)
	}
}

func TestRecoverMemoryExpired(t *testing.T) { testExpired(t, memoryBackend(t, 1000)) }

// testTrimmed: the client's offset is trimmed from the log during the
// outage: a fresh session, never a partial replay.
func testTrimmed(t *testing.T, be *backend, maxLen int) {
	a := be.node(t, "a", time.Minute)
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1"}, nil)
	_ = a.io.To("r1").Emit("x", -1)
	got := c.WaitN(t, "x", 1, 10*time.Second, siotest.IsEventFor("c1", "x"))
	offset, _ := got[0].Args[len(got[0].Args)-1].(string)
	c.Drop(t, "c1")
	waitPersisted(t, be.reg, 1)
	// Publish until the client's offset has been trimmed away.
	for i := 0; ; i++ {
		_ = a.io.To("r1").Emit("x", i)
		if i%maxLen == maxLen-1 && gone(t, a, offset) {
			break
		}
		if i > 100*maxLen {
			t.Fatalf("offset %s still in the log after %d broadcasts", offset, i)
		}
		if i%maxLen == maxLen-1 {
			time.Sleep(5 * time.Millisecond) // let the publications be logged
		}
	}
	// Every broadcast is logged before the client comes back: whatever "x"
	// it gets then would be a replay.
	prev := -1
	siotest.Eventually(t, 10*time.Second, "the broadcasts are all logged", func() bool {
		n := be.logged(t)
		done := n == prev
		prev = n
		time.Sleep(20 * time.Millisecond)
		return done
	})
	c.Reconnect(t, "c1", "")
	second := c.NthConnect(t, "c1", 1)
	if second.Recovered || second.Sid == first.Sid {
		t.Fatalf("after a trimmed offset: recovered=%v sid=%s (was %s); want a fresh session", second.Recovered, second.Sid, first.Sid)
	}
	_ = a.io.To("r1").Emit("after")
	c.WaitN(t, "a live packet", 1, 10*time.Second, siotest.IsEventFor("c1", "after"))
	if got := len(c.Filter(siotest.IsEventFor("c1", "x"))); got != 1 {
		t.Errorf("the client got %d packets, want only the one before the outage (no partial replay)", got)
	}
	if got := attempts(t, be.reg, "trimmed"); got != 1 {
		t.Errorf("trimmed attempts = %v, want 1", got)
	}
}

// gone reports whether offset is no longer in n's packet log.
func gone(t *testing.T, n *node, offset string) bool {
	t.Helper()
	_, err := n.sessions.Log.ReadAfter(context.Background(), "/", offset, func(recovery.Packet) error { return nil })
	if err != nil && !errors.Is(err, recovery.ErrOffsetNotFound) {
		t.Fatalf("reading the log: %v", err)
	}
	return err != nil
}

func TestRecoverMemoryTrimmed(t *testing.T) { testTrimmed(t, memoryBackend(t, 50), 50) }

// testManyMissed: 10,000 packets broadcast while the client is away are all
// replayed, in order.
func testManyMissed(t *testing.T, be *backend, otherNode bool) {
	const missed = 10_000
	a := be.node(t, "a", time.Minute)
	b := be.node(t, "b", time.Minute)
	waitPeers(t, a, b)
	c := siotest.StartClients(t)
	first := c.Connect(t, "c1", a.url+"/", map[string]string{"rooms": "r1"}, nil)
	_ = b.io.To("r1").Emit("m", -1)
	c.WaitN(t, "first packet", 1, 10*time.Second, siotest.IsEventFor("c1", "m"))
	c.Drop(t, "c1")
	waitPersisted(t, be.reg, 1)
	base := be.logged(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range missed {
			_ = b.io.To("r1").Emit("m", i)
		}
	}()
	wg.Wait()
	siotest.Eventually(t, 60*time.Second, "the broadcasts are logged", func() bool { return be.logged(t) >= base+missed })
	target := a
	if otherNode {
		target = b
	}
	start := time.Now()
	reconnectRecovered(t, c, target.url+"/", first.Sid, "")
	evs := c.WaitN(t, "missed packets", missed+1, 120*time.Second, siotest.IsEventFor("c1", "m"))
	took := time.Since(start)
	for i, ev := range evs[1:] {
		if len(ev.Args) != 2 || ev.Args[0] != float64(i) {
			t.Fatalf("missed packet #%d has args %v, want [%d <offset>]", i, ev.Args, i)
		}
	}
	_ = b.io.To("r1").Emit("m-end")
	c.WaitN(t, "end", 1, 10*time.Second, siotest.IsEventFor("c1", "m-end"))
	if got := len(c.Filter(siotest.IsEventFor("c1", "m"))); got != missed+1 {
		t.Errorf("got %d packets, want %d", got, missed+1)
	}
	t.Logf("MEASURE %d missed packets: restore (take the session, read the log) %v; reconnection to the last packet received %v",
		missed, restoreTime(t, be.reg), took)
}

func TestRecoverMemoryManyMissed(t *testing.T) {
	testManyMissed(t, memoryBackend(t, 50_000), true)
}

// slowLog makes every read take at least delay, after the end of the read
// is fixed: the broadcasts of that time arrive live while the restore
// runs, which is what the handover is for.
type slowLog struct {
	recovery.PacketLog
	delay time.Duration
}

func (l slowLog) ReadAfter(ctx context.Context, nsp, offset string, visit func(recovery.Packet) error) (string, error) {
	var once sync.Once
	end, err := l.PacketLog.ReadAfter(ctx, nsp, offset, func(p recovery.Packet) error {
		once.Do(func() { time.Sleep(l.delay) })
		return visit(p)
	})
	once.Do(func() { time.Sleep(l.delay) })
	return end, err
}

// TestRecoverMemorySlowRestore: the restore takes 300 ms while both nodes
// broadcast every 2 ms: about 300 packets arrive live during it, and the
// client must still get each one exactly once, in order.
func TestRecoverMemorySlowRestore(t *testing.T) {
	be := memoryBackend(t, 100_000)
	inner := be.newNode
	be.newNode = func(t *testing.T) (adapter.Transport, *recovery.Sessions, func()) {
		tr, s, closeTr := inner(t)
		slow := *s
		slow.Log = slowLog{PacketLog: s.Log, delay: 300 * time.Millisecond}
		return tr, &slow, closeTr
	}
	testRecovery(t, be, true, true)
}
