package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A request waits for answers from other nodes: fetchSockets,
// serverSideEmit with acks, and the client counts and acks of a broadcast
// with acks.
//
// How many answers it waits for (expected) starts, as in Node, at the
// transport's server count less one, less the peers declared dead that the
// transport may still count (see snapshot). While it waits, losing a peer
// that was alive at the start and had not answered lowers expected to what
// can still arrive: the answers so far, the live peers still pending, and
// the estimated nodes that send no heartbeats (Node 0.3 nodes).
type request struct {
	kind     string
	id       string
	start    time.Time
	expected int
	// uEst estimates the responders that are not tracked peers: the count
	// minus the dead and the alive peers known at the start.
	uEst           int
	pending        map[string]struct{} // alive at start, not answered, not lost
	responded      map[string]struct{}
	respondedOther int                 // answers from uids not alive at start
	lost           map[string]struct{} // lost while pending
	timer          *time.Timer
	finished       bool

	// fetch_sockets and server_side_emit: closed once finished, with err
	done chan struct{}
	err  error

	// fetch_sockets
	local    []SocketInfo
	localSet bool
	remote   []SocketInfo

	// server_side_emit
	responses []any

	// broadcast_ack
	clientCount func(int)
	ack         func([]any)
	clients     int
	acks        int
}

// snapshot is the liveness view a request starts from.
type snapshot struct {
	k        int // peers the transport counts (its server count less one)
	expected int
	alive    []string
	dead     int
	// unavailable is the transport's error wrapping ErrUnavailable when
	// it could not count the servers because the backend is unreachable:
	// a request could not be sent either, so it fails at once.
	unavailable error
}

// deadRetention is how long a peer declared dead is remembered (and
// subtracted from the transport's count, which may still include a hung
// node) unless the transport's count shows it is gone.
func (a *NamespaceAdapter) deadRetention() time.Duration { return 6 * a.opts.HeartbeatTimeout }

// outcomePublishError: the transport did not send the request (Redis
// unreachable, adapter closing...); the caller got its error at once.
const outcomePublishError = "publish_error"

// snapshot asks the transport for its server count, within ctx and
// RequestTimeout, and takes the liveness view a request starts from.
func (a *NamespaceAdapter) snapshot(ctx context.Context) snapshot {
	ctx, cancel := context.WithTimeout(ctx, a.opts.RequestTimeout)
	stop := context.AfterFunc(a.ctx, cancel)
	n, err := a.transport.ServerCount(ctx, a.name)
	stop()
	cancel()
	now := time.Now()

	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireDeadLocked(now)
	s := snapshot{alive: make([]string, 0, len(a.alive))}
	for uid := range a.alive {
		s.alive = append(s.alive, uid)
	}
	if err != nil {
		if a.ctx.Err() == nil {
			a.warnLimited("server count failed, counting live peers instead", "err", err)
		}
		s.k = len(s.alive)
		if errors.Is(err, ErrUnavailable) {
			s.unavailable = err
		}
	} else {
		s.k = max(n-1, 0)
	}
	if s.k <= len(s.alive) {
		// The transport counts no more peers than are alive: the dead ones
		// are no longer in its count.
		clear(a.dead)
	}
	s.dead = len(a.dead)
	s.expected = max(s.k-s.dead, 0)
	return s
}

func (a *NamespaceAdapter) expireDeadLocked(now time.Time) {
	for uid, at := range a.dead {
		if now.Sub(at) > a.deadRetention() {
			delete(a.dead, uid)
		}
	}
}

func (a *NamespaceAdapter) newRequest(kind string, s snapshot) *request {
	r := &request{
		kind:      kind,
		id:        randomID(),
		start:     time.Now(),
		expected:  s.expected,
		uEst:      max(0, s.k-s.dead-len(s.alive)),
		pending:   make(map[string]struct{}, len(s.alive)),
		responded: map[string]struct{}{},
	}
	for _, uid := range s.alive {
		r.pending[uid] = struct{}{}
	}
	return r
}

func (a *NamespaceAdapter) register(r *request, timeout time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.kind == kindBroadcastAck {
		a.ackRequests[r.id] = r
	} else {
		a.requests[r.id] = r
	}
	r.timer = time.AfterFunc(timeout, func() { a.timeoutRequest(r) })
}

// answer records an answer from uid; false for a duplicate (or, for a
// broadcast ack, an answer from a peer already given up on).
func (r *request) answer(uid string) bool {
	if _, dup := r.responded[uid]; dup {
		return false
	}
	if _, lost := r.lost[uid]; lost && r.kind == kindBroadcastAck {
		return false
	}
	r.responded[uid] = struct{}{}
	if _, ok := r.pending[uid]; ok {
		delete(r.pending, uid)
	} else {
		r.respondedOther++
	}
	return true
}

// lose gives up on peer uid and returns by how much expected was lowered.
func (r *request) lose(uid string) int {
	if r.finished {
		return 0
	}
	if _, ok := r.pending[uid]; !ok {
		return 0
	}
	delete(r.pending, uid)
	if r.lost == nil {
		r.lost = map[string]struct{}{}
	}
	r.lost[uid] = struct{}{}
	bound := len(r.responded) + len(r.pending) + max(0, r.uEst-r.respondedOther)
	if bound < r.expected {
		d := r.expected - bound
		r.expected = bound
		return d
	}
	return 0
}

func (r *request) complete() bool {
	if len(r.responded) < r.expected {
		return false
	}
	switch r.kind {
	case kindFetchSockets:
		return r.localSet
	case kindBroadcastAck:
		return r.acks >= r.clients
	}
	return true
}

func (r *request) result() ([]SocketInfo, error) {
	out := make([]SocketInfo, 0, len(r.local)+len(r.remote))
	out = append(out, r.local...)
	return append(out, r.remote...), r.err
}

// checkLocked finishes r if it is complete; the returned function delivers
// the result and must be called without a.mu.
func (a *NamespaceAdapter) checkLocked(r *request) func() {
	if r.finished || !r.complete() {
		return func() {}
	}
	return a.finishLocked(r, outcomeOK, nil)
}

func (a *NamespaceAdapter) finishLocked(r *request, outcome string, err error) func() {
	if r.finished {
		return func() {}
	}
	r.finished = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.kind == kindBroadcastAck {
		delete(a.ackRequests, r.id)
	} else {
		delete(a.requests, r.id)
	}
	a.m.requests.WithLabelValues(r.kind, outcome).Inc()
	a.m.requestDuration.WithLabelValues(r.kind).Observe(time.Since(r.start).Seconds())
	if r.done != nil {
		// fetch_sockets, server_side_emit: the caller waits in wait.
		r.err = err
		return func() { close(r.done) }
	}
	// broadcast_ack: the caller runs its own timeout.
	return func() {}
}

// wait waits for r to finish, or for ctx to end, which finishes it with a
// *TimeoutError wrapping ctx's error. r's result may be read afterwards.
func (a *NamespaceAdapter) wait(ctx context.Context, r *request) {
	select {
	case <-r.done:
		return
	case <-ctx.Done():
	}
	a.mu.Lock()
	var deliver func()
	if !r.finished {
		err := fmt.Errorf("%w: %w", &TimeoutError{Kind: r.kind, Received: len(r.responded), Expected: r.expected}, ctx.Err())
		deliver = a.finishLocked(r, outcomeTimeout, err)
	}
	a.mu.Unlock()
	if deliver != nil {
		deliver()
	}
	<-r.done
}

// abort finishes r at once.
func (a *NamespaceAdapter) abort(r *request, outcome string, err error) {
	a.mu.Lock()
	deliver := a.finishLocked(r, outcome, err)
	a.mu.Unlock()
	deliver()
}

func (a *NamespaceAdapter) timeoutRequest(r *request) {
	a.mu.Lock()
	if r.finished {
		a.mu.Unlock()
		return
	}
	var err error
	if r.kind != kindBroadcastAck {
		err = &TimeoutError{Kind: r.kind, Received: len(r.responded), Expected: r.expected}
	}
	outcome := outcomeTimeout
	if r.complete() {
		outcome = outcomeOK
	}
	deliver := a.finishLocked(r, outcome, err)
	a.mu.Unlock()
	deliver()
}

// failPending completes every waiting request with ErrClosed.
func (a *NamespaceAdapter) failPending() {
	a.mu.Lock()
	var deliver []func()
	for _, r := range a.requests {
		deliver = append(deliver, a.finishLocked(r, outcomeClosed, ErrClosed))
	}
	for _, r := range a.ackRequests {
		deliver = append(deliver, a.finishLocked(r, outcomeClosed, ErrClosed))
	}
	a.mu.Unlock()
	for _, d := range deliver {
		d()
	}
}

// failRequest finishes the fetch_sockets request r, whose message the
// transport did not send, with this node's sockets and err.
func (a *NamespaceAdapter) failRequest(r *request, sockets []SocketInfo, err error) {
	a.mu.Lock()
	if r.finished {
		a.mu.Unlock()
		return
	}
	r.local, r.localSet = sockets, true
	deliver := a.finishLocked(r, outcomePublishError, err)
	a.mu.Unlock()
	deliver()
}

func (a *NamespaceAdapter) setLocalSockets(r *request, sockets []SocketInfo) {
	a.mu.Lock()
	if r.finished {
		a.mu.Unlock()
		return
	}
	r.local, r.localSet = sockets, true
	deliver := a.checkLocked(r)
	a.mu.Unlock()
	deliver()
}

// onResponse handles a response addressed to this adapter (transport
// goroutine). The data was validated by onMessage.
func (a *NamespaceAdapter) onResponse(msg *Message) {
	var deliver func()
	var callback func()
	a.mu.Lock()
	switch msg.Type {
	case FetchSocketsResponse:
		d := msg.Data.(*FetchSocketsResponseData)
		r := a.requests[d.RequestID]
		if r == nil || r.kind != kindFetchSockets {
			a.mu.Unlock()
			a.m.responsesDropped.Inc()
			return
		}
		if r.answer(msg.UID) {
			r.remote = append(r.remote, d.Sockets...)
			deliver = a.checkLocked(r)
		}
	case ServerSideEmitResponse:
		d := msg.Data.(*ResponsePacketData)
		r := a.requests[d.RequestID]
		if r == nil || r.kind != kindServerSideEmit {
			a.mu.Unlock()
			a.m.responsesDropped.Inc()
			return
		}
		if r.answer(msg.UID) {
			r.responses = append(r.responses, d.Packet)
			deliver = a.checkLocked(r)
		}
	case BroadcastClientCount:
		d := msg.Data.(*BroadcastClientCountData)
		r := a.ackRequests[d.RequestID]
		if r == nil {
			a.mu.Unlock()
			a.m.responsesDropped.Inc()
			return
		}
		if r.answer(msg.UID) {
			n := d.ClientCount
			r.clients += n
			cb := r.clientCount
			callback = func() { cb(n) }
			deliver = a.checkLocked(r)
		}
	case BroadcastAck:
		d := msg.Data.(*ResponsePacketData)
		r := a.ackRequests[d.RequestID]
		if r == nil {
			a.mu.Unlock()
			a.m.responsesDropped.Inc()
			return
		}
		if _, lost := r.lost[msg.UID]; !lost {
			r.acks++
			// One client's answer, as Node relays it: its first argument.
			ack, arg := r.ack, d.Packet
			callback = func() { ack([]any{arg}) }
			deliver = a.checkLocked(r)
		}
	}
	a.mu.Unlock()
	// On the transport's reader goroutine, in arrival order: the caller's
	// callbacks must not block (see BroadcastWithAck).
	if callback != nil {
		callback()
	}
	if deliver != nil {
		deliver()
	}
}
