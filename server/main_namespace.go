package server

import (
	"context"
	"slices"
)

// The methods of Node's io that act on the main namespace "/" and that
// Server did not have: each is Of("/")'s.

// EmitWithAck sends an event to every client of the main namespace,
// cluster-wide, and returns their acknowledgements (see
// Broadcast.EmitWithAck; ctx's deadline is Node's timeout(ms)).
func (s *Server) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	return s.Of("/").EmitWithAck(ctx, event, args...)
}

// Local broadcasts to the sockets of the main namespace on this node only.
func (s *Server) Local() *Broadcast { return s.Of("/").Local() }

// Volatile broadcasts to the main namespace without buffering (see
// Broadcast.Volatile).
func (s *Server) Volatile() *Broadcast { return s.Of("/").Volatile() }

// FetchSockets returns every socket of the main namespace, cluster-wide.
func (s *Server) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	return s.Of("/").FetchSockets(ctx)
}

// SocketsJoin makes every socket of the main namespace join rooms,
// cluster-wide.
func (s *Server) SocketsJoin(rooms ...string) { s.Of("/").SocketsJoin(rooms...) }

// SocketsLeave makes every socket of the main namespace leave rooms,
// cluster-wide.
func (s *Server) SocketsLeave(rooms ...string) { s.Of("/").SocketsLeave(rooms...) }

// ServerSideEmit sends an event to the other servers of the cluster (see
// Namespace.ServerSideEmit).
func (s *Server) ServerSideEmit(event string, args ...any) error {
	return s.Of("/").ServerSideEmit(event, args...)
}

// ServerSideEmitWithAck sends an event to the other servers and returns
// one response per server (see Namespace.ServerSideEmitWithAck).
func (s *Server) ServerSideEmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	return s.Of("/").ServerSideEmitWithAck(ctx, event, args...)
}

// OnServerSideEmit registers a handler for an event another server sent
// with ServerSideEmit (see Namespace.OnServerSideEmit).
func (s *Server) OnServerSideEmit(event string, h func(*Event)) { s.Of("/").OnServerSideEmit(event, h) }

// EmitWithAck sends an event to every client of the namespace,
// cluster-wide, and returns their acknowledgements (see
// Broadcast.EmitWithAck).
func (n *Namespace) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	return n.all().EmitWithAck(ctx, event, args...)
}

// Rooms returns the names of the rooms with sockets on this node (in every
// namespace of a dynamic one), sorted, the rooms of the sockets' own ids
// included (Node's namespace.adapter.rooms).
func (n *Namespace) Rooms() []string {
	var out []string
	ts := n.targets()
	for _, t := range ts {
		out = append(out, t.adapter.Rooms()...)
	}
	if len(ts) > 1 {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}
