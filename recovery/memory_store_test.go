package recovery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	clock := newFakeClock()
	s := newMemoryStore(MemoryStoreOptions{SweepInterval: time.Hour}, clock.Now)
	defer s.Close()
	ctx := context.Background()
	data := map[string]any{"k": []int{1}}
	in := Session{SID: "s1", PID: testPID, Rooms: []string{"s1", "r"}, Data: data, Nsp: "/"}
	if err := s.Persist(ctx, in, time.Second); err != nil {
		t.Fatal(err)
	}
	in.Rooms[1] = "changed" // the store keeps its own copy of Rooms
	got, err := s.Take(ctx, testPID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SID != "s1" || !reflect.DeepEqual(got.Rooms, []string{"s1", "r"}) || !reflect.DeepEqual(got.Data, data) {
		t.Errorf("Take = %+v", got)
	}
	if _, err := s.Take(ctx, testPID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Take: %v, want ErrNotFound", err)
	}

	// Expiry is exact, whether or not the janitor ran.
	if err := s.Persist(ctx, Session{SID: "s2", PID: testPID2}, time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Second)
	if _, err := s.Take(ctx, testPID2); !errors.Is(err, ErrExpired) {
		t.Errorf("Take at the deadline: %v, want ErrExpired", err)
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after taking the expired session", s.Len())
	}

	// Replacing a session moves its deadline.
	_ = s.Persist(ctx, Session{SID: "a", PID: testPID}, time.Second)
	clock.Add(800 * time.Millisecond)
	_ = s.Persist(ctx, Session{SID: "b", PID: testPID}, time.Second)
	clock.Add(800 * time.Millisecond)
	if got, err := s.Take(ctx, testPID); err != nil || got.SID != "b" {
		t.Errorf("Take of the replaced session: %+v, %v", got, err)
	}

	if err := s.Persist(ctx, Session{PID: "nope"}, time.Second); !errors.Is(err, ErrInvalidPID) {
		t.Errorf("bad pid: %v", err)
	}
	if err := s.Persist(ctx, Session{PID: testPID}, 0); !errors.Is(err, ErrInvalidTTL) {
		t.Errorf("zero ttl: %v", err)
	}
	if _, err := s.Take(ctx, "short"); !errors.Is(err, ErrInvalidPID) {
		t.Errorf("bad pid: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Take(cctx, testPID); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Take: %v", err)
	}
}

func pidN(i int) string { return fmt.Sprintf("%020d", i) }

func TestMemoryStoreSweepAndBound(t *testing.T) {
	clock := newFakeClock()
	s := newMemoryStore(MemoryStoreOptions{SweepInterval: time.Millisecond, MaxEntries: 10}, clock.Now)
	defer s.Close()
	ctx := context.Background()
	for i := range 10 {
		if err := s.Persist(ctx, Session{SID: "s", PID: pidN(i)}, time.Duration(i+1)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Full: the session closest to its deadline makes room.
	if err := s.Persist(ctx, Session{SID: "s", PID: pidN(100)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 10 {
		t.Errorf("Len = %d, want the bound 10", s.Len())
	}
	if _, err := s.Take(ctx, pidN(0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the evicted session: %v, want ErrNotFound", err)
	}
	// The janitor gives the memory of expired sessions back.
	clock.Add(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d after the sweep, want 1", s.Len())
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Persist(ctx, Session{SID: "s", PID: testPID}, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Persist after Close: %v", err)
	}
	if _, err := s.Take(ctx, testPID); !errors.Is(err, ErrClosed) {
		t.Errorf("Take after Close: %v", err)
	}
	_ = s.Close() // idempotent
}
