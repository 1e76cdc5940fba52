package adapter_test

import (
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
