package main

import "sync"

// history keeps the last messages of each room, so that a client joining a
// room sees what was said before. In a cluster every node keeps its own copy,
// fed by the messages its clients send and by those other nodes announce with
// a server-side emit (see chat.go); a node that starts late only knows what it
// has seen since.
type history struct {
	mu    sync.Mutex
	size  int
	rooms map[string][]Message
	// maxRooms bounds memory: rooms beyond it are forgotten oldest first.
	maxRooms int
	order    []string
}

func newHistory(size, maxRooms int) *history {
	return &history{size: size, maxRooms: maxRooms, rooms: map[string][]Message{}}
}

// add appends m to its room's history, unless a message with its ID is
// already there (the same message can be announced twice after a Redis
// outage: at-least-once between nodes, exactly once on the page).
func (h *history) add(m Message) {
	if h.size == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs, ok := h.rooms[m.Room]
	if !ok {
		if len(h.order) >= h.maxRooms {
			delete(h.rooms, h.order[0])
			h.order = h.order[1:]
		}
		h.order = append(h.order, m.Room)
	}
	for _, old := range msgs {
		if old.ID == m.ID {
			return
		}
	}
	if len(msgs) >= h.size {
		msgs = append(msgs[:0:0], msgs[len(msgs)-h.size+1:]...)
	}
	h.rooms[m.Room] = append(msgs, m)
}

// last returns a copy of the room's history, oldest first.
func (h *history) last(room string) []Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Message{}, h.rooms[room]...)
}
