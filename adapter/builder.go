package adapter

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/sockstream/sockstream/internal/lograte"
	"log/slog"
	"sync"
	"time"
)

// Builder creates the cluster adapter of each namespace of a server: the
// Socket.IO layer calls New when it creates a namespace, and Close on the
// adapter when the server shuts down. One Builder serves one server; its
// namespaces share its Transport.
//
// The Builder holds the node-level resources its adapters share, so that a
// namespace costs no goroutine of its own: at most Config.Workers workers
// run the namespaces' queued work (scheduler.go) and exit when there is
// none; and, while an adapter is subscribed, two liveness goroutines: one
// publishes every adapter's heartbeats, straight through the transport,
// and one checks the adapters' peers. Liveness so never waits for the
// namespaces' work: a node whose workers are all held (Redis answering
// slowly, a namespace with a backlog) still tells its peers it is alive,
// and no request callback runs on either goroutine.
type Builder struct {
	transport Transport
	batcher   BatchPublisher // nil unless the transport implements it
	opts      Config
	log       *slog.Logger
	metrics   *metrics
	sched     *scheduler

	mu       sync.Mutex
	adapters map[string]*NamespaceAdapter // by namespace name, the newest
	count    int                          // adapters not closed yet
	// subscribed: the adapters the liveness goroutines serve; they run
	// (running) while it is not empty.
	subscribed map[*NamespaceAdapter]struct{}
	running    *liveness
	// beating: the adapters whose heartbeat is being published right now;
	// unlive waits (on sent) until its adapter's is done.
	beating map[*NamespaceAdapter]struct{}
	sent    *sync.Cond // on mu: beating lost members

	lastWarn lograte.OncePerSecond // of warnLimited
}

// liveness is a run of the Builder's two liveness goroutines.
type liveness struct {
	ctx                 context.Context // cancelled to stop them; bounds their publications
	cancel              context.CancelFunc
	beatDone, checkDone chan struct{}
}

// heartbeatBatch bounds the heartbeats handed to the transport at once.
const heartbeatBatch = 512

// New returns the adapter constructor of a server whose nodes talk through
// transport. Zero fields of cfg take their defaults; an invalid cfg gives an
// error wrapping ErrInvalidConfig.
func New(transport Transport, cfg Config) (*Builder, error) {
	if transport == nil {
		return nil, &ConfigError{Field: "transport", Reason: "must not be nil"}
	}
	o, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, errors.Join(ErrInvalidConfig, err)
	}
	b := &Builder{
		transport: transport,
		opts:      o,
		log:       o.Logger,
		metrics:   m,
		sched:     newScheduler(o.Workers),
		adapters:  map[string]*NamespaceAdapter{},

		subscribed: map[*NamespaceAdapter]struct{}{},
		beating:    map[*NamespaceAdapter]struct{}{},
	}
	b.batcher, _ = transport.(BatchPublisher)
	b.sent = sync.NewCond(&b.mu)
	return b, nil
}

// New creates and starts the adapter of namespace ns: it is usable at once
// (its room index, and operations, which are queued), and subscribes to
// the namespace's messages in the background, retrying until the
// transport accepts; once subscribed it announces the node
// (INITIAL_HEARTBEAT) and sends heartbeats every HeartbeatInterval. There
// is no separate Init or Start. Close stops it; the Builder forgets it
// then. It starts no goroutine of its own (see Builder).
func (b *Builder) New(ns Namespace) *NamespaceAdapter {
	a := newNamespaceAdapter(b, ns)
	b.mu.Lock()
	b.adapters[a.name] = a
	b.count++
	b.mu.Unlock()
	a.start()
	return a
}

// Workers returns the number of goroutines running the namespaces' work
// right now (at most Config.Workers; 0 when no namespace has work).
func (b *Builder) Workers() int { return b.sched.running() }

// live adds a subscribed adapter to the liveness goroutines' adapters,
// starting them.
func (b *Builder) live(a *NamespaceAdapter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subscribed[a] = struct{}{}
	if b.running == nil {
		ctx, cancel := context.WithCancel(context.Background())
		l := &liveness{ctx: ctx, cancel: cancel, beatDone: make(chan struct{}), checkDone: make(chan struct{})}
		b.running = l
		go b.beat(l)
		go b.check(l)
	}
}

// unlive removes a from the liveness goroutines' adapters; they stop (and
// are waited for) with the last one. It returns once no heartbeat of a is
// being published: the adapter's ADAPTER_CLOSE, which follows, must be the
// last message the peers get from it (a heartbeat after it would make them
// take a for alive again).
func (b *Builder) unlive(a *NamespaceAdapter) {
	b.mu.Lock()
	delete(b.subscribed, a)
	var l *liveness
	if len(b.subscribed) == 0 && b.running != nil {
		l, b.running = b.running, nil
		l.cancel() // also cuts short a heartbeat round in flight
	}
	for {
		if _, ok := b.beating[a]; !ok {
			break
		}
		b.sent.Wait()
	}
	b.mu.Unlock()
	if l != nil {
		<-l.beatDone
		<-l.checkDone
	}
}

// beat publishes a HEARTBEAT for every subscribed adapter every
// HeartbeatInterval, until l is stopped. A round that outlasts the
// interval delays the next one (the ticker drops the ticks meanwhile).
func (b *Builder) beat(l *liveness) {
	defer close(l.beatDone)
	t := time.NewTicker(b.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			start := time.Now()
			b.beatRound(l.ctx)
			if took := time.Since(start); took > b.opts.HeartbeatInterval && l.ctx.Err() == nil {
				b.warnLimited("heartbeats late: publishing them took longer than HeartbeatInterval",
					"took", took, "interval", b.opts.HeartbeatInterval)
			}
		}
	}
}

// beatRound publishes one HEARTBEAT per subscribed adapter, heartbeatBatch
// at a time, within RequestTimeout (the bound of the adapter's own
// publications at Close; the transport bounds each call by its own
// timeout too), so that unlive never waits longer for a heartbeat. A
// failed one is counted (publish_errors, type HEARTBEAT) and logged,
// rate-limited, for the whole Builder. stop ends with the last adapter:
// what it cuts short is not counted.
func (b *Builder) beatRound(stop context.Context) {
	ctx, cancel := context.WithTimeout(stop, b.opts.RequestTimeout)
	defer cancel()
	round := b.liveAdapters()
	failed := 0
	var firstErr error
	for len(round) > 0 && ctx.Err() == nil {
		n := min(len(round), heartbeatBatch)
		batch := b.startBeats(round[:n])
		round = round[n:]
		errs := b.publishBeats(ctx, batch)
		b.mu.Lock()
		for _, a := range batch {
			delete(b.beating, a)
		}
		b.sent.Broadcast()
		b.mu.Unlock()
		for _, err := range errs {
			if err != nil {
				failed++
				firstErr = cmp.Or(firstErr, err)
			}
		}
	}
	if stop.Err() != nil {
		return // every adapter closed: nobody waits for these heartbeats
	}
	if len(round) > 0 {
		// Out of time: the rest of the round is not sent either.
		failed += len(round)
		firstErr = cmp.Or(firstErr, ctx.Err())
	}
	if failed > 0 {
		b.metrics.publishErrors.WithLabelValues(Heartbeat.String()).Add(float64(failed))
		b.warnLimited("heartbeats not published", "failed", failed, "err", firstErr)
	}
}

// startBeats returns the adapters of as still subscribed and marks them
// beating, so that unlive waits for their heartbeat.
func (b *Builder) startBeats(as []*NamespaceAdapter) []*NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := as[:0]
	for _, a := range as {
		if _, ok := b.subscribed[a]; ok {
			b.beating[a] = struct{}{}
			out = append(out, a)
		}
	}
	return out
}

// publishBeats publishes the heartbeats of as and returns their errors,
// by index.
func (b *Builder) publishBeats(ctx context.Context, as []*NamespaceAdapter) []error {
	errs := make([]error, len(as))
	if len(as) == 0 {
		return errs
	}
	msgs := make([]*Message, len(as))
	for i, a := range as {
		msgs[i] = a.message(Heartbeat, nil)
	}
	if b.batcher != nil {
		res := b.batcher.PublishBatch(ctx, msgs)
		for i := range errs {
			errs[i] = batchResult(res, i).Err
		}
		return errs
	}
	for i, msg := range msgs {
		_, errs[i] = b.transport.Publish(ctx, msg)
	}
	return errs
}

// check drops the silent peers of every subscribed adapter every
// HeartbeatTimeout/4, until l is stopped. It runs no request callback:
// checkPeers queues them on the namespaces' tasks.
func (b *Builder) check(l *liveness) {
	defer close(l.checkDone)
	t := time.NewTicker(max(b.opts.HeartbeatTimeout/4, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case now := <-t.C:
			for _, a := range b.liveAdapters() {
				a.checkPeers(now)
			}
		}
	}
}

func (b *Builder) liveAdapters() []*NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*NamespaceAdapter, 0, len(b.subscribed))
	for a := range b.subscribed {
		out = append(out, a)
	}
	return out
}

// warnLimited logs at most one warning per second for the whole Builder:
// with thousands of namespaces, one line stands for all of them (the
// counters have the details).
func (b *Builder) warnLimited(msg string, args ...any) {
	if b.lastWarn.Allow() {
		b.log.Warn(msg, args...)
	}
}

// Adapter returns the current adapter of the namespace called name, or nil.
func (b *Builder) Adapter(name string) *NamespaceAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adapters[name]
}

// forget drops a closed adapter; with the last one, it waits for the
// workers to exit, so that nothing of the Builder runs once every adapter
// is closed.
func (b *Builder) forget(a *NamespaceAdapter) {
	b.mu.Lock()
	if b.adapters[a.name] == a {
		delete(b.adapters, a.name)
		// Only while a is the namespace's newest adapter: a namespace
		// created again while a was closing has its own series already.
		a.m.peersAlive.DeleteLabelValues(a.name)
	}
	b.count--
	last := b.count == 0
	b.mu.Unlock()
	if last {
		b.sched.waitIdle()
	}
}

// randomID returns 16 hex characters, like Node's randomBytes(8).toString("hex").
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
