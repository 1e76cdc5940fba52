package server

import (
	"time"
)

// The events feed of development mode: every socket of every namespace of
// this node, as instrument()'s registerVerboseListeners reports it —
// socket_connected, socket_updated (its transport upgraded),
// socket_disconnected, room_joined, room_left, event_received and
// event_sent (not for the admin namespace's own events). Each goes into
// the feed's bounded queue and from there to the admin namespace,
// cluster-wide.

// instrumentNamespaces adds the feed's listeners to the namespaces it has
// not seen yet. It runs at start and for each namespace created later
// (OnNewNamespace), before that namespace's first socket connects.
func (a *admin) instrumentNamespaces() {
	for _, n := range a.srv.Namespaces() {
		a.instrumentNamespace(n)
	}
}

// instrumentNamespace adds the feed's listeners to n, unless it has them.
func (a *admin) instrumentNamespace(n *Namespace) {
	a.mu.Lock()
	seen := a.seen[n]
	a.seen[n] = true
	a.mu.Unlock()
	if seen {
		return
	}
	n.OnConnection(a.onSocket)
	a.watchRooms(n)
	// Sockets connected before the listener was added (none for the
	// namespaces that exist when the server is built).
	for _, s := range n.Sockets() {
		a.onSocket(s)
	}
}

// forgetNamespace drops a namespace removed as empty
// (Config.CleanupEmptyChildNamespaces); a new one of the same name is
// instrumented when it is created.
func (a *admin) forgetNamespace(n *Namespace) {
	a.mu.Lock()
	delete(a.seen, n)
	a.mu.Unlock()
}

// onSocket reports a socket's connection and follows it until it
// disconnects.
func (a *admin) onSocket(s *Socket) {
	if !a.track(s) {
		return // already followed
	}
	nsp, id := s.Namespace(), s.ID()
	a.feed.push("socket_connected", serializeSocket(s), adminTime(time.Now()))
	s.OnDisconnect(func(reason string) {
		a.untrack(s)
		a.feed.push("socket_disconnected", nsp, id, reason, adminTime(time.Now()))
	})
	if s.nsp == a.nsp {
		return
	}
	s.OnAny(func(e *Event) {
		a.feed.push("event_received", nsp, id, eventArgs(e), adminTime(time.Now()))
	})
	s.OnAnyOutgoing(func(e *Event) {
		a.feed.push("event_sent", nsp, id, eventArgs(e), adminTime(time.Now()))
	})
}

// eventArgs is an event as the UI reads it: its name, then its arguments,
// deep-copied (copyArgs): the feed sends them later, from the admin
// goroutine, while the event's handlers may change them.
func eventArgs(e *Event) []any {
	return append([]any{e.Name}, copyArgs(e.Args)...)
}

// track starts following s; false when it already was.
func (a *admin) track(s *Socket) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.transports == nil {
		a.transports = map[*Socket]Transport{}
	}
	if _, ok := a.transports[s]; ok || !s.Connected() {
		return false
	}
	a.transports[s] = s.Transport()
	return true
}

func (a *admin) untrack(s *Socket) {
	a.mu.Lock()
	delete(a.transports, s)
	a.mu.Unlock()
}

// reportUpgrades sends socket_updated for the sockets whose transport
// changed (polling to WebSocket) since the previous tick.
func (a *admin) reportUpgrades() {
	type change struct {
		s *Socket
		t Transport
	}
	var changed []change
	a.mu.Lock()
	for s, was := range a.transports {
		if !s.Connected() {
			// Its OnDisconnect handler reports it (or it was added as it
			// disconnected, too late for one).
			delete(a.transports, s)
			continue
		}
		if t := s.Transport(); t != was {
			a.transports[s] = t
			changed = append(changed, change{s, t})
		}
	}
	a.mu.Unlock()
	for _, c := range changed {
		a.feed.push("socket_updated", map[string]any{"id": c.s.ID(), "nsp": c.s.Namespace(), "transport": string(c.t)})
	}
}
