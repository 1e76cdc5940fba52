package server

import "time"

// watchRooms reports the sockets of n on this node joining and leaving
// rooms (room_joined, room_left), as instrument() does with the adapter's
// join-room and leave-room events: whatever made the change, a socket's
// Join, a disconnection, or an action from any node.
func (a *admin) watchRooms(n *Namespace) {
	nsp := n.Name()
	n.OnRoomJoined(func(room, id string) {
		a.feed.push("room_joined", nsp, room, id, adminTime(time.Now()))
	})
	n.OnRoomLeft(func(room, id string) {
		a.feed.push("room_left", nsp, room, id, adminTime(time.Now()))
	})
}
