package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
)

// Transport is the Redis Streams transport of the cluster adapter: it
// implements adapter.Transport and adapter.BatchPublisher over one
// rueidis client, wire compatible with @socket.io/redis-streams-adapter
// 0.3.1. See the package documentation for what it guarantees.
type Transport struct {
	opts    Options
	log     *slog.Logger
	codec   Codec
	metrics *metrics
	health  *health
	client  *lazyClient

	connected chan struct{} // closed when the real client exists

	ctx    context.Context // cancelled by Close, after the outbox flush
	cancel context.CancelFunc
	wg     sync.WaitGroup

	dispatch *dispatcher
	out      *outbox
	pubsub   *pubsubHub // the shared pub/sub connections (not sharded)

	mu     sync.Mutex
	subs   map[string][]*subscription // by namespace
	nsubs  int                        // the subscriptions in subs
	closed bool

	readers        int32
	readersStarted atomic.Int32

	closeOnce sync.Once
	closeErr  error

	logLimit limiter
}

var (
	_ adapter.Transport      = (*Transport)(nil)
	_ adapter.BatchPublisher = (*Transport)(nil)
)

// New validates opts and starts the transport. It does not wait for Redis:
// the connection is made in the background, retried with backoff, and
// Ready reports false until Redis answers. The only errors are invalid
// options (errors.Is(err, ErrInvalidOptions)), including metrics that
// cannot be registered on opts.Registerer.
func New(opts Options) (*Transport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	co, err := o.clientOption()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, &OptionsError{Field: "Registerer", Reason: err.Error()}
	}
	lc, err := newLazyClient()
	if err != nil {
		m.unregister()
		return nil, fmt.Errorf("cluster: creating the placeholder client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		opts:      o,
		log:       o.Logger,
		codec:     Codec{OnlyPlaintext: o.OnlyPlaintext, MaxDataSize: o.MaxDataSize},
		metrics:   m,
		client:    lc,
		connected: make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		dispatch:  newDispatcher(m),
		subs:      map[string][]*subscription{},
	}
	t.pubsub = newPubsubHub(t)
	t.health = newHealth(o.Logger, m)
	m.redisUp.Set(0) // until the first connection
	t.out = newOutbox(t)
	m.outboxCapacity.Set(float64(o.PublishBufferSize))

	t.spawn(func() { t.connectLoop(co) })
	t.spawn(t.pingLoop)
	t.spawn(func() { t.dispatch.run(ctx) })
	keys := streamKeys(o.StreamName, o.StreamCount)
	t.readers = int32(len(keys))
	readers := make([]*reader, 0, len(keys))
	for _, key := range keys {
		r := newReader(t, key)
		readers = append(readers, r)
		t.spawn(r.run)
	}
	t.spawn(func() { t.lagLoop(readers) })
	t.out.start()
	return t, nil
}

func (t *Transport) spawn(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

// connectLoop creates the rueidis client, retrying with backoff until
// Redis answers or the transport closes.
func (t *Transport) connectLoop(co rueidis.ClientOption) {
	var bo backoff
	var lastLog time.Time
	for {
		c, err := rueidis.NewClient(co)
		if err == nil {
			if !t.client.set(c) {
				c.Close() // closed meanwhile
				return
			}
			t.health.ok()
			t.metrics.redisUp.Set(1)
			close(t.connected)
			t.log.Info("cluster: connected to Redis", "mode", modeName(c.Mode()))
			return
		}
		// A wrong address or password does not fix itself: say so at
		// once, then every 30s, not at every attempt.
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			t.log.Warn("cluster: cannot connect to Redis, retrying", "err", err)
		} else {
			t.log.Debug("cluster: cannot connect to Redis, retrying", "err", err)
		}
		t.health.fail(err)
		if !bo.wait(t.ctx, nil) {
			return
		}
	}
}

func modeName(m rueidis.ClientMode) string {
	switch m {
	case rueidis.ClientModeCluster:
		return "cluster"
	case rueidis.ClientModeSentinel:
		return "sentinel"
	default:
		return "standalone"
	}
}

// waitConnected waits for the first connection; false when ctx is done.
func (t *Transport) waitConnected(ctx context.Context) bool {
	select {
	case <-t.connected:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitConnection gives the first connection up to RequestTimeout (or ctx)
// to be made, so that calls made right after New do not fail for a
// connection that is one round trip away.
func (t *Transport) awaitConnection(ctx context.Context) {
	if t.isConnected() {
		return
	}
	timer := time.NewTimer(t.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case <-t.connected:
	case <-ctx.Done():
	case <-t.ctx.Done():
	case <-timer.C:
	}
}

func (t *Transport) isConnected() bool {
	select {
	case <-t.connected:
		return true
	default:
		return false
	}
}

// pingInterval is how often the health of the connection is checked when
// nothing else talks to Redis.
const pingInterval = time.Second

// pingLoop PINGs Redis every pingInterval, so that Ready follows the state
// of Redis even when no traffic flows, and a paused server is noticed.
func (t *Transport) pingLoop() {
	t.every(pingInterval, func() {
		ctx, cancel := context.WithTimeout(t.ctx, t.opts.RequestTimeout)
		err := t.client.Do(ctx, t.client.B().Ping().Build()).Error()
		cancel()
		if t.ctx.Err() != nil {
			return
		}
		if err == nil {
			t.health.ok()
		} else {
			t.health.fail(err)
		}
	})
}

// every runs f every interval, from the first connection to Redis until
// the transport closes.
func (t *Transport) every(interval time.Duration, f func()) {
	if !t.waitConnected(t.ctx) {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		f()
	}
}

// Client returns the shared rueidis client (auto-pipelined, never
// blocking), for other users of the same Redis such as session storage.
// Until the first connection succeeds, its commands fail at once with a
// connection error. Do not close it: Close does.
func (t *Transport) Client() rueidis.Client { return t.client }

// Options returns the options in effect, defaults filled in.
func (t *Transport) Options() Options { return t.opts }

// Ready reports whether Redis answered the last command sent to it (and,
// at startup, whether every stream reader has found where to start).
func (t *Transport) Ready() bool {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	return !closed && t.isConnected() && t.health.isUp() && t.readersStarted.Load() == t.readers
}

// readerStarted records that one more stream reader knows where to start.
func (t *Transport) readerStarted() { t.readersStarted.Add(1) }

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close stops the transport: it refuses new publications, gives the
// messages waiting in the outbox up to RequestTimeout to be written (those
// still waiting then are counted as publish errors with reason "closed"),
// stops every goroutine and closes the connections. It is idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		var subs []*subscription
		for _, ss := range t.subs {
			subs = append(subs, ss...)
		}
		t.subs = map[string][]*subscription{}
		t.nsubs = 0
		t.mu.Unlock()

		t.out.closeAndFlush(t.opts.RequestTimeout)
		t.cancel()
		for _, s := range subs {
			s.stop()
		}
		t.pubsub.wait()
		// The cancelled context ends the XREADs and the pub/sub receives,
		// whose loops close their dedicated connections (rueidis does not
		// close connections that are checked out); this closes the rest.
		t.client.Close()
		t.wg.Wait()
		t.out.failRemaining()
		t.metrics.subscriptions.Set(0)
		t.metrics.unregister()
	})
	return t.closeErr
}

// Publish implements adapter.Transport. Ephemeral messages are PUBLISHed
// to the namespace's channel; durable ones are queued in the outbox and
// written with XADD, in order. Publish waits for the entry id up to
// RequestTimeout while Redis is reachable; when it is not, or the wait
// times out, it returns "" and the message stays queued, to be written as
// soon as Redis is back. A full outbox gives an error wrapping
// adapter.ErrBufferFull.
func (t *Transport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	res := t.PublishBatch(ctx, []*adapter.Message{msg})
	return res[0].Offset, res[0].Err
}

// PublishBatch implements adapter.BatchPublisher: consecutive durable
// messages are queued together (and pipelined by the outbox writer), and
// consecutive ephemeral ones published in one pipeline, keeping the order
// of msgs.
func (t *Transport) PublishBatch(ctx context.Context, msgs []*adapter.Message) []adapter.PublishResult {
	out := make([]adapter.PublishResult, len(msgs))
	for i := 0; i < len(msgs); {
		j := i + 1
		eph := msgs[i] != nil && msgs[i].Ephemeral()
		for j < len(msgs) && msgs[j] != nil && msgs[j].Ephemeral() == eph {
			j++
		}
		if eph {
			t.publishEphemeral(ctx, msgs[i:j], out[i:j])
		} else {
			t.publishDurable(ctx, msgs[i:j], out[i:j])
		}
		i = j
	}
	return out
}

func (t *Transport) publishDurable(ctx context.Context, msgs []*adapter.Message, out []adapter.PublishResult) {
	if t.isClosed() {
		t.failAll(out, "stream", "closed", adapter.ErrClosed)
		return
	}
	if err := ctx.Err(); err != nil {
		t.failAll(out, "stream", "canceled", err)
		return
	}
	items := make([]*outItem, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	for i, msg := range msgs {
		e, err := t.codec.EncodeEntry(msg)
		if err != nil {
			out[i].Err = err
			t.metrics.publishErrors.WithLabelValues("stream", "encode").Inc()
			continue
		}
		items = append(items, newOutItem(StreamKey(t.opts.StreamName, t.opts.StreamCount, msg.Nsp), e))
		idx = append(idx, i)
	}
	errs := t.out.push(items)
	for k, err := range errs {
		if err != nil {
			out[idx[k]].Err = err
			items[k] = nil
		}
	}
	t.awaitConnection(ctx)
	if !t.isConnected() || !t.health.isUp() {
		return // queued; written when Redis is back
	}
	timer := time.NewTimer(t.opts.RequestTimeout)
	defer timer.Stop()
	gone := t.health.wentAway()
	for k, it := range items {
		if it == nil {
			continue
		}
		select {
		case <-it.done:
			out[idx[k]].Offset, out[idx[k]].Err = it.offset, it.err
			continue
		case <-ctx.Done():
		case <-gone:
		case <-timer.C:
		}
		// Still queued: the caller goes on, the outbox writes it.
		return
	}
}

func (t *Transport) failAll(out []adapter.PublishResult, route, reason string, err error) {
	for i := range out {
		out[i].Err = err
	}
	t.metrics.publishErrors.WithLabelValues(route, reason).Add(float64(len(out)))
}

// publicChannel is the pub/sub channel of a namespace, as Node names it.
func (t *Transport) publicChannel(nsp string) string {
	return t.opts.ChannelPrefix + "#" + nsp + "#"
}

// privateChannel is the channel of one namespace adapter (its responses).
func (t *Transport) privateChannel(nsp, uid string) string {
	return t.opts.ChannelPrefix + "#" + nsp + "#" + uid + "#"
}

func (t *Transport) publishCmd(channel string, payload []byte) rueidis.Completed {
	if t.opts.UseShardedPubSub {
		return t.client.B().Spublish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
	}
	return t.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
}

func (t *Transport) publishEphemeral(ctx context.Context, msgs []*adapter.Message, out []adapter.PublishResult) {
	if t.isClosed() {
		t.failAll(out, "pubsub", "closed", adapter.ErrClosed)
		return
	}
	cmds := make(rueidis.Commands, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	for i, msg := range msgs {
		payload, err := t.codec.EncodePubSub(msg)
		if err != nil {
			out[i].Err = err
			t.metrics.publishErrors.WithLabelValues("pubsub", "encode").Inc()
			continue
		}
		cmds = append(cmds, t.publishCmd(t.publicChannel(msg.Nsp), payload))
		idx = append(idx, i)
	}
	if len(cmds) == 0 {
		return
	}
	t.awaitConnection(ctx)
	if err := t.unavailable(); err != nil {
		// Not buffered, and Redis is known to be away: say so at once
		// rather than wait RequestTimeout for each message.
		for _, i := range idx {
			out[i].Err = fmt.Errorf("cluster: publishing %s: %w", msgs[i].Type, err)
		}
		t.metrics.publishErrors.WithLabelValues("pubsub", "unavailable").Add(float64(len(idx)))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
	defer cancel()
	for k, r := range t.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			t.health.fail(err)
			if isConnErr(err) {
				err = fmt.Errorf("%w: %w", adapter.ErrUnavailable, err)
			}
			out[idx[k]].Err = fmt.Errorf("cluster: publishing %s: %w", msgs[idx[k]].Type, err)
			t.metrics.publishErrors.WithLabelValues("pubsub", "redis").Inc()
			continue
		}
		t.health.ok()
		t.metrics.published.WithLabelValues("pubsub").Inc()
	}
}

// unavailable returns an error wrapping adapter.ErrUnavailable when Redis
// is known to be unreachable (never connected, or the last command or PING
// failed for a connection reason), nil otherwise. The PING loop and the
// outbox writer keep probing, so the state recovers on its own.
func (t *Transport) unavailable() error {
	if !t.isConnected() {
		return fmt.Errorf("%w: not connected to Redis yet", adapter.ErrUnavailable)
	}
	if !t.health.isUp() {
		return fmt.Errorf("%w: Redis is unreachable", adapter.ErrUnavailable)
	}
	return nil
}

// PublishResponse implements adapter.Transport: PUBLISH (or SPUBLISH) to
// the private channel of the requesting namespace adapter.
func (t *Transport) PublishResponse(ctx context.Context, toUID string, msg *adapter.Message) error {
	if t.isClosed() {
		t.metrics.publishErrors.WithLabelValues("response", "closed").Inc()
		return adapter.ErrClosed
	}
	payload, err := t.codec.EncodePubSub(msg)
	if err != nil {
		t.metrics.publishErrors.WithLabelValues("response", "encode").Inc()
		return err
	}
	t.awaitConnection(ctx)
	ctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
	defer cancel()
	if err := t.client.Do(ctx, t.publishCmd(t.privateChannel(msg.Nsp, toUID), payload)).Error(); err != nil {
		t.health.fail(err)
		t.metrics.publishErrors.WithLabelValues("response", "redis").Inc()
		return fmt.Errorf("cluster: publishing %s response: %w", msg.Type, err)
	}
	t.health.ok()
	t.metrics.published.WithLabelValues("response").Inc()
	return nil
}

// ServerCount implements adapter.Transport as Node does: the number of
// connections subscribed to the namespace's public channel (PUBSUB NUMSUB,
// or SHARDNUMSUB), summed over every node of a Redis Cluster.
func (t *Transport) ServerCount(ctx context.Context, nsp string) (int, error) {
	if t.isClosed() {
		return 0, adapter.ErrClosed
	}
	t.awaitConnection(ctx)
	if err := t.unavailable(); err != nil {
		return 0, fmt.Errorf("cluster: counting servers of %s: %w", nsp, err)
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
	defer cancel()
	ch := t.publicChannel(nsp)
	count := func(c rueidis.Client) (int, error) {
		var cmd rueidis.Completed
		if t.opts.UseShardedPubSub {
			cmd = c.B().PubsubShardnumsub().Channel(ch).Build()
		} else {
			cmd = c.B().PubsubNumsub().Channel(ch).Build()
		}
		arr, err := c.Do(ctx, cmd).ToArray()
		if err != nil {
			return 0, err
		}
		if len(arr) != 2 {
			return 0, fmt.Errorf("cluster: unexpected NUMSUB reply of %d elements", len(arr))
		}
		n, err := arr[1].AsInt64()
		return int(n), err
	}
	var total int
	var err error
	if t.client.Mode() == rueidis.ClientModeCluster {
		for _, c := range t.client.Nodes() {
			n, e := count(c)
			if e != nil {
				err = errors.Join(err, e)
				continue
			}
			total += n
		}
	} else {
		total, err = count(t.client)
	}
	if err != nil {
		t.health.fail(err)
		if isConnErr(err) {
			err = fmt.Errorf("%w: %w", adapter.ErrUnavailable, err)
		}
		return total, fmt.Errorf("cluster: counting servers of %s: %w", nsp, err)
	}
	t.health.ok()
	return total, nil
}

// Subscribe implements adapter.Transport. It subscribes to the namespace's
// public channel and to the adapter's private one (on the node's shared
// pub/sub connection, or, with sharded pub/sub, on the node's connection
// to the master of each channel's slot), and registers h for the
// namespace's stream entries (read by the node's stream readers). While
// Redis is reachable it waits (up to RequestTimeout, or ctx) for the
// subscriptions to be confirmed, so that the node is counted by
// ServerCount when it returns; otherwise it returns at once and the
// subscriptions are made when Redis is back.
func (t *Transport) Subscribe(ctx context.Context, nsp, uid string, h adapter.Handler) (func(), error) {
	if h == nil || nsp == "" || uid == "" {
		return nil, fmt.Errorf("cluster: Subscribe needs a namespace, a uid and a handler")
	}
	s := &subscription{
		t: t, nsp: nsp, uid: uid, h: h,
		public:  t.publicChannel(nsp),
		private: t.privateChannel(nsp, uid),
		ready:   make(chan struct{}),
	}
	s.want = 2 // both channels, confirmed one by one (see confirm)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, adapter.ErrClosed
	}
	t.subs[nsp] = append(append([]*subscription(nil), t.subs[nsp]...), s)
	t.nsubs++
	// Set under t.mu: two changes racing cannot leave the older value.
	t.metrics.subscriptions.Set(float64(t.nsubs))
	t.mu.Unlock()
	t.pubsub.add(s)
	unsubscribe := func() { t.unsubscribe(s) }
	t.awaitConnection(ctx)
	if !t.isConnected() || !t.health.isUp() {
		return unsubscribe, nil
	}
	timer := time.NewTimer(t.opts.RequestTimeout)
	defer timer.Stop()
	select {
	case <-s.ready:
	case <-ctx.Done():
	case <-t.ctx.Done():
	case <-timer.C:
		t.log.Warn("cluster: pub/sub subscription not confirmed yet, going on", "nsp", nsp, "uid", uid, "after", t.opts.RequestTimeout)
	}
	return unsubscribe, nil
}

func (t *Transport) unsubscribe(s *subscription) {
	t.mu.Lock()
	ss := t.subs[s.nsp]
	kept := make([]*subscription, 0, len(ss))
	for _, x := range ss {
		if x != s {
			kept = append(kept, x)
		}
	}
	t.nsubs -= len(ss) - len(kept)
	if len(kept) == 0 {
		delete(t.subs, s.nsp)
	} else {
		t.subs[s.nsp] = kept
	}
	if !t.closed { // Close sets it to 0
		t.metrics.subscriptions.Set(float64(t.nsubs))
	}
	t.mu.Unlock()
	s.closed.Store(true)
	t.pubsub.remove(s)
	s.stop()
}

// stop ends the deliveries to the subscription (its channels are left on
// the shared connections, which Close closes).
func (s *subscription) stop() {
	s.closed.Store(true)
}

// subscribers returns the subscriptions of nsp.
func (t *Transport) subscribers(nsp string) []*subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.subs[nsp]
}

// malformed counts and logs (rate-limited) a message that was skipped.
func (t *Transport) malformed(source, id string, err error, attrs ...any) {
	reason := reasonLabel(err)
	t.metrics.malformed.WithLabelValues(source, reason).Inc()
	level := slog.LevelWarn
	if !t.logLimit.allow() {
		level = slog.LevelDebug
	}
	args := append([]any{"source", source, "reason", reason, "err", err}, attrs...)
	if id != "" {
		args = append(args, "id", id)
	}
	t.log.Log(context.Background(), level, "cluster: skipping a message that cannot be decoded", args...)
}

// limiter allows one event per second; the rest are logged at Debug.
type limiter struct {
	mu   sync.Mutex
	last time.Time
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= time.Second {
		l.last = now
		return true
	}
	return false
}

// streamID parses a stream entry id; anything else (an id Redis would not
// write) is the zero id, before every entry.
func streamID(id string) adapter.Offset {
	o, _ := adapter.ParseOffset(id)
	return o
}

// idLess reports whether stream id a is before b.
func idLess(a, b string) bool { return streamID(a).Compare(streamID(b)) < 0 }
