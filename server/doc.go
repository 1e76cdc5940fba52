// Package server is the face of sockstream: a Socket.IO v4 server for Go that
// speaks to the official JavaScript client over WebSocket and HTTP
// long-polling, with namespaces, rooms, acknowledgements, binary and
// middlewares, and that clusters over Redis Streams.
//
// Build a server from a Config (every zero field takes its documented
// default), register handlers, and serve its Handler on net/http or call Run:
//
//	srv, err := server.New(server.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv.OnConnection(func(s *server.Socket) {
//		s.On("chat", func(e *server.Event) {
//			srv.To("lobby").Emit("chat", e.Args...)
//			e.Ack("ok")
//		})
//	})
//	log.Fatal(srv.Run(ctx))
//
// With Config.Redis.URL set, the server clusters over Redis Streams, wire
// compatible with Node's @socket.io/redis-streams-adapter: broadcasts, room
// operations, FetchSockets and server-side emits reach every server on the
// same Redis. Every option also comes from flags and SOCKSTREAM_
// environment variables (Config.Parse; see docs/configuration.md).
//
// Besides Socket.IO at Config.Path, the handler serves /healthz (the process
// is up), /readyz (the server accepts traffic and its adapter's backend is
// reachable) and /metrics (Prometheus).
//
// The Socket.IO and Engine.IO server layers are sockstream's own
// (internal/eio, internal/siocodec and this package; docs/core.md says which
// goroutine owns what): a client's packets are handled in the order they
// arrive by the goroutine reading its connection, a namespace's CONNECT is
// answered with its socket already registered, and every connection's output
// is bounded (Config.MaxBufferedBytes). A single node runs the same adapter
// core as a cluster, over an in-memory transport.
package server
