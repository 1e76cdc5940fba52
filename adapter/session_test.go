package adapter_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// fakeStore is a test double of the adapter's SessionStore seam: it
// records persisted sessions and, when restores is set, hands each
// RestoreSession to the test, which answers it when it likes (the log read
// in progress).
type fakeStore struct {
	mu        sync.Mutex
	persisted []adapter.PersistedSession
	restores  chan restoreCall
	// hold, when set, holds every PersistSession until it is closed.
	hold chan struct{}
}

type restoreCall struct {
	nsp, pid, offset string
	reply            chan *adapter.RestoredSession
}

func newFakeStore() *fakeStore { return &fakeStore{} }

func (f *fakeStore) PersistSession(ctx context.Context, s adapter.PersistedSession) error {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.persisted = append(f.persisted, s)
	return nil
}

func (f *fakeStore) RestoreSession(ctx context.Context, nsp, pid, offset string) (*adapter.RestoredSession, error) {
	if f.restores == nil {
		return nil, errors.New("no such session")
	}
	c := restoreCall{nsp: nsp, pid: pid, offset: offset, reply: make(chan *adapter.RestoredSession, 1)}
	select {
	case f.restores <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case rs := <-c.reply:
		if rs == nil {
			return nil, errors.New("no such session")
		}
		return rs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeStore) sessions() []adapter.PersistedSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.persisted)
}

// offsetOf returns the offset a socket got with event name (its last
// argument).
func offsetOf(t *testing.T, ns *testNS, sock, name string) string {
	t.Helper()
	ds := ns.deliveries(isEventFor(sock, name))
	if len(ds) != 1 {
		t.Fatalf("%s got %s %d times", sock, name, len(ds))
	}
	off, _ := ds[0].Data[len(ds[0].Data)-1].(string)
	if !offsetRe.MatchString(off) {
		t.Fatalf("%s: %s without offset: %v", sock, name, ds[0].Data)
	}
	return off
}

func offsetLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ami, _ := strconv.ParseUint(am, 10, 64)
	bmi, _ := strconv.ParseUint(bm, 10, 64)
	asi, _ := strconv.ParseUint(as, 10, 64)
	bsi, _ := strconv.ParseUint(bs, 10, 64)
	return ami < bmi || ami == bmi && asi < bsi
}

func events(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.event())
	}
	return out
}

// sessionCluster: two nodes with a fakeStore whose restores the test
// answers; socket w on n0 and w1 on n1 watch every broadcast.
func sessionCluster(t *testing.T) ([]*node, *fakeStore) {
	store := newFakeStore()
	store.restores = make(chan restoreCall)
	nodes := hubCluster(t, 2, fastConfig(), withSessions(store))
	nodes[0].ns.connect("w")
	nodes[1].ns.connect("w1")
	return nodes, store
}

// bcast broadcasts event name from n to every socket and waits until the
// watcher w of n0 got it.
func bcast(t *testing.T, nodes []*node, n *node, name string) {
	t.Helper()
	if err := n.a.Broadcast(ev(name), adapter.Options{}); err != nil {
		t.Fatal(err)
	}
	waitDeliveries(t, nodes[:1], name+" at w", 1, isEventFor("w", name))
}

// The handover: the packets delivered on both paths while the session is
// read and until SessionResumed are held, then written to the restored
// socket exactly once, in order, minus those at or before LastOffset; then
// live delivery takes over.
func TestHandoverHeldPacketsFlushedOnResume(t *testing.T) {
	t.Parallel()
	nodes, store := sessionCluster(t)
	n0, n1 := nodes[0], nodes[1]
	bcast(t, nodes, n1, "A1")

	resCh := make(chan *adapter.RestoredSession, 1)
	go func() {
		rs, err := n0.a.RestoreSession(context.Background(), "pid-1", offsetOf(t, n0.ns, "w", "A1"))
		if err != nil {
			t.Error(err)
		}
		resCh <- rs
	}()
	call := <-store.restores
	if call.nsp != "/" || call.pid != "pid-1" {
		t.Errorf("restore call %+v", call)
	}
	// While the log is read: one own packet (outbound path), one of the
	// other node (inbound path).
	bcast(t, nodes, n0, "B1")
	bcast(t, nodes, n1, "B2")
	b1, b2 := offsetOf(t, n0.ns, "w", "B1"), offsetOf(t, n0.ns, "w", "B2")
	last, after := b1, "B2"
	if offsetLess(b2, b1) {
		last, after = b2, "B1"
	}
	call.reply <- &adapter.RestoredSession{SID: "s1", PID: "pid-2", Rooms: []string{"s1"}, LastOffset: last,
		MissedPackets: [][]any{{"A?", last}}}
	rs := <-resCh
	if rs == nil || rs.SID != "s1" || rs.LastOffset != last {
		t.Fatalf("restored %+v", rs)
	}

	// Connected (AddAll with the session's rooms), missed packets being
	// written: still held.
	n0.ns.connect("s1")
	bcast(t, nodes, n1, "C1")
	bcast(t, nodes, n0, "C2")
	if got := n0.ns.deliveries(isSock("s1")); len(got) != 0 {
		t.Fatalf("s1 got %v before SessionResumed", events(got))
	}

	n0.a.SessionResumed("s1")
	want := []string{after}
	for _, e := range events(n0.ns.deliveries(isSock("w"))) {
		if e == "C1" || e == "C2" {
			want = append(want, e)
		}
	}
	if got := events(n0.ns.deliveries(isSock("s1"))); !slices.Equal(got, want) {
		t.Errorf("flushed %v, want %v (in arrival order)", got, want)
	}
	n0.a.SessionResumed("s1") // twice: nothing more
	bcast(t, nodes, n0, "D1")
	bcast(t, nodes, n1, "D2")
	sentinel(t, nodes, n1, "end", 3)
	for _, e := range events(n0.ns.deliveries(isSock("w"))) {
		if e == "D1" || e == "D2" || e == "end" {
			want = append(want, e)
		}
	}
	if got := events(n0.ns.deliveries(isSock("s1"))); !slices.Equal(got, want) {
		t.Errorf("s1 got %v, want %v", got, want)
	}
	// The flushed packets kept their offsets.
	for _, d := range n0.ns.deliveries(isSock("s1")) {
		if off, _ := d.Data[len(d.Data)-1].(string); !offsetRe.MatchString(off) || !offsetLess(last, off) {
			t.Errorf("s1 got %v, offset after %s expected", d.Data, last)
		}
	}
}

func isSock(id string) func(delivery) bool {
	return func(d delivery) bool { return d.Socket == id }
}

// DelAll ends a handover: the held packets are dropped, a later
// SessionResumed does nothing and the socket id is live again.
func TestHandoverEndedByDelAll(t *testing.T) {
	t.Parallel()
	nodes, store := sessionCluster(t)
	n0, n1 := nodes[0], nodes[1]
	bcast(t, nodes, n1, "A1")
	go func() {
		call := <-store.restores
		call.reply <- &adapter.RestoredSession{SID: "s2", PID: "p", Rooms: []string{"s2"}, LastOffset: offsetOf(t, n0.ns, "w", "A1")}
	}()
	rs, err := n0.a.RestoreSession(context.Background(), "pid", "0-0")
	if err != nil || rs == nil {
		t.Fatalf("restore: %v %v", rs, err)
	}
	n0.ns.connect("s2")
	bcast(t, nodes, n1, "E1")
	n0.a.DelAll("s2") // the socket went before it was resumed
	n0.ns.connect("s2")
	n0.a.SessionResumed("s2")
	bcast(t, nodes, n1, "F1")
	if got := events(n0.ns.deliveries(isSock("s2"))); !slices.Equal(got, []string{"F1"}) {
		t.Errorf("s2 got %v, want [F1]", got)
	}
}

// Too many packets held: SessionResumed writes none of them and closes the
// connection, so that the client recovers again.
func TestHandoverOverflowClosesConn(t *testing.T) {
	t.Parallel()
	nodes, store := sessionCluster(t)
	n0, n1 := nodes[0], nodes[1]
	adapter.SetHandoverMaxHeld(n0.a, 3)
	bcast(t, nodes, n1, "A1")
	go func() {
		call := <-store.restores
		call.reply <- &adapter.RestoredSession{SID: "s3", PID: "p", Rooms: []string{"s3"}, LastOffset: offsetOf(t, n0.ns, "w", "A1")}
	}()
	if rs, _ := n0.a.RestoreSession(context.Background(), "pid", "0-0"); rs == nil {
		t.Fatal("not restored")
	}
	n0.ns.connect("s3")
	for _, e := range []string{"G1", "G2", "G3", "G4", "G5"} {
		bcast(t, nodes, n1, e)
	}
	n0.a.SessionResumed("s3")
	if got := n0.ns.closed(); !slices.Equal(got, []string{"s3"}) {
		t.Errorf("closed connections %v, want [s3]", got)
	}
	if got := n0.ns.deliveries(isSock("s3")); len(got) != 0 {
		t.Errorf("s3 got %v", events(got))
	}
	if got := n0.a.SocketRooms("s3"); got != nil {
		t.Errorf("s3 still has rooms %v", got)
	}
}

// A failed restore, or none configured, is a fresh session.
func TestRestoreFresh(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 1, fastConfig(), withSessions(newFakeStore()))
	if rs, err := nodes[0].a.RestoreSession(context.Background(), "pid", "1-0"); rs != nil || err != nil {
		t.Errorf("failed restore: %v %v, want nil, nil", rs, err)
	}
	plain := hubCluster(t, 1, fastConfig())
	if rs, err := plain[0].a.RestoreSession(context.Background(), "pid", "1-0"); rs != nil || err != nil {
		t.Errorf("no Sessions: %v %v, want nil, nil", rs, err)
	}
	plain[0].a.PersistSession(adapter.PersistedSession{SID: "x", PID: "p"}) // no store: nothing
	plain[0].a.SessionResumed("nobody")
}

// PersistSession adds what only the adapter knows: Origin and the marks
// of the last packets the socket was sent.
func TestPersistSession(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	nodes := hubCluster(t, 2, fastConfig(), withSessions(store))
	n0, n1 := nodes[0], nodes[1]
	n0.ns.connect("w", "r")
	n0.ns.connect("other")
	_ = n0.a.Broadcast(ev("own"), opts([]string{"r"}))
	_ = n1.a.Broadcast(ev("theirs"), adapter.Options{})
	_ = n1.a.Broadcast(ev("not-w"), opts([]string{"other"}))
	waitDeliveries(t, nodes, "three", 3, func(d delivery) bool { return d.event() != "" && d.Socket != "" && d.event() != "x" })
	eventually(t, 5*time.Second, "all delivered", func() bool {
		return len(n0.ns.deliveries(isSock("w"))) == 2 && len(n0.ns.deliveries(isSock("other"))) == 2
	})
	own, theirs := offsetOf(t, n0.ns, "w", "own"), offsetOf(t, n0.ns, "w", "theirs")

	n0.a.PersistSession(adapter.PersistedSession{SID: "w", PID: "pid", Rooms: []string{"w", "r"}, Data: "d"})
	eventually(t, 5*time.Second, "persisted", func() bool { return len(store.sessions()) == 1 })
	s := store.sessions()[0]
	if s.Nsp != "/" || s.SID != "w" || s.PID != "pid" || s.Origin != n0.a.UID() || s.TTL != 2*time.Minute || s.Data != "d" {
		t.Errorf("persisted %+v", s)
	}
	var offs []string
	for _, m := range s.Marks {
		offs = append(offs, m.Offset)
	}
	var want []string // in delivery order
	for _, e := range events(n0.ns.deliveries(isSock("w"))) {
		want = append(want, map[string]string{"own": own, "theirs": theirs}[e])
	}
	if !slices.Equal(offs, want) {
		t.Errorf("marks %+v, want the offsets %v in delivery order (not the packet w was not sent)", s.Marks, want)
	}
	lastMark := s.Marks[len(s.Marks)-1]
	if lastMark.Own != own || lastMark.Others == "" {
		t.Errorf("last mark %+v", lastMark)
	}
}

// SessionsPersisted returns once the sessions handed to PersistSession are
// stored, and not before: a shutting-down server waits on it before it
// closes the connections (make soak saw reconnections that beat the write).
func TestSessionsPersisted(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.hold = make(chan struct{})
	nodes := hubCluster(t, 1, fastConfig(), withSessions(store))
	a := nodes[0].a
	a.PersistSession(adapter.PersistedSession{SID: "s", PID: "p"})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.SessionsPersisted(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("SessionsPersisted with the write held = %v, want context.Canceled", err)
	}
	close(store.hold)
	if err := a.SessionsPersisted(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.sessions()); n != 1 {
		t.Fatalf("%d sessions stored once SessionsPersisted returned, want 1", n)
	}
}

// SessionsPersisted may be called while sessions are still being handed
// to PersistSession (a server shutting down while sockets close): under
// the race detector a sync.WaitGroup flagged this (Add from zero
// concurrent with Wait), seen in the server's recovery tests.
func TestSessionsPersistedWhilePersisting(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	nodes := hubCluster(t, 1, fastConfig(), withSessions(store))
	a := nodes[0].a
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a.PersistSession(adapter.PersistedSession{SID: fmt.Sprintf("s%d-%d", w, i), PID: "p"})
			}
		}()
	}
	for range 200 {
		if err := a.SessionsPersisted(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := a.SessionsPersisted(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.sessions()); n != writers*each {
		t.Fatalf("%d sessions stored once SessionsPersisted returned, want %d", n, writers*each)
	}
}
