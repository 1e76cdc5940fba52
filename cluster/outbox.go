package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
)

// outItem is one durable message waiting to be written with XADD.
type outItem struct {
	key    string
	entry  Entry
	enq    time.Time
	done   chan struct{} // closed once offset/err are set
	offset string
	err    error
	// unknown is set when the XADD was sent but its reply was lost (the
	// connection broke, or the request timed out): Redis may have
	// written the entry. The writer then looks for it in the stream
	// before sending it again, so that it is written exactly once.
	unknown bool
}

func newOutItem(key string, e Entry) *outItem {
	return &outItem{key: key, entry: e, enq: time.Now(), done: make(chan struct{})}
}

// outbox is the bounded, ordered buffer of durable messages, and its writer
// goroutine. Messages are written in the order they were queued (per
// stream), each exactly once: a batch that fails is retried from its first
// unwritten message after a backoff, and a reply lost with the connection
// is reconciled against the stream before anything is sent again.
type outbox struct {
	t *Transport

	mu       sync.Mutex
	items    []*outItem
	closed   bool
	progress chan struct{} // closed and replaced whenever items shrink
	signal   chan struct{} // something was queued

	wctx    context.Context // the writer's; outlives t.ctx to flush at Close
	wcancel context.CancelFunc
	done    chan struct{}

	lastAcked map[string]string // stream -> id of our last acknowledged XADD; writer only
}

// maxWriteBatch bounds the XADDs sent in one pipeline.
const maxWriteBatch = 512

func newOutbox(t *Transport) *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{
		t: t, progress: make(chan struct{}), signal: make(chan struct{}, 1),
		wctx: ctx, wcancel: cancel, done: make(chan struct{}),
		lastAcked: map[string]string{},
	}
}

func (o *outbox) start() { go o.run() }

// push queues items in order; each gets nil, or an error wrapping
// adapter.ErrBufferFull (or adapter.ErrClosed) if it was not queued.
func (o *outbox) push(items []*outItem) []error {
	errs := make([]error, len(items))
	if len(items) == 0 {
		return errs
	}
	m := o.t.metrics
	o.mu.Lock()
	capacity := o.t.opts.PublishBufferSize
	full := 0
	for i, it := range items {
		switch {
		case o.closed:
			errs[i] = adapter.ErrClosed
			m.publishErrors.WithLabelValues("stream", "closed").Inc()
		case len(o.items) >= capacity:
			errs[i] = fmt.Errorf("cluster: %d messages already wait for Redis: %w", capacity, adapter.ErrBufferFull)
			m.outboxFull.Inc()
			m.publishErrors.WithLabelValues("stream", "buffer_full").Inc()
			full++
		default:
			o.items = append(o.items, it)
		}
	}
	// Set under o.mu: a push and a removeDone racing cannot leave the
	// older value.
	m.outboxMessages.Set(float64(len(o.items)))
	o.mu.Unlock()
	if full > 0 && o.t.logLimit.allow() {
		o.t.log.Warn("cluster: publish buffer full, messages refused", "refused", full, "capacity", capacity)
	}
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return errs
}

// peek returns up to n items from the head of the queue.
func (o *outbox) peek(n int) []*outItem {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*outItem(nil), o.items[:min(n, len(o.items))]...)
}

// resolve completes it and reports whether it was still pending.
func (o *outbox) resolve(it *outItem, offset string, err error) {
	it.offset, it.err = offset, err
	close(it.done)
	if err == nil {
		o.t.metrics.published.WithLabelValues("stream").Inc()
		o.t.metrics.publishWait.Observe(time.Since(it.enq).Seconds())
	}
}

// removeDone drops the completed items from the queue.
func (o *outbox) removeDone() {
	o.mu.Lock()
	kept := o.items[:0]
	for _, it := range o.items {
		select {
		case <-it.done:
		default:
			kept = append(kept, it)
		}
	}
	clear(o.items[len(kept):])
	o.items = kept
	o.t.metrics.outboxMessages.Set(float64(len(kept)))
	close(o.progress)
	o.progress = make(chan struct{})
	o.mu.Unlock()
}

// run is the writer goroutine.
func (o *outbox) run() {
	defer close(o.done)
	t := o.t
	var bo backoff
	for {
		batch := o.peek(maxWriteBatch)
		if len(batch) == 0 {
			select {
			case <-o.signal:
				continue
			case <-o.wctx.Done():
				return
			}
		}
		if !t.waitConnected(o.wctx) {
			return
		}
		if err := o.reconcile(batch); err != nil {
			t.health.fail(err)
			t.log.Debug("cluster: checking the stream for unacknowledged XADDs failed", "err", err)
			if !bo.wait(o.wctx, t.health) {
				return
			}
			continue
		}
		o.removeDone()
		if batch = o.peek(maxWriteBatch); len(batch) == 0 {
			continue
		}
		if err := o.write(batch); err != nil {
			t.health.fail(err)
			if t.logLimit.allow() {
				t.log.Warn("cluster: writing to the stream failed, will retry", "err", err, "waiting", len(o.peek(maxWriteBatch)))
			}
			if !bo.wait(o.wctx, t.health) {
				return
			}
			continue
		}
		t.health.ok()
		bo.reset()
	}
}

// write sends the XADDs of batch in one pipeline and completes what was
// written. It returns the first error that leaves items to retry.
func (o *outbox) write(batch []*outItem) error {
	t := o.t
	c := t.client
	maxLen := strconv.FormatInt(t.opts.MaxLen, 10)
	cmds := make(rueidis.Commands, len(batch))
	for i, it := range batch {
		cmds[i] = c.B().Arbitrary("XADD").Keys(it.key).Args("MAXLEN", "~", maxLen, "*").Args(it.entry.FieldValues()...).Build()
	}
	ctx, cancel := context.WithTimeout(o.wctx, t.opts.RequestTimeout)
	start := time.Now()
	res := c.DoMulti(ctx, cmds...)
	cancel()
	t.metrics.xaddDuration.Observe(time.Since(start).Seconds())
	var retryErr error
	for i, r := range res {
		it := batch[i]
		id, err := r.ToString()
		if err == nil {
			o.resolve(it, id, nil)
			o.lastAcked[it.key] = id
			continue
		}
		if _, isRedis := rueidis.IsRedisErr(err); isRedis {
			if !isTransient(err) {
				// An error reply that retrying cannot fix (WRONGTYPE,
				// NOPERM...): the message is dropped, loudly.
				t.metrics.publishErrors.WithLabelValues("stream", "redis").Inc()
				t.log.Error("cluster: Redis refused a stream entry, message dropped", "stream", it.key, "type", it.entry.Type.String(), "err", err)
				o.resolve(it, "", fmt.Errorf("cluster: XADD to %s: %w", it.key, err))
				continue
			}
		} else {
			it.unknown = true
		}
		if retryErr == nil {
			retryErr = fmt.Errorf("cluster: XADD to %s: %w", it.key, err)
		}
	}
	o.removeDone()
	return retryErr
}

// reconcile finds, for every stream with XADDs of unknown outcome at the
// head of batch, which of them Redis did write: our entries after the last
// id we know we wrote. Those that are found are completed with their id;
// the others are sent again. Ours are told apart by their uid (one per
// namespace adapter of this process) and contents; since the writer sends
// the messages of a stream in order, the written ones are a prefix.
func (o *outbox) reconcile(batch []*outItem) error {
	byKey := map[string][]*outItem{}
	var keys []string
	for _, it := range batch {
		if !it.unknown {
			continue
		}
		if _, ok := byKey[it.key]; !ok {
			keys = append(keys, it.key)
		}
		byKey[it.key] = append(byKey[it.key], it)
	}
	for _, key := range keys {
		if err := o.reconcileKey(key, byKey[key]); err != nil {
			return err
		}
	}
	return nil
}

// reconcilePage is the number of entries one XRANGE of reconcile reads.
const reconcilePage = 1000

func (o *outbox) reconcileKey(key string, pending []*outItem) error {
	t := o.t
	c := t.client
	start := "-"
	if last, ok := o.lastAcked[key]; ok {
		start = "(" + last
	} else {
		// Never acknowledged on this stream: look from a little before
		// the first message was queued (entry ids are Redis's clock).
		start = strconv.FormatInt(pending[0].enq.Add(-time.Minute).UnixMilli(), 10) + "-0"
	}
	k := 0
	for k < len(pending) {
		ctx, cancel := context.WithTimeout(o.wctx, t.opts.RequestTimeout)
		entries, err := c.Do(ctx, c.B().Xrange().Key(key).Start(start).End("+").Count(reconcilePage).Build()).AsXRange()
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: XRANGE %s: %w", key, err)
		}
		for _, e := range entries {
			if k < len(pending) && sameEntry(e.FieldValues, pending[k].entry) {
				o.resolve(pending[k], e.ID, nil)
				o.lastAcked[key] = e.ID
				t.metrics.xaddReconciled.Inc()
				k++
			}
		}
		if len(entries) < reconcilePage {
			break
		}
		start = "(" + entries[len(entries)-1].ID
	}
	if k > 0 {
		t.log.Info("cluster: XADDs whose reply was lost were found in the stream, not written again", "stream", key, "found", k)
	}
	for _, it := range pending[k:] {
		it.unknown = false
	}
	return nil
}

func sameEntry(f map[string]string, e Entry) bool {
	if f["uid"] != e.UID || f["nsp"] != e.Nsp || f["type"] != strconv.Itoa(int(e.Type)) {
		return false
	}
	d, ok := f["data"]
	if e.Data == "" {
		return !ok || d == ""
	}
	return d == e.Data
}

// closeAndFlush refuses new messages and waits up to timeout for the
// queued ones to be written, then stops the writer.
func (o *outbox) closeAndFlush(timeout time.Duration) {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
wait:
	for {
		o.mu.Lock()
		n, progress := len(o.items), o.progress
		o.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-progress:
		case <-deadline.C:
			break wait
		}
	}
	o.wcancel()
	<-o.done
}

// failRemaining completes what could not be written before Close.
func (o *outbox) failRemaining() {
	o.mu.Lock()
	left := o.items
	o.items = nil
	o.mu.Unlock()
	for _, it := range left {
		o.resolve(it, "", adapter.ErrClosed)
	}
	if len(left) > 0 {
		o.t.metrics.publishErrors.WithLabelValues("stream", "closed").Add(float64(len(left)))
		o.t.log.Warn("cluster: closed with messages not written to Redis", "messages", len(left))
	}
	o.t.metrics.outboxMessages.Set(0)
}
