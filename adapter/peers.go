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

// heartbeat queues a HEARTBEAT (the Builder's ticker calls it every
// HeartbeatInterval for every subscribed adapter); after Close it is
// refused.
func (a *NamespaceAdapter) heartbeat() {
	a.push(&outItem{msg: a.message(Heartbeat, nil)})
}

// checkPeers drops the peers silent for longer than HeartbeatTimeout (the
// Builder's ticker calls it every HeartbeatTimeout/4).
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
// pending requests wait for.
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
	for _, cb := range synthetic {
		cb(0)
	}
	for _, d := range deliver {
		d()
	}
}
