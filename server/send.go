package server

// Send is Node's send (and write): Emit of a "message" event, the event a
// client's socket.send(...) and the server's send(...) use.

// Send emits a "message" event with args to every socket (Node's
// server.send / server.write).
func (s *Server) Send(args ...any) error { return s.Emit("message", args...) }

// Send emits a "message" event with args to the namespace's sockets
// (Node's namespace.send / namespace.write).
func (n *Namespace) Send(args ...any) error { return n.Emit("message", args...) }

// Send emits a "message" event with args to the selected sockets.
func (b *Broadcast) Send(args ...any) error { return b.Emit("message", args...) }

// Send emits a "message" event with args to the socket's client (Node's
// socket.send / socket.write).
func (s *Socket) Send(args ...any) error { return s.Emit("message", args...) }
