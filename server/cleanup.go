package server

import (
	"errors"
	"slices"

	"github.com/sockstream/sockstream/adapter"
)

// Config.CleanupEmptyChildNamespaces: a child of a dynamic namespace is
// removed once it is empty, as Node's ParentNamespace.createChild arranges
// it. Node checks at the moment a socket leaves, in one thread; here a
// client may be between lookup and the registration of its socket (the
// middlewares run meanwhile) while the last socket leaves, so a child
// counts the connections under way (joining) and is removed only when it
// has neither sockets nor such connections. The decision and the removal
// from the tables happen under the server's nspMu, which lookup holds
// while it picks a namespace: a client never joins a removed one.

// cleanupEnabled reports whether n is removed when empty.
func (n *Namespace) cleanupEnabled() bool {
	return n.parent != nil && n.srv.cfg.CleanupEmptyChildNamespaces
}

// reserve counts a connection to n under way. Called holding srv.nspMu.
func (n *Namespace) reserve() {
	if !n.cleanupEnabled() {
		return
	}
	n.mu.Lock()
	n.joining++
	n.mu.Unlock()
}

// release ends what lookup reserved; the namespace is removed if that
// leaves it empty. The caller may be a client's reading goroutine, which
// must not wait for Redis: the removal is queued on Server.removals.
func (n *Namespace) release() {
	if !n.cleanupEnabled() {
		return
	}
	n.mu.Lock()
	n.joining--
	empty := n.idleLocked() && !n.removed && !n.queued
	if empty {
		n.queued = true
	}
	n.mu.Unlock()
	if empty {
		// One handler queue for the whole server: connections refused in
		// a burst cost one goroutine, which exists while removals wait,
		// not one each. Removals run in turn: one whose adapter Close
		// waits (for Redis, at most the cluster's RequestTimeout) or whose
		// OnNamespaceRemoved handler is slow delays the next ones, which
		// costs memory for a while, never a client. At most one entry per
		// namespace (queued).
		n.srv.removals.push(func() {
			n.mu.Lock()
			n.queued = false
			n.mu.Unlock()
			n.removeIfEmpty()
		})
	}
}

// idleLocked reports whether n has no socket, no connection under way and
// no socket whose disconnect handlers are still to run (they may broadcast
// through n's adapter). Called holding n.mu.
func (n *Namespace) idleLocked() bool {
	return n.joining == 0 && n.leaving == 0 && len(n.sockets) == 0
}

// leave counts a socket gone from n whose disconnect handlers are still to
// run; left ends it, after them. Called holding n.mu.
func (n *Namespace) leaveLocked() {
	if n.cleanupEnabled() {
		n.leaving++
	}
}

// left ends what leaveLocked counted and removes n if that leaves it
// empty. Called on the socket's handler goroutine, after its disconnect
// handlers.
func (n *Namespace) left() {
	if !n.cleanupEnabled() {
		return
	}
	n.mu.Lock()
	n.leaving--
	n.mu.Unlock()
	n.removeIfEmpty()
}

// removeIfEmpty removes n if it has no socket and no connection under
// way: from the server's namespaces and its parent's children, its adapter
// closed (which publishes what it has queued first, and may wait up to
// the cluster's RequestTimeout). It must not run on a goroutine of the
// adapter (Close waits for them): it runs on the handler goroutine of the
// socket that left, or on a goroutine of its own. While the server shuts
// down it leaves n alone: Shutdown closes every adapter.
func (n *Namespace) removeIfEmpty() {
	s := n.srv
	if s.shuttingDown.Load() {
		return
	}
	s.nspMu.Lock()
	n.mu.Lock()
	drop := !n.removed && n.idleLocked()
	if drop {
		n.removed = true
	}
	n.mu.Unlock()
	if drop && s.nsps[n.name] == n {
		delete(s.nsps, n.name)
		// Its series go with it, so that short-lived dynamic namespaces
		// do not grow /metrics without bound. Under nspMu: a namespace of
		// the same name created again starts its series afterwards.
		s.metrics.forget(n.name)
	}
	removed := s.onNspRemoved
	s.nspMu.Unlock()
	if !drop {
		return
	}
	p := n.parent
	p.mu.Lock()
	// targets and addRoomHandler clone children under p.mu: editing it
	// in place is safe.
	p.children = slices.DeleteFunc(p.children, func(c *Namespace) bool { return c == n })
	p.mu.Unlock()
	if err := n.adapter.Close(); err != nil {
		s.log.Warn("sockstream: closing the adapter of an empty namespace failed", "nsp", n.name, "err", err)
	}
	for _, h := range removed {
		h(n)
	}
	s.log.Debug("sockstream: empty child namespace removed", "nsp", n.name, "parent", p.name)
}

// gone filters an error of the adapter of t, one of n's targets, for an
// operation addressed to n: when n is a dynamic parent, which passes it to
// each of its children, adapter.ErrClosed from a child removed meanwhile
// (it had no socket left) is no failure of the operation, which a moment
// later would not have gone to it at all. Addressed to the removed child
// itself, it stays an error.
func (n *Namespace) gone(t *Namespace, err error) error {
	if err == nil || t == n || !errors.Is(err, adapter.ErrClosed) {
		return err
	}
	t.mu.Lock()
	removed := t.removed
	t.mu.Unlock()
	if removed {
		return nil
	}
	return err
}
