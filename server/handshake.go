package server

import (
	"net/http"
	"net/url"
	"time"

	"github.com/sockstream/sockstream/internal/eio"
)

// Handshake describes the HTTP request that opened a connection.
type Handshake struct {
	Headers http.Header
	Query   url.Values
	// Auth is the client's auth payload; {} (never nil) when it sent none.
	Auth    map[string]any
	Address string
	Secure  bool
	URL     string
	Time    time.Time
}

// Handshake describes the request that opened the connection.
//
// It is built on each call from the compact record the connection keeps
// of its request (an idle connection keeps no header map, no parsed
// query): Headers and Query are new maps each time, so changing them
// changes nothing kept. Auth is the client's payload, the same map on
// every call; when the client sent none it is a new empty map each time.
func (s *Socket) Handshake() Handshake {
	return s.handshakeOf(s.client.sess.Handshake())
}

// handshakeOf is the socket's Handshake, with eh its session's.
func (s *Socket) handshakeOf(eh *eio.Handshake) Handshake {
	auth := s.auth
	if auth == nil {
		auth = map[string]any{}
	}
	return Handshake{
		Headers: eh.Header,
		Query:   eh.Query,
		Auth:    auth,
		Address: eh.RemoteAddr,
		Secure:  eh.Secure,
		URL:     eh.URL,
		Time:    eh.Time,
	}
}
