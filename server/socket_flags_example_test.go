package server_test

import (
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/sockstream/sockstream/server"
)

// Node's socket.volatile.emit: a position the next one replaces is
// dropped, rather than queued, for a client whose connection is busy
// (counted in sockstream_volatile_dropped_total). The flags chain, and
// carry to the socket's broadcasts.
func ExampleSocket_Volatile() {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()

	srv.OnConnection(func(s *server.Socket) {
		s.On("move", func(e *server.Event) {
			var x, y float64
			if e.Bind(0, &x) != nil || e.Bind(1, &y) != nil {
				return
			}
			// Back to the sender, and to the other players of its room.
			_ = s.Volatile().Emit("position", x, y)
			_ = s.Volatile().To("game-1").Emit("player", s.ID(), x, y)
		})
		s.On("typing", func(*server.Event) {
			_ = s.Volatile().Compress(false).Broadcast().Emit("typing", s.ID())
		})
	})
}

// Node's socket.compress(false).emit: with per-message deflate on, a
// payload that is compressed already goes to the client as it is.
func ExampleSocket_Compress() {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler), PerMessageDeflate: true})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()

	var avatar []byte // a PNG: deflate would not shrink it
	srv.OnConnection(func(s *server.Socket) {
		_ = s.Emit("welcome", strings.Repeat("a large and compressible text ", 100))
		_ = s.Compress(false).Emit("avatar", avatar)
	})
}

// Node's cleanupEmptyChildNamespaces: a namespace per document, created
// when its first client connects and removed (its adapter closed, and in
// a cluster its Redis subscriptions) when its last one leaves.
func ExampleConfig_cleanupEmptyChildNamespaces() {
	srv, err := server.New(server.Config{
		Logger:                      slog.New(slog.DiscardHandler),
		CleanupEmptyChildNamespaces: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()

	docs := srv.OfDynamic(func(name string, _ map[string]any) bool { return strings.HasPrefix(name, "/doc/") })
	docs.OnConnection(func(s *server.Socket) {
		s.On("edit", func(e *server.Event) { _ = s.Broadcast().Emit("edit", e.Args...) })
	})
	srv.OnNewNamespace(func(n *server.Namespace) {
		// Runs again for a document whose namespace was removed and
		// that a client opens again.
		srv.Logger().Info("document opened", "nsp", n.Name())
	})
}
