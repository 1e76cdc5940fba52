package adapter

import "slices"

// Selection is the target of an operation on a namespace's sockets, built
// step by step as Node's BroadcastOperator builds it: the rooms (any of
// them; none means every socket), the excepted rooms and the flags. Each
// method returns a new Selection and leaves the receiver as it was, so a
// partial selection can be kept and shared between goroutines. The
// Socket.IO server's and the stream emitter's broadcasts are built on it.
type Selection struct {
	rooms  []string
	except []string
	flags  Flags
}

// To adds rooms (each once): the sockets in any of them are selected.
func (s Selection) To(rooms ...string) Selection {
	s.rooms = appendNew(s.rooms, rooms)
	return s
}

// Except adds excepted rooms (each once): the sockets in any of them are
// left out.
func (s Selection) Except(rooms ...string) Selection {
	s.except = appendNew(s.except, rooms)
	return s
}

// WithFlags returns the selection with its flags changed by set.
func (s Selection) WithFlags(set func(*Flags)) Selection {
	set(&s.flags)
	return s
}

// Flags returns the selection's flags.
func (s Selection) Flags() Flags { return s.flags }

// Options returns the selection as operations take it and the wire carries
// it: rooms and except always present (empty arrays included, as Node's
// restore code needs), the slices the caller's own.
func (s Selection) Options() Options {
	o := Options{Rooms: slices.Clone(s.rooms), Except: slices.Clone(s.except), Flags: s.flags}
	if o.Rooms == nil {
		o.Rooms = []string{}
	}
	if o.Except == nil {
		o.Except = []string{}
	}
	return o
}

// appendNew returns list with the names of add it does not hold yet, in
// a new backing array when it grows (list may be shared).
func appendNew(list, add []string) []string {
	list = slices.Clip(list)
	for _, r := range add {
		if !slices.Contains(list, r) {
			list = append(list, r)
		}
	}
	return list
}
