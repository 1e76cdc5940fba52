package server

import (
	"slices"
	"strings"
)

// Socket returns the socket id connected to this node in the namespace (in
// one of the namespaces of a dynamic one), as Node's namespace.sockets.get
// does. Sockets of other nodes are reached with FetchSockets or
// In(id).
func (n *Namespace) Socket(id string) (*Socket, bool) {
	for _, t := range n.targets() {
		if s := t.socket(id); s != nil {
			return s, true
		}
	}
	return nil, false
}

// Sockets returns the sockets connected to this node in the namespace (in
// all the namespaces of a dynamic one), in no particular order: Node's
// namespace.sockets. A socket that disconnects is no longer listed
// (Connected turns false first).
func (n *Namespace) Sockets() []*Socket {
	var out []*Socket
	for _, t := range n.targets() {
		out = append(out, t.connectedSockets()...)
	}
	return out
}

// Namespaces returns the namespaces that exist on this node, sorted by
// name: the main one, those made with Of, and the children of dynamic
// namespaces created so far (not the Namespaces OfDynamic returned, which
// stand for their children). The list grows as clients connect to new
// dynamic namespaces and, with Config.CleanupEmptyChildNamespaces, shrinks
// as they empty.
func (s *Server) Namespaces() []*Namespace {
	out := s.namespaces()
	slices.SortFunc(out, func(a, b *Namespace) int { return strings.Compare(a.name, b.name) })
	return out
}

// Socket returns the socket id connected to this node in the main
// namespace "/".
func (s *Server) Socket(id string) (*Socket, bool) { return s.Of("/").Socket(id) }

// Sockets returns the sockets connected to this node in the main namespace
// "/".
func (s *Server) Sockets() []*Socket { return s.Of("/").Sockets() }

// ClientsCount is the number of Engine.IO connections open on this node,
// whatever namespaces their clients joined (Node's io.engine.clientsCount;
// also the sockstream_engine_connections gauge).
func (s *Server) ClientsCount() int { return s.engine.Count() }

// PollingClientsCount is how many of ClientsCount use the long-polling
// transport (have not upgraded to WebSocket). It looks at every
// connection: meant for dashboards, not for every request.
func (s *Server) PollingClientsCount() int { return s.engine.PollingCount() }
