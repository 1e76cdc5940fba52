package cluster

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
)

// subscription is one Subscribe call: a namespace adapter (nsp, uid) and
// its handler, fed by the stream readers (durable messages of nsp) and by
// pub/sub (the public channel of nsp and its private one), on the node's
// shared pub/sub connections (pubsub.go).
type subscription struct {
	t        *Transport
	nsp, uid string
	h        adapter.Handler
	public   string
	private  string
	closed   atomic.Bool
	ready    chan struct{} // closed once every channel is subscribed the first time
	nReady   atomic.Int32
	want     int32
	readyOne sync.Once

	gen int // its generation on the shared connections (pubsub.go)

	confirmMu sync.Mutex
	confirmed map[string]struct{} // channels subscribed at least once
}

// deliver calls the handler unless the subscription was cancelled; a panic
// in the handler is logged, not propagated into the dispatcher.
func (s *subscription) deliver(msg *adapter.Message) {
	if s.closed.Load() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.t.log.Error("cluster: subscription handler panicked", "nsp", s.nsp, "uid", s.uid, "type", msg.Type.String(), "panic", fmt.Sprint(r))
		}
	}()
	s.h(msg)
}

// confirm records that channel was subscribed (on a shared connection);
// ready is closed once both channels were.
func (s *subscription) confirm(channel string) {
	s.confirmMu.Lock()
	if s.confirmed == nil {
		s.confirmed = map[string]struct{}{}
	}
	_, seen := s.confirmed[channel]
	s.confirmed[channel] = struct{}{}
	s.confirmMu.Unlock()
	if !seen {
		s.markReady()
	}
}

func (s *subscription) markReady() {
	if s.nReady.Add(1) == s.want {
		s.readyOne.Do(func() { close(s.ready) })
	}
}

// onPubSub runs on a shared connection's reading goroutine; it must not
// block for long,
// so it only queues for the dispatcher, on its pub/sub lane (which stream
// backpressure never holds up, see dispatcher).
func (s *subscription) onPubSub(m rueidis.PubSubMessage) {
	t := s.t
	t.metrics.pubsubReceived.Inc()
	msg, err := t.codec.DecodePubSub([]byte(m.Message))
	if err != nil {
		t.malformed("pubsub", "", err, slog.String("channel", m.Channel))
		return
	}
	if m.Channel == s.public && msg.UID == s.uid {
		return // our own publication
	}
	if msg.Nsp != s.nsp {
		t.malformed("pubsub", "", decodeErr(ErrBadPayload, fmt.Errorf("namespace %q on the channel of %q", msg.Nsp, s.nsp)), slog.String("channel", m.Channel))
		return
	}
	t.dispatch.pushPubSub(delivery{sub: s, msg: msg})
}
