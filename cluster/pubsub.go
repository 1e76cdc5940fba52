package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// errPubsubClosed: the shared pub/sub connection closed without an error.
var errPubsubClosed = errors.New("cluster: pub/sub connection closed")

// errShardUnknown: the client knows no node at the address a shard's
// channels are placed on (the topology changed); the slot map is read again.
var errShardUnknown = errors.New("cluster: no connection to the shard's master")

// The node-level pub/sub: the subscriptions of the node share dedicated
// connections, on which the channels of every namespace are SUBSCRIBEd and
// UNSUBSCRIBEd as namespace adapters come and go, each kept subscribed by
// one goroutine. A namespace costs two channels, not a connection and a
// goroutine.
//
// Without sharded pub/sub there is one connection (per generation, below),
// taken from the client. With sharded pub/sub (SSUBSCRIBE, Redis 7
// Cluster) a channel can only be subscribed on the master serving its
// slot, and the two channels of a namespace hash to different slots: the
// channels are grouped by master (slotMap, shard_map.go), one connection
// per master. When a slot moves (SSUBSCRIBE answered -MOVED, or Redis
// pushes an sunsubscribe as the slot leaves a master) its channels move to
// the connection of the new master; when a master's connection fails, the
// slot map is read again. Messages published meanwhile are lost, as with
// Node's adapter.
//
// PUBSUB NUMSUB (ServerCount, Node's way of counting the nodes of a
// namespace) counts connections: two subscriptions of one namespace on one
// transport (two adapters of a namespace, as some tests run) must stay two
// connections. So connections come in generations: generation k carries
// the k-th live subscription of each namespace. A server has one adapter
// per namespace: only generation 0 exists.

// pubsubChunk bounds the channels of one SUBSCRIBE or UNSUBSCRIBE command.
const pubsubChunk = 512

// connKey names a shared connection: the master it goes to
// (standaloneShard without sharded pub/sub) and its generation.
type connKey struct {
	addr string
	gen  int
}

// chanKey names a wanted channel: the generation of its subscription and
// its name.
type chanKey struct {
	gen int
	ch  string
}

// placement is where a channel of a sharded subscription is wanted.
type placement struct {
	s    *subscription
	slot uint16
	addr string
}

// pubsubHub places the subscriptions on the shared connections.
type pubsubHub struct {
	t       *Transport
	sharded bool
	mu      sync.Mutex
	conns   map[connKey]*psConn
	// gens holds, per namespace, the generations its live subscriptions use.
	gens map[string]map[int]*subscription

	// Sharded pub/sub only: the slot map (nil until read), the channels
	// placed on a master's connection and those waiting for the map.
	slots   *slotMap
	placed  map[chanKey]placement
	pending map[chanKey]*subscription
	resolve chan struct{} // wakes the resolver

	// afterUnsubscribe, set by tests only, runs on a connection's
	// goroutine once Redis answered an UNSUBSCRIBE and before the answer is
	// recorded: it holds that UNSUBSCRIBE in flight.
	afterUnsubscribe atomic.Pointer[func(k connKey, channels []string)]

	wg sync.WaitGroup
}

func newPubsubHub(t *Transport) *pubsubHub {
	h := &pubsubHub{
		t: t, sharded: t.opts.UseShardedPubSub,
		conns: map[connKey]*psConn{}, gens: map[string]map[int]*subscription{},
		placed: map[chanKey]placement{}, pending: map[chanKey]*subscription{},
		resolve: make(chan struct{}, 1),
	}
	if h.sharded {
		h.wg.Add(1)
		go h.resolver()
	}
	return h
}

// add subscribes s's two channels on the connections of the lowest
// generation the namespace does not use yet, starting them if needed.
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
	if !h.sharded {
		h.conn(connKey{standaloneShard, gen}).want(s, s.public, s.private)
		return
	}
	for _, ch := range []string{s.public, s.private} {
		h.place(s, chanKey{gen, ch})
	}
}

// conn returns the connection k, starting it if needed; h.mu is held.
func (h *pubsubHub) conn(k connKey) *psConn {
	c := h.conns[k]
	if c == nil {
		c = newPsConn(h, k)
		h.conns[k] = c
		h.wg.Add(1)
		go c.run()
	}
	return c
}

// place wants a sharded channel on the connection of its slot's master,
// or leaves it pending until the slot map is known; h.mu is held.
func (h *pubsubHub) place(s *subscription, k chanKey) {
	if h.slots != nil {
		if slot, ok := slotOf(h.t.client, k.ch); ok {
			if addr, ok := h.slots.master(slot); ok {
				h.placed[k] = placement{s: s, slot: slot, addr: addr}
				h.conn(connKey{addr, k.gen}).want(s, k.ch)
				return
			}
		}
	}
	h.pending[k] = s
	h.wake()
}

// wake asks the resolver to read the slot map again.
func (h *pubsubHub) wake() {
	select {
	case h.resolve <- struct{}{}:
	default:
	}
}

// rehome moves a placed channel to the connection of addr; h.mu is held.
func (h *pubsubHub) rehome(k chanKey, p placement, addr string) {
	if c := h.conns[connKey{p.addr, k.gen}]; c != nil {
		c.unwant(k.ch) // its waiter is released by that connection's next reconcile
	}
	p.addr = addr
	h.placed[k] = p
	h.conn(connKey{addr, k.gen}).want(p.s, k.ch)
}

// moved records that slot is served by addr (a -MOVED answer) and moves
// the channels of that slot placed on from.
func (h *pubsubHub) moved(from connKey, slot uint16, addr string, channels []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.slots != nil && !h.slots.standalone {
		h.slots.masters[slot] = addr
	}
	for _, ch := range channels {
		k := chanKey{from.gen, ch}
		if p, ok := h.placed[k]; ok && p.addr == from.addr && p.slot == slot {
			h.rehome(k, p, addr)
		}
	}
	h.wake() // the other slots of that master may have moved too
}

// resolver reads the slot map when woken (a sharded channel waits for it,
// a slot moved, a master's connection failed) and moves the channels whose
// master changed.
func (h *pubsubHub) resolver() {
	defer h.wg.Done()
	t := h.t
	ctx := t.ctx
	timeout := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, t.opts.RequestTimeout)
	}
	// unserved paces the reads while channels wait for a slot no master
	// serves (a cluster being resharded), which wake the resolver again.
	var unserved backoff
	for {
		select {
		case <-h.resolve:
		case <-ctx.Done():
			return
		}
		var bo backoff
		for {
			if !t.waitConnected(ctx) {
				return
			}
			m, err := fetchSlotMap(ctx, t.client, timeout)
			if err == nil {
				if h.apply(m) == 0 {
					unserved.reset()
				} else if !unserved.wait(ctx, nil) {
					return
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			t.log.Debug("cluster: sharded pub/sub cannot read the slot map", "err", err)
			if !bo.wait(ctx, t.health) {
				return
			}
		}
	}
}

// apply installs a new slot map: pending channels are placed, and placed
// ones whose slot has another master move to its connection. It returns
// how many channels still wait (their slot has no master).
func (h *pubsubHub) apply(m *slotMap) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.slots = m
	for k, p := range h.placed {
		if addr, ok := m.master(p.slot); ok && addr != p.addr {
			h.rehome(k, p, addr)
		}
	}
	pending := h.pending
	h.pending = map[chanKey]*subscription{}
	for k, s := range pending {
		h.place(s, k)
	}
	return len(h.pending)
}

// remove unsubscribes s's channels and waits (up to RequestTimeout) until
// Redis has processed the UNSUBSCRIBE, so that NUMSUB no longer counts it
// when it returns, as closing a connection of its own did.
func (h *pubsubHub) remove(s *subscription) {
	h.mu.Lock()
	used := h.gens[s.nsp]
	if used[s.gen] != s {
		h.mu.Unlock()
		return // never added, or removed already
	}
	delete(used, s.gen)
	if len(used) == 0 {
		delete(h.gens, s.nsp)
	}
	var dones []<-chan struct{}
	for _, ch := range []string{s.public, s.private} {
		k := chanKey{s.gen, ch}
		addr := standaloneShard
		if h.sharded {
			if _, ok := h.pending[k]; ok {
				delete(h.pending, k)
				continue
			}
			p, ok := h.placed[k]
			if !ok {
				continue
			}
			delete(h.placed, k)
			addr = p.addr
		}
		if c := h.conns[connKey{addr, s.gen}]; c != nil {
			dones = append(dones, c.unwant(ch))
		}
	}
	h.mu.Unlock()
	if len(dones) == 0 {
		return
	}
	timer := time.NewTimer(h.t.opts.RequestTimeout)
	defer timer.Stop()
	for _, done := range dones {
		select {
		case <-done:
		case <-h.t.ctx.Done():
			return
		case <-timer.C:
			h.t.log.Debug("cluster: UNSUBSCRIBE not confirmed in time", "nsp", s.nsp, "uid", s.uid)
			return
		}
	}
}

// wait waits for the connections' goroutines (after the transport's
// context is cancelled).
func (h *pubsubHub) wait() { h.wg.Wait() }

// psConn is one shared pub/sub connection and the goroutine that keeps its
// channels subscribed: after any failure it dials again, with backoff, and
// subscribes every wanted channel again.
//
// A channel left by one subscription may be wanted by the next one (a
// namespace recreated) while its UNSUBSCRIBE is on the wire: once Redis
// processes it, the channel is not subscribed, whatever the connection
// recorded. So each want is numbered, and a subscription is confirmed only
// by the answer to a SUBSCRIBE sent for its want: sent after it, that
// SUBSCRIBE is processed after any UNSUBSCRIBE sent before, and no
// UNSUBSCRIBE of a wanted channel is sent.
type psConn struct {
	h   *pubsubHub
	key connKey

	mu sync.Mutex
	// wanted maps each channel that must be subscribed to its want.
	wanted map[string]psWant
	// subscribed maps the channels subscribed on the current connection to
	// the want their SUBSCRIBE was sent for.
	subscribed map[string]uint64
	// unsubscribing holds the channels whose UNSUBSCRIBE is on the wire.
	unsubscribing map[string]struct{}
	// dirty holds the channels wanted or dropped since the last reconcile
	// (all the wanted ones on a new connection): a reconcile costs what
	// changed, not what is subscribed.
	dirty map[string]struct{}
	// seq numbers the wants.
	seq uint64
	// version counts the changes of wanted; waiters are released once a
	// reconcile that saw their version has finished.
	version int
	waiters []psWaiter
	signal  chan struct{}
}

// psWant is a channel wanted by s; seq numbers the want.
type psWant struct {
	s   *subscription
	seq uint64
}

type psWaiter struct {
	version int
	done    chan struct{}
}

func newPsConn(h *pubsubHub, key connKey) *psConn {
	return &psConn{
		h: h, key: key,
		wanted:        map[string]psWant{},
		subscribed:    map[string]uint64{},
		unsubscribing: map[string]struct{}{},
		dirty:         map[string]struct{}{},
		signal:        make(chan struct{}, 1),
	}
}

// want registers channels for s; the caller holds h.mu. A channel still
// subscribed (its previous subscription left a moment ago) is subscribed
// again all the same, for s: its UNSUBSCRIBE may be on the wire.
func (c *psConn) want(s *subscription, channels ...string) {
	c.mu.Lock()
	for _, ch := range channels {
		c.seq++
		c.wanted[ch] = psWant{s: s, seq: c.seq}
		c.dirty[ch] = struct{}{}
	}
	c.version++
	c.mu.Unlock()
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
	return c.wanted[channel].s
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
	if empty && h.conns[c.key] == c {
		delete(h.conns, c.key)
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
		t.log.Debug("cluster: pub/sub connection lost", "shard", c.key.addr, "generation", c.key.gen, "err", err)
		if c.h.sharded {
			c.h.wake() // a failover may have changed the master of its slots
		}
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
	var src rueidis.Client = t.client
	if c.key.addr != standaloneShard {
		nc, ok := t.client.Nodes()[c.key.addr]
		if !ok {
			return false, fmt.Errorf("%w: %s", errShardUnknown, c.key.addr)
		}
		src = nc
	}
	dc, release := src.Dedicate()
	defer func() {
		dc.Close()
		release()
		c.mu.Lock()
		clear(c.subscribed)
		clear(c.unsubscribing)
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
		OnSubscription: c.onSubscription,
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
		sent := map[string]uint64{} // the want each SUBSCRIBE is sent for
		for ch := range c.dirty {
			w, want := c.wanted[ch]
			seq, have := c.subscribed[ch]
			switch {
			case want && (!have || seq != w.seq):
				add = append(add, ch)
				sent[ch] = w.seq
			case !want && have:
				drop = append(drop, ch)
				c.unsubscribing[ch] = struct{}{}
			}
		}
		clear(c.dirty)
		c.mu.Unlock()
		if err := c.apply(ctx, dc, add, sent); err != nil {
			return worked, err
		}
		if len(add) > 0 {
			worked = true
			t.health.ok()
		}
		err := c.apply(ctx, dc, drop, nil)
		c.mu.Lock()
		for _, ch := range drop {
			delete(c.unsubscribing, ch)
		}
		c.mu.Unlock()
		if err != nil {
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

// onSubscription runs on the connection's reading goroutine. An
// sunsubscribe of a channel still wanted, and not being unsubscribed by us
// (apply records those), is Redis dropping it as its slot left this master:
// the channel is subscribed again, which -MOVED answers with the new master
// (see apply).
func (c *psConn) onSubscription(ps rueidis.PubSubSubscription) {
	if ps.Kind != "sunsubscribe" && ps.Kind != "unsubscribe" {
		return
	}
	c.mu.Lock()
	_, want := c.wanted[ps.Channel]
	_, have := c.subscribed[ps.Channel]
	_, ours := c.unsubscribing[ps.Channel]
	want = want && !ours
	if want && have {
		delete(c.subscribed, ps.Channel)
		c.dirty[ps.Channel] = struct{}{}
	}
	c.mu.Unlock()
	if want && have {
		c.h.t.log.Debug("cluster: channel unsubscribed by Redis, subscribing again", "channel", ps.Channel, "shard", c.key.addr)
		c.wake()
	}
}

// apply SUBSCRIBEs channels, each for the want sent gives (sent != nil),
// or UNSUBSCRIBEs them, in chunks, recording the result; rueidis returns
// from Do once Redis processed the command. A SUBSCRIBE confirms the
// subscription of the want it was sent for, if that is still the want: a
// channel wanted again meanwhile is dirty, and subscribed again for its new
// want. Sharded, each command holds the channels of one slot (Redis refuses
// more), and a -MOVED answer moves that slot's channels to the connection
// of the master it names.
func (c *psConn) apply(ctx context.Context, dc rueidis.DedicatedClient, channels []string, sent map[string]uint64) error {
	t := c.h.t
	sub := sent != nil
	for len(channels) > 0 {
		chunk := channels[:min(len(channels), pubsubChunk)]
		channels = channels[len(chunk):]
		groups := c.groups(chunk)
		cmds := make([]rueidis.Completed, 0, len(groups))
		for _, g := range groups {
			switch {
			case c.h.sharded && sub:
				cmds = append(cmds, dc.B().Ssubscribe().Channel(g.channels...).Build())
			case c.h.sharded:
				cmds = append(cmds, dc.B().Sunsubscribe().Channel(g.channels...).Build())
			case sub:
				cmds = append(cmds, dc.B().Subscribe().Channel(g.channels...).Build())
			default:
				cmds = append(cmds, dc.B().Unsubscribe().Channel(g.channels...).Build())
			}
		}
		cctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
		var results []rueidis.RedisResult
		if len(cmds) == 1 { // always, without sharded pub/sub
			results = []rueidis.RedisResult{dc.Do(cctx, cmds[0])}
		} else {
			results = dc.DoMulti(cctx, cmds...)
		}
		cancel()
		if hook := c.h.afterUnsubscribe.Load(); hook != nil && !sub {
			(*hook)(c.key, chunk)
		}
		type ready struct {
			s  *subscription
			ch string
		}
		var confirmed []ready
		var failed error
		for i, g := range groups {
			err := results[i].Error()
			if err != nil {
				if addr, ok := movedTo(err); ok && c.h.sharded && addr != c.key.addr {
					if sub {
						c.h.moved(c.key, g.slot, addr, g.channels)
						continue
					}
					err = nil // the slot left this master, and its channels with it
				} else {
					failed = errors.Join(failed, err)
					continue
				}
			}
			c.mu.Lock()
			for _, ch := range g.channels {
				if sub {
					seq := sent[ch]
					c.subscribed[ch] = seq
					if w, ok := c.wanted[ch]; ok && w.seq == seq {
						confirmed = append(confirmed, ready{w.s, ch})
					}
				} else {
					delete(c.subscribed, ch)
				}
			}
			c.mu.Unlock()
		}
		for _, r := range confirmed {
			r.s.confirm(r.ch)
		}
		if failed != nil {
			return failed
		}
	}
	return nil
}

// slotGroup is the channels of one command: all of them (not sharded), or
// those of one slot.
type slotGroup struct {
	slot     uint16
	channels []string
}

func (c *psConn) groups(channels []string) []slotGroup {
	if !c.h.sharded {
		return []slotGroup{{channels: channels}}
	}
	var out []slotGroup
	index := map[uint16]int{}
	for _, ch := range channels {
		slot, _ := slotOf(c.h.t.client, ch)
		i, ok := index[slot]
		if !ok {
			i = len(out)
			index[slot] = i
			out = append(out, slotGroup{slot: slot})
		}
		out[i].channels = append(out[i].channels, ch)
	}
	return out
}

// movedTo reports whether err is a -MOVED answer, and the address it names.
func movedTo(err error) (string, bool) {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return "", false
	}
	return re.IsMoved()
}
