package server

import "slices"

// Room handlers: Node's adapter events create-room, delete-room, join-room
// and leave-room, for the rooms of this node.
//
// The adapter reports each change of its room index through
// adapter.RoomObserver (RoomCreated, RoomDeleted, RoomJoined, RoomLeft),
// which observed implements, with the index locked,
// so that the changes come in the order they were made. Those calls only
// queue: the handlers run on the namespace's room queue, one at a time, in
// that order, never on the goroutine that changed the index (which may be
// the adapter's, or a handler's in the middle of Socket.Join).

// roomHandlers are a namespace's room handlers.
type roomHandlers struct {
	created, deleted []func(room string)
	joined, left     []func(room, id string)
}

func (r roomHandlers) clone() roomHandlers {
	return roomHandlers{
		created: slices.Clone(r.created),
		deleted: slices.Clone(r.deleted),
		joined:  slices.Clone(r.joined),
		left:    slices.Clone(r.left),
	}
}

// maxPendingRoomEvents bounds the room changes of one namespace waiting for
// its room handlers: past it, a change is dropped, counted in
// sockstream_hook_events_dropped_total{hook="room"} and logged, rather
// than let slow handlers grow the queue without end. Each connection
// makes two changes (its own id's room created and joined), so it holds a
// burst of 32,768 connections.
const maxPendingRoomEvents = 65536

// OnRoomCreated registers a handler called when a room gets its first
// socket on this node (Node's adapter "create-room"). As in Node, the room
// of a socket's own id counts: each connection creates the room of its
// id, and joins it.
//
// The room handlers (OnRoomCreated, OnRoomDeleted, OnRoomJoined,
// OnRoomLeft) see the changes of this node's rooms, whatever made them
// (Socket.Join and Leave, connections and disconnections, SocketsJoin and
// SocketsLeave from this node or another), in the order they were made.
// They run one at a time on a goroutine of the namespace, shortly after
// the change, never on the goroutine that made it; at most 65,536 changes
// wait for them, past which one is dropped, counted in
// sockstream_hook_events_dropped_total{hook="room"} and logged. On a
// Namespace from OfDynamic they apply to its namespaces, those to come and
// those that exist.
func (n *Namespace) OnRoomCreated(h func(room string)) {
	n.addRoomHandler(func(r *roomHandlers) { r.created = append(r.created, h) })
}

// OnRoomDeleted registers a handler called when the last socket of a room
// on this node leaves it (Node's adapter "delete-room"); see OnRoomCreated.
func (n *Namespace) OnRoomDeleted(h func(room string)) {
	n.addRoomHandler(func(r *roomHandlers) { r.deleted = append(r.deleted, h) })
}

// OnRoomJoined registers a handler called when the socket id of this node
// joins room (Node's adapter "join-room"), its own id's room included; see
// OnRoomCreated.
func (n *Namespace) OnRoomJoined(h func(room, id string)) {
	n.addRoomHandler(func(r *roomHandlers) { r.joined = append(r.joined, h) })
}

// OnRoomLeft registers a handler called when the socket id of this node
// leaves room (Node's adapter "leave-room"), on disconnection too; see
// OnRoomCreated.
func (n *Namespace) OnRoomLeft(h func(room, id string)) {
	n.addRoomHandler(func(r *roomHandlers) { r.left = append(r.left, h) })
}

func (n *Namespace) addRoomHandler(add func(*roomHandlers)) {
	n.mu.Lock()
	add(&n.rooms)
	n.roomWatch.Store(true)
	children := slices.Clone(n.children)
	n.mu.Unlock()
	for _, c := range children {
		c.addRoomHandler(add)
	}
}

// roomChanged queues the room handlers for one change. It runs with the
// adapter's room index locked: it must not block.
func (n *Namespace) roomChanged(kind roomChange, room, id string) {
	if !n.roomWatch.Load() {
		return
	}
	if n.roomPending.Add(1) > maxPendingRoomEvents {
		n.roomPending.Add(-1)
		n.srv.hookDropped("room", "sockstream: room handlers too slow: room change dropped",
			"nsp", n.name, "change", kind.String(), "room", room, "sid", id, "pending", maxPendingRoomEvents)
		return
	}
	n.srv.busy.Add()
	n.roomQueue.push(func() {
		defer n.srv.busy.Done()
		defer n.roomPending.Add(-1)
		n.mu.Lock()
		r := n.rooms
		n.mu.Unlock()
		switch kind {
		case roomCreated:
			for _, h := range r.created {
				h(room)
			}
		case roomDeleted:
			for _, h := range r.deleted {
				h(room)
			}
		case roomJoined:
			for _, h := range r.joined {
				h(room, id)
			}
		case roomLeft:
			for _, h := range r.left {
				h(room, id)
			}
		}
	})
}

// roomChange is a kind of change of the room index.
type roomChange uint8

const (
	roomCreated roomChange = iota
	roomDeleted
	roomJoined
	roomLeft
)

func (k roomChange) String() string {
	return [...]string{"create-room", "delete-room", "join-room", "leave-room"}[k]
}

// RoomCreated implements adapter.RoomObserver.
func (o observed) RoomCreated(room string) { o.ns().roomChanged(roomCreated, room, "") }

// RoomDeleted implements adapter.RoomObserver.
func (o observed) RoomDeleted(room string) { o.ns().roomChanged(roomDeleted, room, "") }

// RoomJoined implements adapter.RoomObserver.
func (o observed) RoomJoined(room, id string) { o.ns().roomChanged(roomJoined, room, id) }

// RoomLeft implements adapter.RoomObserver.
func (o observed) RoomLeft(room, id string) { o.ns().roomChanged(roomLeft, room, id) }
