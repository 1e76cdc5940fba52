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
// The server is built on zishang520's Socket.IO for Go (servers/socket/v3).
// Its types stay behind this package; Raw methods reach them when needed.
package server
