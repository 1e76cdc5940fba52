package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// errPubsubClosed: the shared pub/sub connection closed without an error.
var errPubsubClosed = errors.New("cluster: pub/sub connection closed")

// The node-level pub/sub (non-sharded): the subscriptions of the node share
// one dedicated connection, on which the channels of every namespace are
// SUBSCRIBEd and UNSUBSCRIBEd as namespace adapters come and go, and one
// goroutine that keeps them subscribed. A namespace costs two channels, not
// a connection and a goroutine.
//
// PUBSUB NUMSUB (ServerCount, Node's way of counting the nodes of a
// namespace) counts connections: two subscriptions of one namespace on one
// transport (two adapters of a namespace, as some tests run) must stay two
// connections. So connections come in generations: generation k carries
// the k-th live subscription of each namespace. A server has one adapter
// per namespace: only generation 0 exists.

// pubsubChunk bounds the channels of one SUBSCRIBE or UNSUBSCRIBE command.
const pubsubChunk = 512

// pubsubHub places the subscriptions on the shared connections.
type pubsubHub struct {
	t     *Transport
	mu    sync.Mutex
	conns map[int]*psConn // by generation
	// gens holds, per namespace, the generations its live subscriptions use.
	gens map[string]map[int]*subscription
	wg   sync.WaitGroup
}

func newPubsubHub(t *Transport) *pubsubHub {
	return &pubsubHub{t: t, conns: map[int]*psConn{}, gens: map[string]map[int]*subscription{}}
}

// add subscribes s's two channels on the connection of the lowest
// generation the namespace does not use yet, starting that connection if
// needed.
func (h *pubsubHub) add(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	used := h.gens[s.nsp]
	if used == nil {
		used = map[int]*subscription{}
		h.gens[s.nsp] = used
	}
	gen := 0
	for used[gen] != nil {
		gen++
	}
	used[gen] = s
	s.gen = gen
	c := h.conns[gen]
	if c == nil {
		c = newPsConn(h, gen)
		h.conns[gen] = c
		h.wg.Add(1)
		go c.run()
	}
	c.want(s, s.public, s.private)
}

// remove unsubscribes s's channels and waits (up to RequestTimeout) until
// Redis has processed the UNSUBSCRIBE, so that NUMSUB no longer counts it
// when it returns, as closing a connection of its own did.
func (h *pubsubHub) remove(s *subscription) {
	h.mu.Lock()
	c := h.conns[s.gen]
	if used := h.gens[s.nsp]; used[s.gen] == s {
		delete(used, s.gen)
		if len(used) == 0 {
			delete(h.gens, s.nsp)
		}
	} else {
		c = nil // never added, or removed already
	}
	var done <-chan struct{}
	if c != nil {
		done = c.unwant(s.public, s.private)
	}
	h.mu.Unlock()
	if done == nil {
		return
	}
	timer := time.NewTimer(h.t.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-h.t.ctx.Done():
	case <-timer.C:
		h.t.log.Debug("cluster: UNSUBSCRIBE not confirmed in time", "nsp", s.nsp, "uid", s.uid)
	}
}

// connections returns the number of shared pub/sub connections (for tests
// and the package documentation's budget).
func (h *pubsubHub) connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// wait waits for the connections' goroutines (after the transport's
// context is cancelled).
func (h *pubsubHub) wait() { h.wg.Wait() }

// psConn is one shared pub/sub connection and the goroutine that keeps its
// channels subscribed: after any failure it dials again, with backoff, and
// subscribes every wanted channel again.
type psConn struct {
	h   *pubsubHub
	gen int

	mu sync.Mutex
	// wanted maps each channel that must be subscribed to its subscription.
	wanted map[string]*subscription
	// subscribed holds the channels subscribed on the current connection.
	subscribed map[string]struct{}
	// dirty holds the channels wanted or dropped since the last reconcile
	// (all the wanted ones on a new connection): a reconcile costs what
	// changed, not what is subscribed.
	dirty map[string]struct{}
	// version counts the changes of wanted; waiters are released once a
	// reconcile that saw their version has finished.
	version int
	waiters []psWaiter
	signal  chan struct{}
}

type psWaiter struct {
	version int
	done    chan struct{}
}

func newPsConn(h *pubsubHub, gen int) *psConn {
	return &psConn{
		h: h, gen: gen,
		wanted:     map[string]*subscription{},
		subscribed: map[string]struct{}{},
		dirty:      map[string]struct{}{},
		signal:     make(chan struct{}, 1),
	}
}

// want registers channels for s; the caller holds h.mu. A channel still
// subscribed (its previous subscription left a moment ago) is ready at
// once.
func (c *psConn) want(s *subscription, channels ...string) {
	var ready []string
	c.mu.Lock()
	for _, ch := range channels {
		c.wanted[ch] = s
		c.dirty[ch] = struct{}{}
		if _, ok := c.subscribed[ch]; ok {
			ready = append(ready, ch)
		}
	}
	c.version++
	c.mu.Unlock()
	for _, ch := range ready {
		s.confirm(ch)
	}
	c.wake()
}

// unwant drops channels; the returned channel is closed once they are
// unsubscribed (or the connection is gone). The caller holds h.mu.
func (c *psConn) unwant(channels ...string) <-chan struct{} {
	c.mu.Lock()
	for _, ch := range channels {
		delete(c.wanted, ch)
		c.dirty[ch] = struct{}{}
	}
	c.version++
	w := psWaiter{version: c.version, done: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	c.wake()
	return w.done
}

func (c *psConn) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// owner returns the subscription a message on channel is for, or nil.
func (c *psConn) owner(channel string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wanted[channel]
}

// release closes the waiters of versions up to v (all of them when v < 0).
func (c *psConn) release(v int) {
	c.mu.Lock()
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if v < 0 || w.version <= v {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	c.mu.Unlock()
}

// retire removes the connection from the hub when nothing is wanted any
// more, and reports whether it did (its goroutine then ends).
func (c *psConn) retire() bool {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	empty := len(c.wanted) == 0
	c.mu.Unlock()
	if empty && h.conns[c.gen] == c {
		delete(h.conns, c.gen)
	}
	return empty
}

func (c *psConn) run() {
	defer c.h.wg.Done()
	defer c.release(-1)
	t := c.h.t
	ctx := t.ctx
	var bo backoff
	for ctx.Err() == nil {
		if !t.waitConnected(ctx) {
			return
		}
		if c.retire() {
			return
		}
		worked, err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil { // retired
			return
		}
		if worked {
			bo.reset()
		}
		t.health.fail(err)
		t.log.Debug("cluster: pub/sub connection lost", "generation", c.gen, "err", err)
		if !bo.wait(ctx, t.health) {
			return
		}
	}
}

// session runs one dedicated connection: it subscribes what is wanted and
// follows the changes until the connection fails (an error) or nothing is
// wanted any more (nil). worked reports whether a subscription succeeded.
func (c *psConn) session(ctx context.Context) (worked bool, err error) {
	t := c.h.t
	dc, release := t.client.Dedicate()
	defer func() {
		dc.Close()
		release()
		c.mu.Lock()
		clear(c.subscribed)
		c.mu.Unlock()
		// The connection is closed: nothing of it is counted by NUMSUB.
		c.release(-1)
	}()
	lost := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if s := c.owner(m.Channel); s != nil {
				s.onPubSub(m)
			}
		},
	})
	c.mu.Lock()
	for ch := range c.wanted {
		c.dirty[ch] = struct{}{} // a new connection has nothing subscribed
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		v := c.version
		var add, drop []string
		for ch := range c.dirty {
			_, want := c.wanted[ch]
			_, have := c.subscribed[ch]
			switch {
			case want && !have:
				add = append(add, ch)
			case !want && have:
				drop = append(drop, ch)
			}
		}
		clear(c.dirty)
		c.mu.Unlock()
		if err := c.apply(ctx, dc, add, true); err != nil {
			return worked, err
		}
		if len(add) > 0 {
			worked = true
			t.health.ok()
		}
		if err := c.apply(ctx, dc, drop, false); err != nil {
			return worked, err
		}
		c.release(v)
		if c.retire() {
			return worked, nil
		}
		select {
		case <-c.signal:
		case err, ok := <-lost:
			if !ok || err == nil {
				err = errPubsubClosed
			}
			return worked, err
		case <-ctx.Done():
			return worked, ctx.Err()
		}
	}
}

// apply SUBSCRIBEs (sub) or UNSUBSCRIBEs channels, in chunks, recording
// the result; rueidis returns from Do once Redis confirmed every channel.
func (c *psConn) apply(ctx context.Context, dc rueidis.DedicatedClient, channels []string, sub bool) error {
	t := c.h.t
	for len(channels) > 0 {
		chunk := channels[:min(len(channels), pubsubChunk)]
		channels = channels[len(chunk):]
		var cmd rueidis.Completed
		if sub {
			cmd = dc.B().Subscribe().Channel(chunk...).Build()
		} else {
			cmd = dc.B().Unsubscribe().Channel(chunk...).Build()
		}
		cctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
		err := dc.Do(cctx, cmd).Error()
		cancel()
		if err != nil {
			return err
		}
		type ready struct {
			s  *subscription
			ch string
		}
		var confirmed []ready
		c.mu.Lock()
		for _, ch := range chunk {
			if sub {
				c.subscribed[ch] = struct{}{}
				if s := c.wanted[ch]; s != nil {
					confirmed = append(confirmed, ready{s, ch})
				}
			} else {
				delete(c.subscribed, ch)
			}
		}
		c.mu.Unlock()
		for _, r := range confirmed {
			r.s.confirm(r.ch)
		}
	}
	return nil
}
