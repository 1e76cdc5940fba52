package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
)

// subscription is one Subscribe call: a namespace adapter (nsp, uid) and
// its handler, fed by the stream readers (durable messages of nsp) and by
// pub/sub (the public channel of nsp and its private one): on the node's
// shared pub/sub connection (pubsub.go), or, with sharded pub/sub, on
// receive loops of its own.
type subscription struct {
	t        *Transport
	nsp, uid string
	h        adapter.Handler
	public   string
	private  string
	closed   atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
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

// channelSets returns the SSUBSCRIBE commands that the receive loops of a
// sharded subscription keep alive: one per channel (the two channels hash
// to different slots, maybe different shards).
func (s *subscription) channelSets() [][]string {
	return [][]string{{s.public}, {s.private}}
}

// receiveLoop keeps channels subscribed (sharded pub/sub) until ctx is
// done: it resubscribes after every failure, with backoff.
func (s *subscription) receiveLoop(ctx context.Context, channels []string) {
	defer s.wg.Done()
	t := s.t
	var bo backoff
	var marked atomic.Bool
	for ctx.Err() == nil {
		if !t.waitConnected(ctx) {
			return
		}
		c := t.client
		var cmd rueidis.Completed
		if t.opts.UseShardedPubSub {
			cmd = c.B().Ssubscribe().Channel(channels...).Build()
		} else {
			cmd = c.B().Subscribe().Channel(channels...).Build()
		}
		confirmed := 0
		var subscribed atomic.Bool
		hctx := rueidis.WithOnSubscriptionHook(ctx, func(ps rueidis.PubSubSubscription) {
			if ps.Kind != "subscribe" && ps.Kind != "ssubscribe" {
				return
			}
			confirmed++
			if confirmed == len(channels) {
				t.health.ok()
				subscribed.Store(true)
				if !marked.Swap(true) {
					s.markReady()
				}
			}
		})
		// A connection of its own: unsubscribing is closing it (rueidis
		// ends a Receive on cancellation without UNSUBSCRIBE), and NUMSUB
		// then stops counting this adapter at once.
		dc, release := c.Dedicate()
		err := dc.Receive(hctx, cmd, func(m rueidis.PubSubMessage) { s.onPubSub(m) })
		dc.Close()
		release()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			// Unsubscribed by someone else (a server-side kill of
			// the subscription): subscribe again.
			continue
		}
		if subscribed.Load() {
			bo.reset()
		}
		t.health.fail(err)
		t.log.Debug("cluster: pub/sub subscription lost", "channels", channels, "err", err)
		if !bo.wait(ctx, t.health) {
			return
		}
	}
}

// confirm records that channel was subscribed (on the shared connection);
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

// onPubSub runs on the connection's reading goroutine (shared connection)
// or on receiveLoop's (sharded); it must not block for long,
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
