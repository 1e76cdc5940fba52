package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/sockstream/sockstream/server"
)

// web holds the page. socket.io.min.js is copied there from the official
// socket.io-client package by `make run` (it is not committed), so the
// binary serves the client itself and the demo works offline.
//
//go:embed web
var web embed.FS

// Message is a chat message as clients receive it.
type Message struct {
	ID   string `json:"id"`
	Room string `json:"room"`
	Nick string `json:"nick"`
	Text string `json:"text"`
	// At is the sending node's clock, in Unix milliseconds (JavaScript's
	// Date.now()).
	At int64 `json:"at"`
}

// member is what a socket's data holds once it has joined a room. It is kept
// as a map so that it reads the same locally and from another node, where
// fetchSockets hands it over as decoded JSON.
func member(data any) (nick, room string) {
	d, _ := data.(map[string]any)
	nick, _ = d["nick"].(string)
	room, _ = d["room"].(string)
	return nick, room
}

// historyEvent is the server-side event by which a node tells the others of
// a message, for their room histories.
const historyEvent = "chat:history"

// fetchTimeout bounds the cluster-wide queries (room list, users).
const fetchTimeout = 3 * time.Second

type chat struct {
	srv     *server.Server
	log     *slog.Logger
	hist    *history
	idBase  string
	counter atomic.Uint64
}

// mountChat registers the chat's handlers and its page on srv.
func mountChat(srv *server.Server, historySize int) *chat {
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &chat{srv: srv, log: srv.Logger(), hist: newHistory(historySize, 1000), idBase: hex.EncodeToString(b[:])}

	page, _ := fs.Sub(web, "web")
	srv.Mux().Handle("/", http.FileServerFS(page))

	nsp := srv.Of("/")
	nsp.OnServerSideEmit(historyEvent, func(e *server.Event) {
		var m Message
		if err := e.Bind(0, &m); err != nil || !validName(m.Room, maxRoom) {
			c.log.Warn("chat: bad history announcement from another node", "err", err)
			return
		}
		c.hist.add(m)
	})
	nsp.OnConnection(c.onConnection)
	return c
}

func (c *chat) nextID() string {
	return fmt.Sprintf("%s-%d", c.idBase, c.counter.Add(1))
}

func (c *chat) onConnection(s *server.Socket) {
	if s.Recovered() {
		// Connection state recovery gave the socket back its id, rooms
		// and data, and replays what it missed; the room saw it leave
		// when its connection dropped, so it hears it is back.
		if nick, room := member(s.Data()); room != "" {
			_ = s.To(room).Emit("presence", map[string]any{"nick": nick, "room": room, "online": true, "recovered": true})
		}
	}
	s.On("join", func(e *server.Event) { c.join(s, e) })
	s.On("leave", func(e *server.Event) { c.leave(s, e) })
	s.On("message", func(e *server.Event) { c.message(s, e) })
	s.On("typing", func(e *server.Event) {
		nick, room := member(s.Data())
		if room == "" {
			return
		}
		typing, _ := e.Arg(0).(bool)
		// Volatile: a typing hint that arrives late is worse than none.
		_ = s.To(room).Volatile().Emit("typing", map[string]any{"nick": nick, "typing": typing})
	})
	s.On("rooms", func(e *server.Event) { c.rooms(s, e) })
	s.On("users", func(e *server.Event) {
		_, room := member(s.Data())
		if room == "" {
			e.Ack(map[string]any{"error": errNoRoom.Error()})
			return
		}
		users, err := c.users(s.Context(), room)
		if err != nil {
			e.Ack(map[string]any{"error": err.Error()})
			return
		}
		e.Ack(map[string]any{"users": users})
	})
	s.OnDisconnect(func(reason string) {
		nick, room := member(s.Data())
		if room != "" {
			_ = c.srv.To(room).Emit("presence", map[string]any{"nick": nick, "room": room, "online": false, "reason": reason})
		}
	})
}

func fail(e *server.Event, err error) { e.Ack(map[string]any{"error": err.Error()}) }

func (c *chat) join(s *server.Socket, e *server.Event) {
	var req struct {
		Nick string `json:"nick"`
		Room string `json:"room"`
	}
	if err := e.Bind(0, &req); err != nil || !validName(req.Nick, maxNick) {
		fail(e, errNick)
		return
	}
	if !validName(req.Room, maxRoom) {
		fail(e, errRoom)
		return
	}
	// The ack comes first: the presence broadcasts wait for the cluster
	// to take them (up to Redis's request timeout when it hangs), and
	// the room's users are fetched within fetchTimeout, so the join is
	// answered within fetchTimeout, Redis up or not.
	left := c.leaveRoomQuiet(s)
	s.SetData(map[string]any{"nick": req.Nick, "room": req.Room})
	s.Join(req.Room)
	users, err := c.users(s.Context(), req.Room)
	if err != nil {
		c.log.Warn("chat: users of a room", "room", req.Room, "err", err)
	}
	e.Ack(map[string]any{"ok": true, "history": c.hist.last(req.Room), "users": users})
	if left != nil {
		left()
	}
	c.presence(s.To(req.Room), map[string]any{"nick": req.Nick, "room": req.Room, "online": true})
}

// presence tells a room that someone came or went. A failure (the cluster
// could not take it) is logged: presence is a hint, the users list is
// refreshed from the cluster.
func (c *chat) presence(to *server.Broadcast, p map[string]any) {
	if err := to.Emit("presence", p); err != nil {
		c.log.Warn("chat: presence not delivered", "err", err)
	}
}

func (c *chat) leave(s *server.Socket, e *server.Event) {
	tell := c.leaveRoomQuiet(s)
	e.Ack(map[string]any{"ok": true})
	if tell != nil {
		tell()
	}
}

// leaveRoomQuiet takes s out of its room, if any, and returns what tells
// the room (nil if s was in none).
func (c *chat) leaveRoomQuiet(s *server.Socket) func() {
	nick, room := member(s.Data())
	if room == "" {
		return nil
	}
	s.Leave(room)
	s.SetData(map[string]any{"nick": nick})
	return func() {
		c.presence(c.srv.To(room), map[string]any{"nick": nick, "room": room, "online": false, "reason": "left"})
	}
}

func (c *chat) message(s *server.Socket, e *server.Event) {
	nick, room := member(s.Data())
	if room == "" {
		fail(e, errNoRoom)
		return
	}
	text, _ := e.Arg(0).(string)
	if !validText(text) {
		fail(e, errMessage)
		return
	}
	m := Message{ID: c.nextID(), Room: room, Nick: nick, Text: text, At: time.Now().UnixMilli()}
	c.hist.add(m)
	if err := s.To(room).Emit("message", m); err != nil {
		// The cluster refused it (Redis away and its publish buffer
		// full, or the server shutting down): the members on other nodes
		// will not get it, and the sender is told so. Those on this node
		// did get it (as in Node); the page marks it "not delivered".
		c.log.Warn("chat: broadcast failed", "room", room, "err", err)
		e.Ack(map[string]any{"ok": false, "id": m.ID, "error": fmt.Sprintf("not delivered: %v", err)})
		return
	}
	// Emit returned nil: Redis took the message, or it waits in the
	// publish buffer and reaches the other nodes when Redis is back.
	if err := c.srv.Of("/").ServerSideEmit(historyEvent, m); err != nil {
		// Only once the adapter is closed (shutdown): on one node the
		// in-memory transport takes it and there is no other node to tell.
		c.log.Debug("chat: history not shared with other nodes", "err", err)
	}
	e.Ack(map[string]any{"ok": true, "id": m.ID, "at": m.At})
}

// RoomInfo is one entry of the room list.
type RoomInfo struct {
	Room    string `json:"room"`
	Members int    `json:"members"`
}

func (c *chat) rooms(s *server.Socket, e *server.Event) {
	ctx, cancel := context.WithTimeout(s.Context(), fetchTimeout)
	defer cancel()
	socks, err := c.srv.Of("/").FetchSockets(ctx)
	if err != nil {
		fail(e, fmt.Errorf("room list: %w", err))
		return
	}
	counts := map[string]int{}
	for _, r := range socks {
		if _, room := member(r.Data()); room != "" {
			counts[room]++
		}
	}
	list := make([]RoomInfo, 0, len(counts))
	for room, n := range counts {
		list = append(list, RoomInfo{Room: room, Members: n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Members != list[j].Members {
			return list[i].Members > list[j].Members
		}
		return list[i].Room < list[j].Room
	})
	e.Ack(map[string]any{"rooms": list})
}

// users lists the nicknames in room, cluster-wide, sorted. When the
// cluster cannot answer (Redis away), it lists this node's users and
// returns the error too.
func (c *chat) users(ctx context.Context, room string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	socks, err := c.srv.In(room).FetchSockets(ctx)
	if err != nil {
		err = fmt.Errorf("users of %s: %w", room, err)
		var lerr error
		if socks, lerr = c.srv.In(room).Local().FetchSockets(ctx); lerr != nil {
			return nil, errors.Join(err, lerr)
		}
	}
	users := make([]string, 0, len(socks))
	for _, r := range socks {
		if nick, _ := member(r.Data()); nick != "" {
			users = append(users, nick)
		}
	}
	sort.Strings(users)
	return users, err
}
