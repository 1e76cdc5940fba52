package adapter_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// observedNS is a test namespace that records the changes of its room
// index, as adapter.RoomObserver reports them.
type observedNS struct {
	*testNS
	mu     sync.Mutex
	events []string
}

func (o *observedNS) note(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *observedNS) RoomCreated(room string)    { o.note("create " + room) }
func (o *observedNS) RoomDeleted(room string)    { o.note("delete " + room) }
func (o *observedNS) RoomJoined(room, id string) { o.note("join " + room + " " + id) }
func (o *observedNS) RoomLeft(room, id string)   { o.note("leave " + room + " " + id) }

// take returns the events so far and forgets them.
func (o *observedNS) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.events
	o.events = nil
	return out
}

// TestRoomObserver: every change of the room index is reported, in order,
// as Node's adapter emits create-room, join-room, leave-room and
// delete-room, whatever made it: this node's AddAll, Del and DelAll, and
// the AddSockets and DelSockets of another node.
func TestRoomObserver(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	ns := &observedNS{testNS: newTestNS("/obs", nodes[0].name)}
	a := nodes[0].b.New(ns)
	ns.a.Store(a)
	t.Cleanup(func() { _ = a.Close() })
	other := nodes[1].attach(newTestNS("/obs", nodes[1].name))
	t.Cleanup(func() { _ = other.Close() })
	eventually(t, 10*time.Second, "the /obs adapters see each other", func() bool {
		return a.ServerCount() == 2 && other.ServerCount() == 2
	})

	expect := func(what string, want ...string) {
		t.Helper()
		if got := ns.take(); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	a.AddAll("x", []string{"x"})
	expect("own room", "create x", "join x x")
	a.AddAll("y", []string{"y", "r", "x"}) // y also joins the room named x
	expect("rooms", "create y", "join y y", "create r", "join r y", "join x y")
	a.AddAll("x", []string{"r", "x"})
	expect("joining again", "join r x")
	a.Del("x", "x") // y is still in the room named x
	expect("leave own room", "leave x x")
	a.Del("y", "x")
	expect("last one out", "leave x y", "delete x")
	if err := other.AddSockets(adapter.Options{Rooms: []string{"y"}}, []string{"s"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the remote join applied", func() bool { return slices.Contains(a.SocketRooms("y"), "s") })
	expect("remote join", "create s", "join s y")
	if err := other.DelSockets(adapter.Options{Rooms: []string{"s"}}, []string{"s"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the remote leave applied", func() bool { return !slices.Contains(a.SocketRooms("y"), "s") })
	expect("remote leave", "leave s y", "delete s")
	a.DelAll("y")
	expect("disconnection", "leave y y", "delete y", "leave r y")
	a.DelAll("x")
	expect("last disconnection", "leave r x", "delete r")
}
