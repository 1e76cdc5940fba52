package adapter

import (
	"slices"
	"sync"
)

// roomIndex is the local room bookkeeping of a namespace, as Node's
// in-memory adapter keeps it: rooms maps a room to its local sockets, sids a
// local socket to its rooms. A socket's own id is one of its rooms by the
// caller's convention (it is not added implicitly). The lock is never held
// while calling the Namespace.
type roomIndex struct {
	mu    sync.RWMutex
	rooms map[string]map[string]struct{}
	sids  map[string]map[string]struct{}
}

func newRoomIndex() *roomIndex {
	return &roomIndex{rooms: map[string]map[string]struct{}{}, sids: map[string]map[string]struct{}{}}
}

// addAll is Node's addAll: the socket joins every room.
func (x *roomIndex) addAll(id string, rooms []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mine := x.sids[id]
	if mine == nil {
		mine = make(map[string]struct{}, len(rooms))
		x.sids[id] = mine
	}
	for _, r := range rooms {
		mine[r] = struct{}{}
		members := x.rooms[r]
		if members == nil {
			members = map[string]struct{}{}
			x.rooms[r] = members
		}
		members[id] = struct{}{}
	}
}

// del is Node's del: the socket leaves room; an empty room goes. The
// socket stays known (with no room) as in Node.
func (x *roomIndex) del(id, room string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if mine := x.sids[id]; mine != nil {
		delete(mine, room)
	}
	x.leaveLocked(id, room)
}

func (x *roomIndex) leaveLocked(id, room string) {
	if members := x.rooms[room]; members != nil {
		delete(members, id)
		if len(members) == 0 {
			delete(x.rooms, room)
		}
	}
}

// delAll is Node's delAll: the socket leaves every room and is forgotten.
func (x *roomIndex) delAll(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for r := range x.sids[id] {
		x.leaveLocked(id, r)
	}
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
	out := make([]string, 0, len(mine))
	for r := range mine {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// roomNames returns the rooms with local sockets, sorted.
func (x *roomIndex) roomNames() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.rooms))
	for r := range x.rooms {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// selectIDs is Node's apply: the local sockets in any of opts.Rooms (every
// socket when there is none) and in none of opts.Except, each once, in no
// particular order.
func (x *roomIndex) selectIDs(opts Options) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	except := x.exceptLocked(opts.Except)
	var out []string
	if len(opts.Rooms) > 0 {
		seen := map[string]struct{}{}
		for _, r := range opts.Rooms {
			for id := range x.rooms[r] {
				if _, skip := except[id]; skip {
					continue
				}
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
				out = append(out, id)
			}
		}
		return out
	}
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
		for id := range x.rooms[r] {
			out[id] = struct{}{}
		}
	}
	return out
}
