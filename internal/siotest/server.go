package siotest

import (
	"context"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// closeTimeout bounds the server's Shutdown, which waits for the handlers,
// the adapters and what they sit on (a transport) to close.
const closeTimeout = 10 * time.Second

// fetchTimeout bounds [Fetch]: the adapter ends a fetch at its own
// RequestTimeout; this only keeps a broken one from hanging a test.
const fetchTimeout = 30 * time.Second

// Server is one sockstream Socket.IO server on a loopback httptest server.
type Server struct {
	// Srv is the Socket.IO server.
	Srv *server.Server
	// URL is the base URL of the server, http://127.0.0.1:port, without a
	// namespace.
	URL string

	t        testing.TB
	name     string
	ts       *httptest.Server
	once     sync.Once
	closeErr error
}

// StartServer builds a server from cfg and opts (server.WithAdapter for a
// cluster adapter) and serves its Handler on a loopback listener. name
// tells it apart in failures and logs; cfg.Logger defaults to [Logger]
// with the node's name. t.Cleanup closes the server.
func StartServer(t testing.TB, name string, cfg server.Config, opts ...server.Option) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = Logger(t).With("node", name)
	}
	srv, err := server.New(cfg, opts...)
	if err != nil {
		t.Fatalf("%s: server.New: %v", name, err)
	}
	s := &Server{Srv: srv, t: t, name: name}
	s.ts = httptest.NewServer(srv.Handler())
	s.URL = s.ts.URL
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Close shuts the server down (its clients are disconnected, its adapters
// closed, then what WithAdapter gave to close: the transport), then closes
// the listener and what connections remain. It returns Shutdown's error; it
// is idempotent, returning the first result. A Shutdown that does not
// return within closeTimeout fails the test.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Srv.Shutdown(ctx) }()
		// A little beyond ctx: Shutdown returns when ctx ends.
		timer := time.NewTimer(closeTimeout + 5*time.Second)
		defer timer.Stop()
		select {
		case s.closeErr = <-done:
		case <-timer.C:
			s.t.Errorf("%s: server Shutdown did not return in %v", s.name, closeTimeout)
		}
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s.closeErr
}

// JoinQueryRooms returns a middleware that joins a socket to the rooms of
// its "rooms" query parameter (comma separated) and, when data is not
// nil, sets the socket's data to data(query), before the client sees
// "connect".
func JoinQueryRooms(data func(query url.Values) any) server.Middleware {
	return func(s *server.Socket) error {
		q := s.Handshake().Query
		if rooms := q.Get("rooms"); rooms != "" {
			s.Join(strings.Split(rooms, ",")...)
		}
		if data != nil {
			s.SetData(data(q))
		}
		return nil
	}
}

// Fetch runs FetchSockets on b and returns its result.
func Fetch(b *server.Broadcast) ([]*server.RemoteSocket, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	return b.FetchSockets(ctx)
}

// SocketIDs returns the sorted ids of sockets.
func SocketIDs(sockets []*server.RemoteSocket) []string {
	ids := make([]string, 0, len(sockets))
	for _, s := range sockets {
		ids = append(ids, s.ID())
	}
	slices.Sort(ids)
	return ids
}
