package adapter_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sockstream/sockstream/adapter"
)

// The room index follows Node's in-memory adapter: addAll / del / delAll /
// socketRooms / rooms.
func TestRoomIndex(t *testing.T) {
	t.Parallel()
	a := hubCluster(t, 1, fastConfig())[0].a

	if got := a.SocketRooms("x"); got != nil {
		t.Errorf("unknown socket: rooms %v, want nil", got)
	}
	a.AddAll("x", []string{"x", "r1", "r2"})
	a.AddAll("y", []string{"y", "r2"})
	a.AddAll("x", []string{"r3", "r1"}) // joining twice is harmless
	if got := a.SocketRooms("x"); !slices.Equal(got, []string{"r1", "r2", "r3", "x"}) {
		t.Errorf("rooms of x %v", got)
	}
	if got := a.Rooms(); !slices.Equal(got, []string{"r1", "r2", "r3", "x", "y"}) {
		t.Errorf("rooms %v", got)
	}
	a.Del("x", "r3")
	a.Del("x", "nowhere")
	a.Del("nobody", "r1")
	if got := a.Rooms(); !slices.Equal(got, []string{"r1", "r2", "x", "y"}) {
		t.Errorf("an emptied room stays: %v", got)
	}
	a.Del("y", "y")
	a.Del("y", "r2")
	if got := a.SocketRooms("y"); got == nil || len(got) != 0 {
		t.Errorf("y left every room but stays known (as in Node): %#v", got)
	}
	a.DelAll("x")
	if got := a.SocketRooms("x"); got != nil {
		t.Errorf("after DelAll: %v", got)
	}
	if got := a.Rooms(); len(got) != 0 {
		t.Errorf("rooms after everyone left: %v", got)
	}
	a.DelAll("x") // twice: nothing
	a.DelAll("y")
	if got := a.SocketRooms("y"); got != nil {
		t.Errorf("y after DelAll: %v", got)
	}
}

// Broadcast selection, as Node's apply: Rooms = any of them (none = every
// socket), Except = none of them; a socket's own id is a room; a socket in
// two selected rooms gets the packet once.
func TestBroadcastSelection(t *testing.T) {
	t.Parallel()
	n := hubCluster(t, 1, fastConfig())[0]
	ns := n.ns
	ns.connect("a", "r1")
	ns.connect("b", "r1", "r2")
	ns.connect("c", "r2")
	ns.connect("d")
	local := func(rooms []string, except ...string) adapter.Options {
		o := opts(rooms, except...)
		o.Flags.Local = true
		return o
	}
	cases := []struct {
		name string
		opts adapter.Options
		want []string
	}{
		{"all", local(nil), []string{"a", "b", "c", "d"}},
		{"room", local([]string{"r1"}), []string{"a", "b"}},
		{"rooms once", local([]string{"r1", "r2"}), []string{"a", "b", "c"}},
		{"except", local(nil, "r1"), []string{"c", "d"}},
		{"room except", local([]string{"r2"}, "r1"), []string{"c"}},
		{"own id", local([]string{"d"}), []string{"d"}},
		{"except own id", local([]string{"r1"}, "a"), []string{"b"}},
		{"unknown room", local([]string{"zz"}), nil},
		{"except everyone", local(nil, "r1", "r2", "d"), nil},
	}
	for i, tc := range cases {
		name := "sel-" + tc.name
		if err := n.a.Broadcast(ev(name, i), tc.opts); err != nil {
			t.Fatal(err)
		}
	}
	// Local operations run in order too: once the last marker is in, all are.
	sentinel(t, []*node{n}, n, "end", 4)
	for _, tc := range cases {
		var got []string
		for _, d := range ns.deliveries(isEvent("sel-" + tc.name)) {
			got = append(got, d.Socket)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: receivers %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A socket's own-id room is kept apart from the other rooms (a flag, not a
// map of one member): it still behaves as any room, as in Node. A socket
// may leave its own room and join it again, another socket may join it,
// Rooms lists it once, and broadcasts to it or excepting it select its
// members.
func TestRoomIndexOwnRoom(t *testing.T) {
	t.Parallel()
	n := hubCluster(t, 1, fastConfig())[0]
	a, ns := n.a, n.ns
	ns.connect("a", "r1")
	ns.connect("b")
	a.AddAll("b", []string{"a"}) // b joins a's own room
	if got := a.Rooms(); !slices.Equal(got, []string{"a", "b", "r1"}) {
		t.Errorf("rooms %v", got)
	}
	if got := a.SocketRooms("b"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("rooms of b %v", got)
	}
	local := func(rooms []string, except ...string) adapter.Options {
		o := opts(rooms, except...)
		o.Flags.Local = true
		return o
	}
	send := func(name string, o adapter.Options) {
		t.Helper()
		if err := a.Broadcast(ev(name), o); err != nil {
			t.Fatal(err)
		}
	}
	send("own-a", local([]string{"a"}))                      // a and b
	send("own-a-except-b", local([]string{"a"}, "b"))        // a
	send("except-a", local(nil, "a"))                        // nobody: a's room has a and b
	send("own-b-r1", local([]string{"b", "r1", "a"}, "zzz")) // a and b, once each
	// Broadcasts are delivered in order but not at once; the room changes
	// below are at once: each waits for the broadcasts before it.
	sentinel(t, []*node{n}, n, "end1", 2)
	a.Del("a", "a") // a leaves its own room
	if got := a.SocketRooms("a"); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("rooms of a after leaving its own %v", got)
	}
	if got := a.Rooms(); !slices.Equal(got, []string{"a", "b", "r1"}) {
		t.Errorf("a's room stays while b is in it: %v", got)
	}
	send("own-a-left", local([]string{"a"})) // b
	sentinel(t, []*node{n}, n, "end2", 2)
	a.Del("b", "a")
	if got := a.Rooms(); !slices.Equal(got, []string{"b", "r1"}) {
		t.Errorf("rooms once a's room is empty %v", got)
	}
	send("own-a-empty", local([]string{"a"})) // nobody
	sentinel(t, []*node{n}, n, "end3", 2)
	a.AddAll("a", []string{"a"})             // back in
	send("own-a-back", local([]string{"a"})) // a
	sentinel(t, []*node{n}, n, "end", 2)
	for name, want := range map[string][]string{
		"own-a":          {"a", "b"},
		"own-a-except-b": {"a"},
		"except-a":       nil,
		"own-b-r1":       {"a", "b"},
		"own-a-left":     {"b"},
		"own-a-empty":    nil,
		"own-a-back":     {"a"},
	} {
		var got []string
		for _, d := range ns.deliveries(isEvent(name)) {
			got = append(got, d.Socket)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: receivers %v, want %v", name, got, want)
		}
	}
	a.DelAll("a")
	a.DelAll("b")
	if got := a.Rooms(); len(got) != 0 {
		t.Errorf("rooms after everyone left: %v", got)
	}
}

// A socket in many rooms (past the small slice the index keeps them in)
// joins, leaves and lists them as one in a few.
func TestRoomIndexManyRooms(t *testing.T) {
	t.Parallel()
	a := hubCluster(t, 1, fastConfig())[0].a
	var want []string
	for i := range 40 {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	a.AddAll("x", []string{"x"})
	for _, r := range want[:10] {
		a.AddAll("x", []string{r})
	}
	a.AddAll("x", want) // past the slice, the first ten again
	a.AddAll("y", []string{"y", "r05"})
	if got := a.SocketRooms("x"); !slices.Equal(got, append(slices.Clone(want), "x")) {
		t.Errorf("rooms of x %v", got)
	}
	for _, r := range want[:30] {
		a.Del("x", r)
	}
	if got := a.SocketRooms("x"); !slices.Equal(got, append(slices.Clone(want[30:]), "x")) {
		t.Errorf("rooms of x after leaving 30 %v", got)
	}
	if got := a.Rooms(); !slices.Equal(got, append([]string{"r05"}, append(slices.Clone(want[30:]), "x", "y")...)) {
		t.Errorf("rooms %v", got)
	}
	a.DelAll("x")
	if got := a.Rooms(); !slices.Equal(got, []string{"r05", "y"}) {
		t.Errorf("rooms after x left %v", got)
	}
}
