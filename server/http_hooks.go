package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstream/sockstream/internal/eio"
)

// CookieConfig is the session cookie (Node's cookie option): its value is
// the Engine.IO session id. Zero fields take Node's defaults.
type CookieConfig struct {
	// Name of the cookie. Default "io".
	Name string
	// Path of the cookie. Default "/".
	Path string
	// Domain of the cookie. Default none (the host that set it).
	Domain string
	// MaxAge, if positive, makes the cookie persistent for that long
	// (rounded down to seconds). Default: a session cookie.
	MaxAge time.Duration
	// Secure sends the cookie over HTTPS only.
	Secure bool
	// NotHTTPOnly lets the page's scripts read the cookie. Default false:
	// HttpOnly, as Node's httpOnly: true.
	NotHTTPOnly bool
	// SameSite is the cookie's SameSite attribute. Default
	// http.SameSiteLaxMode, Node's "lax".
	SameSite http.SameSite
}

func (c *CookieConfig) validate() error {
	if c.Name != "" && !validCookieName(c.Name) {
		return errors.New("the name must be a token (letters, digits, !#$%&'*+-.^_`|~)")
	}
	if strings.ContainsAny(c.Path, ";\r\n") || strings.ContainsAny(c.Domain, "; \r\n") {
		return errors.New("the path and domain must not contain ';' or line breaks")
	}
	if c.MaxAge < 0 {
		return errors.New("negative max age")
	}
	return nil
}

func validCookieName(name string) bool {
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

// cookie is the template eio sets on polling handshakes.
func (c *CookieConfig) cookie() *http.Cookie {
	if c == nil {
		return nil
	}
	k := &http.Cookie{
		Name:     c.Name,
		Path:     c.Path,
		Domain:   c.Domain,
		MaxAge:   int(c.MaxAge / time.Second),
		Secure:   c.Secure,
		HttpOnly: !c.NotHTTPOnly,
		SameSite: c.SameSite,
	}
	if k.Name == "" {
		k.Name = "io"
	}
	if k.Path == "" {
		k.Path = "/"
	}
	if k.SameSite == 0 {
		k.SameSite = http.SameSiteLaxMode
	}
	return k
}

// ConnectionError is an HTTP request refused before it reached a session
// or opened one (Node's engine.io "connection_error" event).
type ConnectionError struct {
	// Request is the refused request. Read it, do not keep it.
	Request *http.Request
	// Code is the Engine.IO error code the client got: 0 unknown
	// transport, 1 unknown session id, 2 bad handshake method, 3 bad
	// request, 4 forbidden (Config.AllowRequest), 5 unsupported protocol
	// version.
	Code int
	// Message is the code's standard message ("Transport unknown",
	// "Session ID unknown", "Bad handshake method", "Bad request",
	// "Forbidden", "Unsupported protocol version").
	Message string
	// Context gives details, with Node's keys: "transport", "sid",
	// "method", "protocol", "name" (such as "TRANSPORT_MISMATCH") and, for
	// a refusal by AllowRequest, "message" (the error's text).
	Context map[string]any
}

func (e *ConnectionError) Error() string { return "engine.io: " + e.Message }

// httpHooks are the handlers of the HTTP layer; replaced whole when one is
// added, so that requests read them without a lock.
type httpHooks struct {
	connErr []func(*ConnectionError)
	initial []func(http.Header, *http.Request)
	headers []func(http.Header, *http.Request)
}

// hookSet holds the server's httpHooks.
type hookSet struct {
	mu  sync.Mutex // serializes the updates
	cur atomic.Pointer[httpHooks]
}

func (hs *hookSet) update(f func(*httpHooks)) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	next := &httpHooks{}
	if cur := hs.cur.Load(); cur != nil {
		next.connErr = slices.Clone(cur.connErr)
		next.initial = slices.Clone(cur.initial)
		next.headers = slices.Clone(cur.headers)
	}
	f(next)
	hs.cur.Store(next)
}

// OnConnectionError registers a handler for each HTTP request the server
// refuses before it reaches a session or opens one: an unknown transport
// or session id, a bad handshake, a refusal by Config.AllowRequest (Node's
// io.engine.on("connection_error")). It runs on the request's goroutine,
// before the refusal is written: keep it short.
func (s *Server) OnConnectionError(h func(*ConnectionError)) {
	s.httpHooks.update(func(hk *httpHooks) { hk.connErr = append(hk.connErr, h) })
}

// OnInitialHeaders registers a handler that may add headers to the answer
// to each Engine.IO polling handshake (Node's
// io.engine.on("initial_headers")); with Config.Cookie the session cookie
// is already in h, and to the 101 response of a WebSocket handshake, as
// Node does. It runs on the request's goroutine.
func (s *Server) OnInitialHeaders(h func(h http.Header, r *http.Request)) {
	s.httpHooks.update(func(hk *httpHooks) { hk.initial = append(hk.initial, h) })
}

// OnHeaders registers a handler that may add headers to the answer to each
// polling request of an Engine.IO session, its handshake included (after
// the OnInitialHeaders handlers), and to the 101 response of a WebSocket
// (Node's io.engine.on("headers")). Refusals (400, 403)
// do not go through it. It runs on the request's goroutine.
func (s *Server) OnHeaders(h func(h http.Header, r *http.Request)) {
	s.httpHooks.update(func(hk *httpHooks) { hk.headers = append(hk.headers, h) })
}

// engineHooks sets the eio options that call the HTTP hooks.
func (s *Server) engineHooks(o *eio.Options) {
	o.AllowRequest = s.cfg.AllowRequest
	o.Cookie = s.cfg.Cookie.cookie()
	o.DisableHTTPCompression = s.cfg.DisableHTTPCompression
	o.CompressionThreshold = s.cfg.HTTPCompressionThreshold
	o.ConnectionError = func(r *http.Request, code int, message string, context map[string]any) {
		hk := s.httpHooks.cur.Load()
		if hk == nil || len(hk.connErr) == 0 {
			return
		}
		e := &ConnectionError{Request: r, Code: code, Message: message, Context: context}
		for _, h := range hk.connErr {
			s.runHTTPHook(func() { h(e) })
		}
	}
	o.Headers = func(h http.Header, r *http.Request, initial bool) {
		hk := s.httpHooks.cur.Load()
		if hk == nil {
			return
		}
		if initial {
			for _, f := range hk.initial {
				s.runHTTPHook(func() { f(h, r) })
			}
		}
		for _, f := range hk.headers {
			s.runHTTPHook(func() { f(h, r) })
		}
	}
}

// runHTTPHook runs a hook; a panic is logged and does not fail the request.
func (s *Server) runHTTPHook(f func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("sockstream: HTTP hook panicked", "panic", r)
		}
	}()
	f()
}
