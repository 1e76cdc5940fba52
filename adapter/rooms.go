package adapter

import (
	"slices"
	"sync"
)

// roomIndex is the local room bookkeeping of a namespace, as Node's
// in-memory adapter keeps it: rooms maps a room to its local sockets, sids a
// local socket to its rooms. A socket's own id is one of its rooms by the
// caller's convention (it is not added implicitly). The lock is never held
// while calling the Namespace, but for its RoomObserver methods (obs),
// which report each change as it is made, in order, and must not block.
//
// It is laid out for the common case, thousands of sockets each in its own
// id's room and a few others: the own-id room is a flag of the socket's
// entry, not a map of one member (a room named after a socket id lists that
// socket when the flag is set, plus whoever else joined it, in rooms), and a
// socket's rooms are a small slice until they are many.
type roomIndex struct {
	mu    sync.RWMutex
	rooms map[string]map[string]struct{} // members of each room, own-id memberships excepted
	sids  map[string]memberOf
	obs   RoomObserver // nil: no one is told of the changes
}

// memberOf is the set of rooms of one socket.
type memberOf struct {
	own  bool                // in the room named by its own id
	few  []string            // its other rooms, while at most fewRooms
	many map[string]struct{} // its other rooms beyond that (few is then nil)
}

// fewRooms is how many rooms (besides its own) a socket keeps in a slice.
const fewRooms = 16

// add adds room; false if it was there.
func (m *memberOf) add(room string) bool {
	if m.many != nil {
		if _, ok := m.many[room]; ok {
			return false
		}
		m.many[room] = struct{}{}
		return true
	}
	if slices.Contains(m.few, room) {
		return false
	}
	if len(m.few) < fewRooms {
		m.few = append(m.few, room)
		return true
	}
	m.many = make(map[string]struct{}, 2*fewRooms)
	for _, r := range m.few {
		m.many[r] = struct{}{}
	}
	m.many[room] = struct{}{}
	m.few = nil
	return true
}

// remove removes room; false if it was not there.
func (m *memberOf) remove(room string) bool {
	if m.many != nil {
		if _, ok := m.many[room]; !ok {
			return false
		}
		delete(m.many, room)
		return true
	}
	i := slices.Index(m.few, room)
	if i < 0 {
		return false
	}
	last := len(m.few) - 1
	m.few[i] = m.few[last]
	m.few[last] = ""
	m.few = m.few[:last]
	if last == 0 {
		m.few = nil
	}
	return true
}

// others calls f for each room but the own-id one.
func (m *memberOf) others(f func(room string)) {
	for _, r := range m.few {
		f(r)
	}
	for r := range m.many {
		f(r)
	}
}

func newRoomIndex() *roomIndex {
	return &roomIndex{rooms: map[string]map[string]struct{}{}, sids: map[string]memberOf{}}
}

// addAll is Node's addAll: the socket joins every room.
func (x *roomIndex) addAll(id string, rooms []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mine := x.sids[id]
	for _, r := range rooms {
		if r == id {
			if !mine.own {
				mine.own = true
				if x.obs != nil {
					if len(x.rooms[r]) == 0 {
						x.obs.RoomCreated(r)
					}
					x.obs.RoomJoined(r, id)
				}
			}
			continue
		}
		if !mine.add(r) {
			continue
		}
		members := x.rooms[r]
		if members == nil {
			members = map[string]struct{}{}
			x.rooms[r] = members
			if x.obs != nil && !x.ownMember(r) {
				x.obs.RoomCreated(r)
			}
		}
		members[id] = struct{}{}
		if x.obs != nil {
			x.obs.RoomJoined(r, id)
		}
	}
	x.sids[id] = mine
}

// del is Node's del: the socket leaves room; an empty room goes. The
// socket stays known (with no room) as in Node.
func (x *roomIndex) del(id, room string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mine, ok := x.sids[id]
	if !ok {
		return
	}
	if room == id {
		if mine.own {
			mine.own = false
			x.leftOwnLocked(id)
		}
	} else if mine.remove(room) {
		x.leaveLocked(id, room)
	}
	x.sids[id] = mine
}

func (x *roomIndex) leaveLocked(id, room string) {
	if members := x.rooms[room]; members != nil {
		delete(members, id)
		if len(members) == 0 {
			delete(x.rooms, room)
		}
		if x.obs != nil {
			x.obs.RoomLeft(room, id)
			if len(members) == 0 && !x.ownMember(room) {
				x.obs.RoomDeleted(room)
			}
		}
	}
}

// leftOwnLocked reports that socket id left the room of its own id (its
// flag is already cleared, or its entry gone).
func (x *roomIndex) leftOwnLocked(id string) {
	if x.obs != nil {
		x.obs.RoomLeft(id, id)
		if len(x.rooms[id]) == 0 {
			x.obs.RoomDeleted(id)
		}
	}
}

// delAll is Node's delAll: the socket leaves every room and is forgotten.
func (x *roomIndex) delAll(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mine, ok := x.sids[id]
	if !ok {
		return
	}
	if mine.own {
		// First, as in Node, where it is the socket's first room.
		x.leftOwnLocked(id)
	}
	mine.others(func(r string) { x.leaveLocked(id, r) })
	delete(x.sids, id)
}

// socketRooms returns the rooms of id, sorted; nil if the socket is unknown.
func (x *roomIndex) socketRooms(id string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	mine, ok := x.sids[id]
	if !ok {
		return nil
	}
	out := make([]string, 0, 1+len(mine.few)+len(mine.many))
	if mine.own {
		out = append(out, id)
	}
	mine.others(func(r string) { out = append(out, r) })
	slices.Sort(out)
	return out
}

// roomNames returns the rooms with local sockets, sorted.
func (x *roomIndex) roomNames() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.rooms)+len(x.sids))
	for r := range x.rooms {
		out = append(out, r)
	}
	for id, mine := range x.sids {
		if _, listed := x.rooms[id]; mine.own && !listed {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// ownMember reports whether room is the own-id room of a local socket that
// is in it.
func (x *roomIndex) ownMember(room string) bool {
	mine, ok := x.sids[room]
	return ok && mine.own
}

// selectIDs is Node's apply: the local sockets in any of opts.Rooms (every
// socket when there is none) and in none of opts.Except, each once, in no
// particular order.
func (x *roomIndex) selectIDs(opts Options) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	except := x.exceptLocked(opts.Except)
	var out []string
	if len(opts.Rooms) == 1 {
		// The common case: one room's members are distinct (its own-id
		// member is not in the room's set), no dedupe needed.
		r := opts.Rooms[0]
		members := x.rooms[r]
		out = make([]string, 0, len(members)+1)
		if x.ownMember(r) {
			if _, skip := except[r]; !skip {
				out = append(out, r)
			}
		}
		for id := range members {
			if _, skip := except[id]; !skip {
				out = append(out, id)
			}
		}
		return out
	}
	if len(opts.Rooms) > 0 {
		seen := map[string]struct{}{}
		pick := func(id string) {
			if _, skip := except[id]; skip {
				return
			}
			if _, dup := seen[id]; dup {
				return
			}
			seen[id] = struct{}{}
			out = append(out, id)
		}
		for _, r := range opts.Rooms {
			if x.ownMember(r) {
				pick(r)
			}
			for id := range x.rooms[r] {
				pick(id)
			}
		}
		return out
	}
	out = make([]string, 0, len(x.sids))
	for id := range x.sids {
		if _, skip := except[id]; !skip {
			out = append(out, id)
		}
	}
	return out
}

// exceptLocked is Node's computeExceptSids: the members of the except rooms.
func (x *roomIndex) exceptLocked(rooms []string) map[string]struct{} {
	if len(rooms) == 0 {
		return nil
	}
	out := map[string]struct{}{}
	for _, r := range rooms {
		if x.ownMember(r) {
			out[r] = struct{}{}
		}
		for id := range x.rooms[r] {
			out[id] = struct{}{}
		}
	}
	return out
}
