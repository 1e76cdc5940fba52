package siotest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// closeTimeout bounds the wait for zishang520's Server.Close, which waits
// for the adapters to close.
const closeTimeout = 10 * time.Second

// Server is one zishang520 Socket.IO server on a loopback httptest server.
type Server struct {
	// IO is the Socket.IO server.
	IO *socket.Server
	// URL is the base URL of the server, http://127.0.0.1:port, without a
	// namespace.
	URL string

	t       testing.TB
	name    string
	ts      *httptest.Server
	onClose func()
	once    sync.Once
}

// StartServer starts a Socket.IO server with opts (which hold its
// adapter) on a loopback listener. name tells it apart in failures.
// onClose, when not nil, runs after the server has closed: it closes what
// the adapter sits on (a transport). t.Cleanup closes the server.
func StartServer(t testing.TB, name string, opts *socket.ServerOptions, onClose func()) *Server {
	t.Helper()
	s := &Server{t: t, name: name, onClose: onClose}
	s.IO = socket.NewServer(nil, opts)
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s.IO.ServeHandler(nil))
	s.ts = httptest.NewServer(mux)
	s.URL = s.ts.URL
	t.Cleanup(s.Close)
	return s
}

// Close closes the Socket.IO server, then its listener and client
// connections, then runs onClose. It is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		// The server first (its adapters unsubscribe), then the
		// transport under them.
		done := make(chan struct{})
		go func() {
			s.IO.Close(nil)
			close(done)
		}()
		timer := time.NewTimer(closeTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			s.t.Errorf("%s: server Close did not return in %v", s.name, closeTimeout)
		}
		s.ts.CloseClientConnections()
		s.ts.Close()
		if s.onClose != nil {
			s.onClose()
		}
	})
}

// JoinQueryRooms returns a middleware that joins a socket to the rooms of
// its "rooms" query parameter (comma separated) and, when data is not
// nil, sets the socket's data to data(query), before the client sees
// "connect".
func JoinQueryRooms(data func(query map[string]any) any) socket.NamespaceMiddleware {
	return func(s *socket.Socket, next func(*socket.ExtendedError)) {
		q := s.Handshake().Query
		if rooms := QueryValue(q, "rooms"); rooms != "" {
			for _, r := range strings.Split(rooms, ",") {
				s.Join(socket.Room(r))
			}
		}
		if data != nil {
			s.SetData(data(q))
		}
		next(nil)
	}
}

// QueryValue returns the first value of query parameter k of a handshake,
// "" if absent: zishang520 gives a string or a list depending on the path
// the handshake took.
func QueryValue(q map[string]any, k string) string {
	switch v := q[k].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	case []any:
		if len(v) > 0 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}

// Fetch runs FetchSockets on op and returns its result.
func Fetch(op *socket.BroadcastOperator) ([]*socket.RemoteSocket, error) {
	var out []*socket.RemoteSocket
	var err error
	op.FetchSockets()(func(s []*socket.RemoteSocket, e error) { out, err = s, e })
	return out, err
}

// SocketIDs returns the sorted ids of sockets.
func SocketIDs(sockets []*socket.RemoteSocket) []string {
	ids := make([]string, 0, len(sockets))
	for _, s := range sockets {
		ids = append(ids, string(s.Id()))
	}
	return Sorted(ids...)
}
