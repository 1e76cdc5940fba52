package main

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/sockstream/sockstream/server"
)

// web holds the page. socket.io.min.js is copied there from the official
// socket.io-client package by `make run` (it is not committed).
//
//go:embed web
var web embed.FS

const (
	maxNick    = 32
	maxRoom    = 32
	maxMessage = 2000
)

// mountChat registers the chat's handlers and its page on srv.
func mountChat(srv *server.Server) {
	page, _ := fs.Sub(web, "web")
	srv.Mux().Handle("/", http.FileServerFS(page))

	srv.OnConnection(func(s *server.Socket) {
		s.On("join", func(e *server.Event) {
			var req struct {
				Nick string `json:"nick"`
				Room string `json:"room"`
			}
			if err := e.Bind(0, &req); err != nil || !validName(req.Nick, maxNick) || !validName(req.Room, maxRoom) {
				e.Ack(map[string]any{"error": "nick and room: 1 to 32 letters, digits, - or _"})
				return
			}
			for _, r := range s.Rooms() {
				if r != s.ID() {
					s.Leave(r)
				}
			}
			s.SetData(map[string]any{"nick": req.Nick, "room": req.Room})
			s.Join(req.Room)
			_ = srv.To(req.Room).Emit("joined", map[string]any{"nick": req.Nick, "room": req.Room})
			e.Ack(map[string]any{"ok": true})
		})
		s.On("message", func(e *server.Event) {
			text, _ := e.Arg(0).(string)
			d, _ := s.Data().(map[string]any)
			if d == nil {
				e.Ack(map[string]any{"error": "join a room first"})
				return
			}
			if text == "" || utf8.RuneCountInString(text) > maxMessage {
				e.Ack(map[string]any{"error": "a message is 1 to 2000 characters"})
				return
			}
			_ = srv.To(d["room"].(string)).Emit("message", map[string]any{"nick": d["nick"], "text": text})
			e.Ack(map[string]any{"ok": true})
		})
	})
}

// validName accepts 1 to max letters, digits, '-' and '_'.
func validName(s string, max int) bool {
	if s == "" || utf8.RuneCountInString(s) > max {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0
}
