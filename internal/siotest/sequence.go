package siotest

import (
	"testing"
	"time"
)

// CheckSequence waits until every client of ids has received total events
// named event, each carrying one number, then checks that each got exactly
// 0, 1, ..., total-1 in that order: nothing lost, duplicated or reordered.
// It waits a little after the last expected event, for a duplicate to show.
func CheckSequence(t testing.TB, c *Clients, ids []string, event string, total int) {
	t.Helper()
	c.WaitN(t, "every number on every client", len(ids)*total, 30*time.Second, IsEvent(event))
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	byClient := map[string][]int{}
	for _, ev := range c.Filter(IsEvent(event)) {
		var f float64
		ok := len(ev.Args) == 1
		if ok {
			f, ok = ev.Args[0].(float64)
		}
		if !ok {
			t.Fatalf("%s got %s %v, want one number", ev.ID, event, ev.Args)
		}
		byClient[ev.ID] = append(byClient[ev.ID], int(f))
	}
	for _, id := range ids {
		got := byClient[id]
		if len(got) != total {
			t.Errorf("%s received %d numbers, want %d", id, len(got), total)
		}
		for i, v := range got {
			if v != i {
				t.Errorf("%s: number %d at position %d (lost, duplicated or out of order); got %v", id, v, i, got)
				break
			}
		}
	}
}
