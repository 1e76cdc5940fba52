package recovery

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
)

// fixture: a MemoryStore and a MemoryLog with offsets chosen by the test.
type fixture struct {
	store *MemoryStore
	log   *MemoryLog
	m     *Metrics
	r     *Restorer
	next  uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: NewMemoryStore(MemoryStoreOptions{}), log: NewMemoryLog(MemoryLogOptions{}), m: m, next: 1000}
	t.Cleanup(func() { _ = f.store.Close() })
	f.r = &Restorer{Store: f.store, Log: f.log, Metrics: m}
	return f
}

// add appends a packet published by uid to rooms and returns its offset.
func (f *fixture) add(t *testing.T, uid string, rooms []string, data ...any) string {
	t.Helper()
	f.next++
	off := adapter.Offset{Ms: f.next}.String()
	if err := f.log.AppendAt(Packet{Offset: off, Nsp: "/", UID: uid, Data: data, Opts: PacketOptions{Rooms: rooms}}); err != nil {
		t.Fatal(err)
	}
	return off
}

func (f *fixture) persist(t *testing.T, s Session) {
	t.Helper()
	if err := f.store.Persist(context.Background(), s, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func names(missed [][]any) []any {
	var out []any
	for _, p := range missed {
		out = append(out, p[0])
	}
	return out
}

func TestRestore(t *testing.T) {
	f := newFixture(t)
	start := f.add(t, "n1", nil, "before")
	f.persist(t, Session{SID: "s1", PID: testPID, Rooms: []string{"s1", "r1"}, Data: "d", Nsp: "/"})
	f.add(t, "n1", []string{"r1"}, "to r1")
	f.add(t, "n1", []string{"r2"}, "to r2")
	if err := f.log.AppendAt(Packet{Offset: adapter.Offset{Ms: 2000}.String(), Nsp: "/", Data: []any{"volatile"}, Opts: PacketOptions{Volatile: true}}); err != nil {
		t.Fatal(err)
	}
	f.next = 2000
	if err := f.log.AppendAt(Packet{Offset: adapter.Offset{Ms: 2001}.String(), Nsp: "/", Data: []any{"except"}, Opts: PacketOptions{Except: []string{"r1"}}}); err != nil {
		t.Fatal(err)
	}
	f.next = 2001
	last := f.add(t, "n2", nil, "all")

	res, err := f.r.Restore(context.Background(), testPID, start, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.MissedPackets); !reflect.DeepEqual(got, []any{"to r1", "all"}) {
		t.Errorf("missed %v, want [to r1 all]", got)
	}
	if p := res.MissedPackets[1]; p[len(p)-1] != last {
		t.Errorf("the offset is not the last argument: %v", p)
	}
	if res.LastOffset != last || !res.Covers(last) || res.Covers(adapter.Offset{Ms: 3000}.String()) || res.Covers("") {
		t.Errorf("LastOffset %s / Covers wrong", res.LastOffset)
	}
	if !res.Wants(Packet{Offset: adapter.Offset{Ms: 3000}.String(), Opts: PacketOptions{Rooms: []string{"r1"}}}) ||
		res.Wants(Packet{Offset: adapter.Offset{Ms: 3000}.String(), Opts: PacketOptions{Rooms: []string{"r9"}}}) ||
		res.Wants(Packet{Offset: last}) {
		t.Error("Wants wrong")
	}
	if res.Session.SID != "s1" || res.Session.Data != "d" {
		t.Errorf("session %+v", res.Session)
	}
	// At most once.
	if _, err := f.r.Restore(context.Background(), testPID, start, "/"); ReasonOf(err) != ReasonExpired || !errors.Is(err, ErrNotFound) {
		t.Errorf("second restore: %v", err)
	}
	if n := counterValue(t, f.m.replayed); n != 2 {
		t.Errorf("replayed counter = %v, want 2", n)
	}
}

func TestRestoreFailures(t *testing.T) {
	f := newFixture(t)
	start := f.add(t, "n1", nil, "x")
	ctx := context.Background()
	for name, c := range map[string]struct {
		setup          func()
		pid, off, nsp  string
		reason         Reason
		err            error
		sessionDeleted bool
	}{
		"malformed offset": {pid: testPID, off: "abc", nsp: "/", reason: ReasonInvalid, err: adapter.ErrInvalidOffset},
		"malformed pid":    {pid: "x", off: start, nsp: "/", reason: ReasonInvalid, err: ErrInvalidPID},
		"no session":       {pid: testPID2, off: start, nsp: "/", reason: ReasonExpired, err: ErrNotFound},
		"other namespace": {setup: func() { f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/admin"}) },
			pid: testPID, off: start, nsp: "/", reason: ReasonInvalid, err: ErrNamespaceMismatch},
		"unknown offset": {setup: func() { f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/"}) },
			pid: testPID, off: "5-5", nsp: "/", reason: ReasonTrimmed, err: ErrOffsetNotFound},
	} {
		if c.setup != nil {
			c.setup()
		}
		_, err := f.r.Restore(ctx, c.pid, c.off, c.nsp)
		var re *RestoreError
		if !errors.As(err, &re) || re.Reason != c.reason || !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want reason %s wrapping %v", name, err, c.reason, c.err)
		}
	}
	// The store's Take consumed the sessions above.
	if f.store.Len() != 0 {
		t.Errorf("%d sessions left", f.store.Len())
	}
}

// TestRestoreWithMarks: node "own" delivered its own packets at once and
// "other"'s packets late; the client's offset is an own packet delivered
// before an older packet of "other", and after a newer one.
func TestRestoreWithMarks(t *testing.T) {
	f := newFixture(t)
	o1 := f.add(t, "other", nil, "o1") // delivered before L
	o2 := f.add(t, "other", nil, "o2") // not yet delivered when L was
	l := f.add(t, "own", nil, "L")     // the client's last packet
	o3 := f.add(t, "other", nil, "o3")
	m1 := f.add(t, "own", nil, "m1")
	_ = o2
	_ = o3
	marks := []adapter.DeliveryMark{
		{Offset: o1, Own: "", Others: o1},
		{Offset: l, Own: l, Others: o1},
		{Offset: o2, Own: l, Others: o2},
	}
	f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/", Origin: "own", Marks: marks})
	res, err := f.r.Restore(context.Background(), testPID, l, "/")
	if err != nil {
		t.Fatal(err)
	}
	// o2 is older than L but was never sent before it; m1 and o3 are new.
	if got := names(res.MissedPackets); !reflect.DeepEqual(got, []any{"o2", "o3", "m1"}) {
		t.Errorf("missed %v, want [o2 o3 m1]", got)
	}
	_ = m1

	// The client got o2 after L: o2 is its offset and its mark says L
	// (own) was delivered before it.
	f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/", Origin: "own", Marks: marks})
	res, err = f.r.Restore(context.Background(), testPID, o2, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.MissedPackets); !reflect.DeepEqual(got, []any{"o3", "m1"}) {
		t.Errorf("missed %v, want [o3 m1]", got)
	}

	// An offset without a mark: the offset alone, as Node.
	f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/", Origin: "own", Marks: marks[:1]})
	res, err = f.r.Restore(context.Background(), testPID, l, "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.MissedPackets); !reflect.DeepEqual(got, []any{"o3", "m1"}) {
		t.Errorf("without a mark: missed %v, want [o3 m1]", got)
	}

	// A made-up offset between entries is refused even with marks.
	f.persist(t, Session{SID: "s", PID: testPID, Nsp: "/", Origin: "own", Marks: []adapter.DeliveryMark{{Offset: "1004-7", Own: l, Others: o1}}})
	if _, err := f.r.Restore(context.Background(), testPID, "1004-7", "/"); ReasonOf(err) != ReasonTrimmed {
		t.Errorf("made-up offset: %v, want trimmed", err)
	}
}
