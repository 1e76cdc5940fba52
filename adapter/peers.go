package adapter

import (
	"slices"
	"strings"
	"time"
)

// Peer is another node's adapter of the same namespace, known from its
// heartbeats.
type Peer struct {
	UID      string
	LastSeen time.Time
}

// Peers returns the live peers, sorted by uid. Only nodes that send
// heartbeats are tracked: a Node 0.3 node is counted by the transport but
// never appears here.
func (a *NamespaceAdapter) Peers() []Peer {
	a.mu.Lock()
	out := make([]Peer, 0, len(a.alive))
	for uid, seen := range a.alive {
		out = append(out, Peer{UID: uid, LastSeen: seen})
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Peer) int { return strings.Compare(x.UID, y.UID) })
	return out
}

// AlivePeers returns the number of live peers.
func (a *NamespaceAdapter) AlivePeers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.alive)
}

// touch records a message from uid. A uid becomes a tracked peer with its
// first heartbeat; afterwards every message it sends keeps it alive.
func (a *NamespaceAdapter) touch(uid string, t MessageType) {
	if uid == EmitterUID {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, known := a.alive[uid]
	if !known && t != InitialHeartbeat && t != Heartbeat {
		return
	}
	a.alive[uid] = time.Now()
	if !known {
		delete(a.dead, uid)
		a.m.peersAlive.WithLabelValues(a.name).Set(float64(len(a.alive)))
		a.log.Debug("peer joined", "peer", uid)
	}
}

// checkPeers drops the peers silent for longer than HeartbeatTimeout (the
// Builder's liveness checker calls it every HeartbeatTimeout/4, for every
// namespace: peerGone runs no callback of the caller's on it).
func (a *NamespaceAdapter) checkPeers(now time.Time) {
	var silent []string
	a.mu.Lock()
	for uid, seen := range a.alive {
		if now.Sub(seen) > a.opts.HeartbeatTimeout {
			silent = append(silent, uid)
		}
	}
	a.expireDeadLocked(now)
	a.mu.Unlock()
	for _, uid := range silent {
		a.peerGone(uid, "timeout")
	}
}

// peerGone drops a peer (reason "timeout" or "close") and lowers what the
// pending requests wait for. It runs on node-level goroutines (the
// liveness checker, the transport's reader), which serve every namespace:
// the requests it completes only wake their callers, and the callbacks of
// the broadcasts with acks (a client count of 0 for the peer) are queued
// on the namespace's task (callLater).
func (a *NamespaceAdapter) peerGone(uid, reason string) {
	var deliver []func()
	var synthetic []func(int)
	a.mu.Lock()
	if _, ok := a.alive[uid]; !ok {
		a.mu.Unlock()
		return
	}
	// Counted before the peer leaves the table: whoever sees it gone sees
	// the count.
	a.m.peersDead.WithLabelValues(reason).Inc()
	delete(a.alive, uid)
	a.dead[uid] = time.Now()
	a.m.peersAlive.WithLabelValues(a.name).Set(float64(len(a.alive)))
	for _, r := range a.requests {
		if r.lose(uid) > 0 {
			deliver = append(deliver, a.checkLocked(r))
		}
	}
	for _, r := range a.ackRequests {
		// The caller of BroadcastWithAck waits for one client count per
		// server ServerCount told it about: answer "0 clients" for each
		// one given up on.
		for range r.lose(uid) {
			synthetic = append(synthetic, r.clientCount)
		}
		deliver = append(deliver, a.checkLocked(r))
	}
	a.mu.Unlock()

	if reason == "close" {
		a.log.Debug("peer closed", "peer", uid)
	} else {
		a.log.Warn("peer declared dead: no heartbeat", "peer", uid, "timeout", a.opts.HeartbeatTimeout)
	}
	for _, d := range deliver {
		d() // closes the done channel of a request that has one, nothing more
	}
	if len(synthetic) > 0 {
		a.callLater("client count of a lost peer", func() {
			for _, cb := range synthetic {
				cb(0)
			}
		})
	}
}

// callLater runs f, callbacks of the caller's, on the namespace's
// outbound task, after the operations queued before it, as the local part
// of an operation runs (a panic in it is recovered and counted). Once
// Close has begun, the task is being stopped: f runs on a goroutine that
// Close waits for; after Close, when nothing can wait for it any more, it
// is dropped, counted (callbacks_dropped_total) and logged.
func (a *NamespaceAdapter) callLater(what string, f func()) {
	a.outMu.RLock()
	if !a.closing {
		a.out.push(&outItem{local: func(string) { f() }})
		a.outMu.RUnlock()
		return
	}
	a.outMu.RUnlock()
	if !a.spawn(func() {
		defer a.recoverPanic(what)
		f()
	}) {
		a.m.callbacksDropped.Inc()
		a.log.Warn("adapter closed: callback dropped", "callback", what)
	}
}
