package eio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/sockstream/sockstream/internal/inflight"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Engine.IO error codes, with Node's messages.
const (
	codeUnknownTransport   = 0
	codeUnknownSID         = 1
	codeBadHandshakeMethod = 2
	codeBadRequest         = 3
	codeForbidden          = 4
	codeUnsupportedVersion = 5
)

var errorMessages = [...]string{
	"Transport unknown",
	"Session ID unknown",
	"Bad handshake method",
	"Bad request",
	"Forbidden",
	"Unsupported protocol version",
}

// Server is an Engine.IO v4 server. Mount it at the engine's path.
type Server struct {
	opts   Options
	accept func(*Session) Handler
	log    *slog.Logger
	track  inflight.Group

	count atomic.Int64 // open sessions

	mu       sync.Mutex
	sessions map[string]*Session // open and lingering sessions
	closed   bool
}

// NewServer returns a server calling accept on every handshake, before the
// open packet is sent; the Handler it returns receives everything of that
// session. accept must not block; returning nil refuses the session (403
// {"code":4,"message":"Forbidden"}). The error is only for invalid opts.
func NewServer(opts Options, accept func(s *Session) Handler) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if accept == nil {
		return nil, fmt.Errorf("eio: nil accept function")
	}
	return &Server{opts: o, accept: accept, log: o.Logger, sessions: make(map[string]*Session)}, nil
}

// Count returns the number of open sessions.
func (srv *Server) Count() int { return int(srv.count.Load()) }

// PollingCount returns the number of open sessions on the polling
// transport (not upgraded). It visits every session: for dashboards.
func (srv *Server) PollingCount() int {
	srv.mu.Lock()
	all := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		all = append(all, s)
	}
	srv.mu.Unlock()
	// Each session's lock is taken with the server's released: register
	// takes them in the other order.
	n := 0
	for _, s := range all {
		s.mu.Lock()
		if s.counted && !s.ended && s.transport == Polling {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// Close closes every session (reason "forced close": what is queued is
// written, then a close frame or close packet), refuses new requests (503),
// and waits, until ctx ends, for every goroutine of the engine (WebSocket
// readers, flushers, OnClose deliveries, timer callbacks) to finish.
func (srv *Server) Close(ctx context.Context) error {
	srv.mu.Lock()
	srv.closed = true
	all := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		all = append(all, s)
	}
	srv.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		s.endLocked(ReasonForcedClose, endDiscard)
		s.finishLingerLocked()
		s.mu.Unlock()
	}
	return srv.track.Wait(ctx)
}

// sessionEnded counts a session out.
func (srv *Server) sessionEnded() {
	srv.count.Add(-1)
	if g := srv.opts.Metrics.Sessions; g != nil {
		g.Dec()
	}
}

// forget removes s from the sessions known by sid.
func (srv *Server) forget(s *Session) {
	srv.mu.Lock()
	if srv.sessions[s.id] == s {
		delete(srv.sessions, s.id)
	}
	srv.mu.Unlock()
}

func (srv *Server) lookup(sid string) *Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[sid]
}

// newID returns a random session id: 20 base64url characters (15 random
// bytes), the shape of Node's base64id.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.URLEncoding.EncodeToString(b[:])
}

// ServeHTTP serves the Engine.IO protocol: handshakes, polling GET and
// POST, WebSocket upgrades. Mount it at the engine path; the query string
// carries everything.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv.mu.Lock()
	closed := srv.closed
	srv.mu.Unlock()
	if closed {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	upgrade := isWebSocketUpgrade(r)
	if !upgrade && srv.cors(w, r) && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		srv.preflight(w, r)
		return
	}
	q := r.URL.Query()
	transport := q.Get("transport")
	if !srv.opts.allows(transport) {
		srv.refuse(w, r, upgrade, codeUnknownTransport, "", map[string]any{"transport": transport})
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && invalidHeaderValue(origin) {
		srv.refuse(w, r, upgrade, codeBadRequest, "", map[string]any{"name": "INVALID_ORIGIN"})
		return
	}
	if sid := q.Get("sid"); sid != "" {
		s := srv.lookup(sid)
		if s == nil {
			srv.refuse(w, r, upgrade, codeUnknownSID, "", map[string]any{"sid": sid})
			return
		}
		switch {
		case upgrade && transport == WebSocket:
			srv.upgradeSession(w, r, s)
		case upgrade || transport != Polling || q.Has("j"):
			srv.refuse(w, r, upgrade, codeBadRequest, "", map[string]any{"name": "TRANSPORT_MISMATCH", "transport": transport})
		case r.Method == http.MethodGet:
			srv.addHeaders(w, r, false)
			s.servePoll(w, r)
		case r.Method == http.MethodPost:
			srv.addHeaders(w, r, false)
			s.servePost(w, r)
		default:
			srv.refuse(w, r, false, codeBadRequest, "", map[string]any{"name": "BAD_METHOD", "method": r.Method})
		}
		return
	}
	// A handshake.
	if r.Method != http.MethodGet {
		srv.refuse(w, r, upgrade, codeBadHandshakeMethod, "", map[string]any{"method": r.Method})
		return
	}
	if (transport == WebSocket) != upgrade {
		srv.refuse(w, r, upgrade, codeBadRequest, "", map[string]any{"name": "TRANSPORT_HANDSHAKE_ERROR"})
		return
	}
	if srv.opts.AllowRequest != nil {
		if err := srv.opts.AllowRequest(r); err != nil {
			srv.refuse(w, r, upgrade, codeForbidden, err.Error(), map[string]any{"message": err.Error()})
			return
		}
	}
	if q.Get("EIO") != "4" {
		srv.refuse(w, r, upgrade, codeUnsupportedVersion, "", map[string]any{"protocol": q.Get("EIO")})
		return
	}
	if q.Has("j") {
		// JSONP polling is not offered (Node 6 has it).
		srv.refuse(w, r, upgrade, codeBadRequest, "", map[string]any{"name": "JSONP_UNSUPPORTED"})
		return
	}
	if upgrade {
		srv.handshakeWebSocket(w, r, q)
		return
	}
	srv.handshakePolling(w, r)
}

// refuse answers a refused request (abort), after telling
// Options.ConnectionError, as Node emits "connection_error" with the
// code's standard message and the details in context.
func (srv *Server) refuse(w http.ResponseWriter, r *http.Request, upgrade bool, code int, message string, context map[string]any) {
	if f := srv.opts.ConnectionError; f != nil {
		f(r, code, errorMessages[code], context)
	}
	srv.abort(w, upgrade, code, message)
}

// addHeaders runs Options.Headers on the headers of a polling answer.
func (srv *Server) addHeaders(w http.ResponseWriter, r *http.Request, initial bool) {
	if f := srv.opts.Headers; f != nil {
		f(w.Header(), r, initial)
	}
}

// upgradeHeaders runs Options.Headers for the WebSocket request r (a
// handshake when it has no sid) and returns the header lines to add to its
// 101 response, each "Name: value\r\n". Headers the WebSocket handshake
// owns, and values that would break the response (CR, LF), are left out.
func (srv *Server) upgradeHeaders(r *http.Request) []byte {
	f := srv.opts.Headers
	if f == nil {
		return nil
	}
	h := http.Header{}
	f(h, r, r.URL.Query().Get("sid") == "")
	var out []byte
	for name, values := range h {
		switch http.CanonicalHeaderKey(name) {
		case "Connection", "Upgrade", "Content-Length", "Transfer-Encoding",
			"Sec-Websocket-Accept", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Sec-Websocket-Version":
			continue
		}
		if strings.ContainsAny(name, "\r\n: ") || name == "" {
			continue
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			out = append(out, name...)
			out = append(out, ": "...)
			out = append(out, v...)
			out = append(out, "\r\n"...)
		}
	}
	return out
}

// abort answers a refused request as Node does: 400 (403 for code 4) with
// {"code":…,"message":…} as JSON; a WebSocket upgrade request gets Node's
// abortUpgrade answer, 400 with the message as text/html.
func (srv *Server) abort(w http.ResponseWriter, upgrade bool, code int, message string) {
	if message == "" {
		message = errorMessages[code]
	}
	h := w.Header()
	if upgrade {
		h.Set("Connection", "close")
		h.Set("Content-Type", "text/html")
		h.Set("Content-Length", strconv.Itoa(len(message)))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(message))
		return
	}
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := http.StatusBadRequest
	if code == codeForbidden {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// badRequest answers 400 with no body, as Node does for overlapping
// requests.
func badRequest(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusBadRequest)
}

// cors adds the CORS headers for an allowed cross-origin page and reports
// whether it was allowed.
func (srv *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if srv.opts.AllowOrigin == nil || origin == "" || invalidHeaderValue(origin) || !srv.opts.AllowOrigin(origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", srv.opts.allowOriginHeader(origin))
	if !srv.opts.AllowAnyOrigin {
		h.Add("Vary", "Origin") // the answer depends on the Origin
	}
	if srv.opts.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return true
}

// preflight answers an allowed CORS preflight request.
func (srv *Server) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET,POST")
	if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		h.Set("Access-Control-Allow-Headers", rh)
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// invalidHeaderValue reports characters Node refuses in a header value.
func invalidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// newSession builds a session for the handshake request r and runs accept.
// It returns nil if accept refused it (the answer is then the caller's).
func (srv *Server) newSession(r *http.Request, transport string) (s *Session, h Handler) {
	return srv.newSessionQuery(r, nil, transport)
}

// newSessionQuery is newSession; q, r's query already parsed, is not kept:
// the session keeps a compact record of r (handshakeRecord), not r.Header
// and the parsed query, which an idle session never reads.
func (srv *Server) newSessionQuery(r *http.Request, _ url.Values, transport string) (s *Session, h Handler) {
	s = &Session{
		srv:       srv,
		id:        newID(),
		transport: transport,
		hs:        recordHandshake(r, transport, time.Now()),
	}
	s.queue = []*Message{s.openPacket(transport)}
	s.queued = s.queue[0].size()
	defer func() {
		if p := recover(); p != nil {
			srv.log.Error("eio: accept panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			h = nil
		}
	}()
	h = srv.accept(s)
	return s, h
}

// register makes s known and open, with its heartbeat armed, unless the
// server closed (then s ends at once, "forced close"). extra goroutines are
// reserved on the in-flight group (track) for the caller to start. It
// reports whether s is open.
func (srv *Server) register(s *Session, h Handler, extra int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h = h
	if s.ended {
		// Closed by accept itself (Session.Close): its OnClose is owed.
		srv.track.Go(s.notifyClose)
		return false
	}
	s.counted = true
	srv.count.Add(1)
	if g := srv.opts.Metrics.Sessions; g != nil {
		g.Inc()
	}
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		s.endLocked(ReasonForcedClose, endAbort)
		return false
	}
	srv.sessions[s.id] = s
	for range extra {
		srv.track.Add()
	}
	srv.mu.Unlock()
	srv.opts.Metrics.addOut(1, s.queued)
	s.startTimerLocked()
	return true
}

// openPacket is the session's open packet.
func (s *Session) openPacket(transport string) *Message {
	upgrades := "[]"
	if transport == Polling && !s.srv.opts.DisableUpgrades && s.srv.opts.allows(WebSocket) {
		upgrades = `["websocket"]`
	}
	o := s.srv.opts
	return controlPacket(pOpen, fmt.Sprintf(`{"sid":"%s","upgrades":%s,"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		s.id, upgrades, o.PingInterval.Milliseconds(), o.PingTimeout.Milliseconds(), o.MaxPayload))
}

// isWebSocketUpgrade reports whether r asks for a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
