package engineio

import (
	"bufio"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// ReleaseAfterHijack wraps the engine's handler so that a WebSocket
// connection does not keep net/http's buffers for its whole life.
//
// Upstream keeps each session's *types.HttpContext, and with it the
// http.ResponseWriter of the request that opened it (the handshake reaches
// Socket.IO from there). Once a connection is hijacked for WebSocket,
// net/http neither uses nor frees that response's connection state, whose
// bufio.Reader and bufio.Writer (4 KiB each) then stay reachable as long as
// the session lives; gorilla allocates its own. The writer given to the
// handler here forgets net/http's once Hijack succeeds; writes after that
// fail with http.ErrHijacked, as they would have.
func ReleaseAfterHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok || !websocket.IsWebSocketUpgrade(r) {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&releasingWriter{w: w}, r)
	})
}

// releasingWriter is an http.ResponseWriter and http.Hijacker that drops
// the one it wraps after a successful Hijack.
type releasingWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter // nil once hijacked
	header http.Header         // handed out after the hijack
}

func (rw *releasingWriter) Header() http.Header {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w != nil {
		return rw.w.Header()
	}
	if rw.header == nil {
		rw.header = http.Header{}
	}
	return rw.header
}

func (rw *releasingWriter) Write(b []byte) (int, error) {
	rw.mu.Lock()
	w := rw.w
	rw.mu.Unlock()
	if w == nil {
		return 0, http.ErrHijacked
	}
	return w.Write(b)
}

func (rw *releasingWriter) WriteHeader(code int) {
	rw.mu.Lock()
	w := rw.w
	rw.mu.Unlock()
	if w != nil {
		w.WriteHeader(code)
	}
}

func (rw *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w == nil {
		return nil, nil, http.ErrHijacked
	}
	c, brw, err := rw.w.(http.Hijacker).Hijack()
	if err == nil {
		rw.w = nil
	}
	return c, brw, err
}
