package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

// A channel left by one subscription and taken again by the next one (a
// namespace recreated) on the same shared connection must be confirmed to
// the new subscription only by a SUBSCRIBE sent for it: the UNSUBSCRIBE of
// the previous one may still be on the wire, and once Redis processes it
// the channel is not subscribed until that SUBSCRIBE is.

// psEnv is a transport and a way to publish raw payloads on its Redis.
type psEnv struct {
	tr *Transport
	// publish PUBLISHes (SPUBLISHes) payload on channel and returns the
	// number of clients it reached.
	publish func(channel string, payload []byte) (int64, error)
}

func pubsubEnvs() []struct {
	name  string
	start func(t *testing.T) psEnv
} {
	standalone := func(sharded bool) func(t *testing.T) psEnv {
		return func(t *testing.T) psEnv {
			s := redistest.StartStandalone(t)
			o := fastOpts(s.URL())
			o.UseShardedPubSub = sharded
			tr := startTransport(t, "a", o)
			waitReady(t, tr)
			cmd := "PUBLISH"
			if sharded {
				cmd = "SPUBLISH"
			}
			return psEnv{tr: tr, publish: func(ch string, p []byte) (int64, error) {
				v, err := s.Do(cmd, ch, string(p))
				n, _ := v.(int64)
				return n, err
			}}
		}
	}
	return []struct {
		name  string
		start func(t *testing.T) psEnv
	}{
		{"standalone", standalone(false)},
		{"standalone-sharded", standalone(true)},
		{"cluster-sharded", func(t *testing.T) psEnv {
			c := redistest.StartCluster(t, 3)
			o := fastOpts(c.URL())
			o.UseShardedPubSub = true
			tr := startTransport(t, "a", o)
			waitReady(t, tr)
			return psEnv{tr: tr, publish: func(ch string, p []byte) (int64, error) {
				v, err := c.Do("SPUBLISH", ch, string(p))
				n, _ := v.(int64)
				return n, err
			}}
		}},
	}
}

// subscribeNow subscribes without waiting for the confirmation and returns
// the subscription, what it receives and its unsubscribe function.
func subscribeNow(t *testing.T, tr *Transport, nsp, uid string) (*subscription, *sink, func()) {
	t.Helper()
	snk := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Subscribe returns once the channels are wanted
	unsub, err := tr.Subscribe(ctx, nsp, uid, snk.handle)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var s *subscription
	for _, x := range tr.subscribers(nsp) {
		if x.uid == uid {
			s = x // the last one: the subscriptions are in order
		}
	}
	if s == nil {
		t.Fatalf("subscription %s %s not registered", nsp, uid)
	}
	return s, snk, unsub
}

func isReady(s *subscription) bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// peerUID is the sender of the test's messages (a subscription drops its
// own publications).
const peerUID = "pppppppppppppppp"

// checkReaches publishes one message on each channel of s and fails unless
// both reach a client and s receives both (no second chance: s says it is
// subscribed).
func checkReaches(t *testing.T, env psEnv, s *subscription, snk *sink, tag string) {
	t.Helper()
	ids := map[string]string{s.public: "public-" + tag, s.private: "private-" + tag}
	for ch, id := range ids {
		p, err := env.tr.codec.EncodePubSub(&adapter.Message{UID: peerUID, Nsp: s.nsp, Type: adapter.BroadcastClientCount,
			Data: &adapter.BroadcastClientCountData{RequestID: id, ClientCount: 1}})
		if err != nil {
			t.Fatal(err)
		}
		n, err := env.publish(ch, p)
		if err != nil {
			t.Fatalf("publishing on %s: %v", ch, err)
		}
		if n < 1 {
			t.Errorf("%s: confirmed subscribed, but a PUBLISH on %s reached %d clients", tag, ch, n)
		}
	}
	received := func(id string) bool {
		for _, m := range snk.all() {
			if d, ok := m.Data.(*adapter.BroadcastClientCountData); ok && d.RequestID == id {
				return true
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, tag+": both messages received", func() bool {
		return received(ids[s.public]) && received(ids[s.private])
	})
}

// removing reports whether s has left the pub/sub hub (its UNSUBSCRIBE may
// still be under way).
func removing(h *pubsubHub, s *subscription) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gens[s.nsp][s.gen] != s
}

// wantedOnHub reports whether a connection of h wants channel.
func wantedOnHub(h *pubsubHub, channel string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.mu.Lock()
		_, ok := c.wanted[channel]
		c.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// waitClosed waits for done, failing t after a deadline.
func waitClosed(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for: %s", what)
	}
}

// TestPubSubResubscribeWhileUnsubscribing holds the UNSUBSCRIBE of a
// subscription's channels after Redis answered it (the channels are no
// longer subscribed) and subscribes the same channels again meanwhile: the
// new subscription must not be confirmed before its own SUBSCRIBE.
func TestPubSubResubscribeWhileUnsubscribing(t *testing.T) {
	for _, e := range pubsubEnvs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			env := e.start(t)
			tr := env.tr
			const nsp, uid = "/resub", "aaaaaaaaaaaaaaaa"
			a, sa, unsubA := subscribeNow(t, tr, nsp, uid)
			waitFor(t, 10*time.Second, "the first subscription confirmed", func() bool { return isReady(a) })
			checkReaches(t, env, a, sa, "first")

			held := make(chan []string, 8)
			release := make(chan struct{})
			var releaseOnce sync.Once
			releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(releaseAll)
			hook := func(_ connKey, channels []string) {
				select {
				case held <- append([]string(nil), channels...):
				default: // the test is not waiting for more
				}
				select {
				case <-release:
				case <-tr.ctx.Done():
				}
			}
			tr.pubsub.afterUnsubscribe.Store(&hook)
			removed := make(chan struct{})
			go func() {
				defer close(removed)
				unsubA() // returns after RequestTimeout: its UNSUBSCRIBE is held
			}()
			var heldChannels []string
			select {
			case heldChannels = <-held:
			case <-time.After(30 * time.Second):
				t.Fatalf("no UNSUBSCRIBE of %s or %s was sent", a.public, a.private)
			}
			// The removal unwants both channels; a connection may have sent
			// the UNSUBSCRIBE of one before the other was unwanted, and holds
			// it.
			waitFor(t, 10*time.Second, "both channels unwanted", func() bool {
				return !wantedOnHub(tr.pubsub, a.public) && !wantedOnHub(tr.pubsub, a.private)
			})

			// Redis has unsubscribed the held channels; their connection has
			// not recorded it yet.
			b, sb, unsubB := subscribeNow(t, tr, nsp, uid)
			t.Cleanup(unsubB)
			if b.public != a.public || b.private != a.private {
				t.Fatalf("the subscriptions have different channels")
			}
			if isReady(b) {
				n, _ := env.publish(heldChannels[0], []byte("probe"))
				t.Errorf("the new subscription was confirmed while the UNSUBSCRIBE of %v was in flight (a PUBLISH on %s reaches %d clients)", heldChannels, heldChannels[0], n)
			}
			tr.pubsub.afterUnsubscribe.Store(nil)
			releaseAll()
			waitFor(t, 10*time.Second, "the new subscription confirmed", func() bool { return isReady(b) })
			checkReaches(t, env, b, sb, "again")
			waitClosed(t, removed, "the first subscription removed")
		})
	}
}

// TestPubSubResubscribeRace unsubscribes a namespace's subscription and
// subscribes it again at once, many times, without holding anything: each
// new subscription, once confirmed, must receive a message published on
// each of its channels.
func TestPubSubResubscribeRace(t *testing.T) {
	for _, e := range pubsubEnvs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			env := e.start(t)
			tr := env.tr
			const nsp = "/race"
			// Mostly the same uid (both channels taken again), sometimes a
			// new one (only the public channel).
			uidOf := func(round int) string {
				if round%3 == 2 {
					return fmt.Sprintf("n%015d", round)
				}
				return "aaaaaaaaaaaaaaaa"
			}
			cur, _, unsub := subscribeNow(t, tr, nsp, uidOf(0))
			waitFor(t, 10*time.Second, "the first subscription confirmed", func() bool { return isReady(cur) })
			rounds := 60
			if testing.Short() {
				rounds = 15
			}
			for r := 1; r <= rounds && !t.Failed(); r++ {
				prev, prevUnsub := cur, unsub
				removed := make(chan struct{})
				go func() {
					defer close(removed)
					prevUnsub()
				}()
				// Once the previous subscription has left the hub, the new
				// one takes its connection while its UNSUBSCRIBE may be on
				// the wire.
				waitFor(t, 10*time.Second, "the previous subscription leaving", func() bool { return removing(tr.pubsub, prev) })
				var snk *sink
				cur, snk, unsub = subscribeNow(t, tr, nsp, uidOf(r))
				waitFor(t, 10*time.Second, fmt.Sprintf("round %d: subscription confirmed", r), func() bool { return isReady(cur) })
				checkReaches(t, env, cur, snk, fmt.Sprintf("round %d", r))
				waitClosed(t, removed, "the previous subscription removed")
			}
			unsub()
		})
	}
}
