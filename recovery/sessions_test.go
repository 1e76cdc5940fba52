package recovery

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

func TestSessions(t *testing.T) {
	f := newFixture(t)
	s := &Sessions{Store: f.store, Log: f.log, Metrics: f.m}
	ctx := context.Background()
	start := f.add(t, "own", nil, "before")
	ps := adapter.PersistedSession{Nsp: "/", SID: "s1", PID: testPID, Rooms: []string{"s1"}, Data: 1, TTL: time.Minute,
		Origin: "own", Marks: []adapter.DeliveryMark{{Offset: start, Own: start}}}
	if err := s.PersistSession(ctx, ps); err != nil {
		t.Fatal(err)
	}
	next := f.add(t, "other", nil, "after")
	rs, err := s.RestoreSession(ctx, "/", testPID, start)
	if err != nil {
		t.Fatal(err)
	}
	want := &adapter.RestoredSession{SID: "s1", PID: testPID, Rooms: []string{"s1"}, Data: 1,
		MissedPackets: [][]any{{"after", next}}, LastOffset: next}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("RestoreSession = %+v, want %+v", rs, want)
	}
	if _, err := s.RestoreSession(ctx, "/", testPID, start); ReasonOf(err) != ReasonExpired {
		t.Errorf("second restore: %v", err)
	}

	_ = f.store.Close()
	if err := s.PersistSession(ctx, ps); err == nil {
		t.Error("PersistSession on a closed store succeeded")
	}
	if n := counterValue(t, f.m.persisted.WithLabelValues("error")); n != 1 {
		t.Errorf("persisted{error} = %v, want 1", n)
	}
	if n := counterValue(t, f.m.persisted.WithLabelValues("ok")); n != 1 {
		t.Errorf("persisted{ok} = %v, want 1", n)
	}
}
