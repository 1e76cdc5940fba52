package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// reader reads one stream on its own dedicated connection from the id of
// the last entry it read: after a failure it resumes there, so every entry
// written meanwhile is delivered, once, in order, unless MAXLEN trimmed it
// first; that is detected and counted.
//
// Each read is MULTI; XREAD; XINFO STREAM; EXEC: the stream's counters
// describe exactly the state the entries were read from, so entries trimmed
// between two reads are counted whenever the reader reads past them (a
// separate XINFO, before or after the XREAD, races with the writers and
// misses the gaps the XREAD silently skips). Redis does not block inside
// MULTI: when there is nothing to read, an XREAD BLOCK waits for new
// entries, and its result is dropped, read again by the next transaction.
type reader struct {
	t   *Transport
	key string
	// last is the id of the last entry read ("" until the start position
	// is known).
	last string

	// For gap and lag accounting (Redis 7+): baseAdded is the stream's
	// entries-added counter at the position just before the first entry
	// read since, and readSince the entries read since then.
	haveCounters bool
	baseAdded    int64
	readSince    int64
	warnedOld    bool

	// lag is shared with the lag probe (see lagLoop).
	lag lagState
}

func newReader(t *Transport, key string) *reader {
	return &reader{t: t, key: key}
}

// streamInfo is what the reader needs from XINFO STREAM.
type streamInfo struct {
	exists        bool
	length        int64
	lastGenerated string
	entriesAdded  int64
	// firstID is the id of the first entry in the stream: Redis 7's
	// recorded-first-entry-id, or before 7 the id of first-entry.
	firstID        string
	recordedCounts bool // entries-added and recorded-first-entry-id present (Redis 7+)
}

func (r *reader) info(ctx context.Context) (streamInfo, error) {
	c := r.t.client
	ctx, cancel := context.WithTimeout(ctx, r.t.opts.RequestTimeout)
	defer cancel()
	res := c.Do(ctx, c.B().XinfoStream().Key(r.key).Build())
	if err := res.Error(); err != nil && !isNoSuchKey(err) {
		return streamInfo{}, fmt.Errorf("cluster: XINFO STREAM %s: %w", r.key, err)
	}
	msg, _ := res.ToMessage()
	return r.parseInfo(&msg)
}

func isNoSuchKey(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.Contains(strings.ToLower(re.Error()), "no such key")
}

// parseInfo reads an XINFO STREAM reply; "no such key" is a stream that
// does not exist.
func (r *reader) parseInfo(msg *rueidis.RedisMessage) (streamInfo, error) {
	m, err := msg.AsMap()
	if err != nil {
		if isNoSuchKey(err) {
			return streamInfo{}, nil
		}
		return streamInfo{}, fmt.Errorf("cluster: XINFO STREAM %s: %w", r.key, err)
	}
	si := streamInfo{exists: true}
	get := func(k string) *rueidis.RedisMessage {
		v, ok := m[k]
		if !ok {
			return nil
		}
		return &v
	}
	str := func(k string) (string, error) {
		if v := get(k); v != nil {
			return v.ToString()
		}
		return "", errors.New("missing " + k)
	}
	num := func(k string) (int64, error) {
		if v := get(k); v != nil {
			return v.AsInt64()
		}
		return 0, errors.New("missing " + k)
	}
	si.length, _ = num("length")
	si.lastGenerated, err = str("last-generated-id")
	if err != nil {
		return streamInfo{}, fmt.Errorf("cluster: XINFO STREAM %s: %w", r.key, err)
	}
	added, err1 := num("entries-added")
	first, err2 := str("recorded-first-entry-id")
	if err1 == nil && err2 == nil {
		si.recordedCounts, si.entriesAdded, si.firstID = true, added, first
	} else if v := get("first-entry"); v != nil {
		if e, err := v.ToArray(); err == nil && len(e) > 0 {
			si.firstID, _ = e[0].ToString()
		}
	}
	return si, nil
}

// start sets the position to the end of the stream: like Node's "$", the
// reader gets what is written after it started, but as a concrete id, so
// that nothing written between two reads is missed.
func (r *reader) start(ctx context.Context) error {
	si, err := r.info(ctx)
	if err != nil {
		return err
	}
	if !si.exists {
		r.last = "0-0"
		r.haveCounters, r.baseAdded, r.readSince = true, 0, 0
	} else {
		r.last = si.lastGenerated
		r.haveCounters, r.baseAdded, r.readSince = si.recordedCounts, si.entriesAdded, 0
	}
	r.publishPosition()
	return nil
}

// publishPosition hands the reader's position to the lag probe.
func (r *reader) publishPosition() {
	r.lag.moved(r.last, r.baseAdded+r.readSince, r.haveCounters)
}

// checkGap counts the entries after r.last that were trimmed before being
// read. si must be the state of the stream the entries about to be
// delivered (read) were read from: the transaction's XINFO.
func (r *reader) checkGap(si streamInfo, read []rueidis.XRangeEntry) {
	t := r.t
	if !si.exists {
		return
	}
	if !si.recordedCounts {
		if !r.warnedOld {
			r.warnedOld = true
			t.log.Warn("cluster: Redis is older than 7.0, trimmed entries cannot be counted", "stream", r.key)
		}
		// The first entry left is after our position: entries may have
		// been trimmed there (or it just follows the last one read, which
		// was trimmed itself: Redis < 7 cannot tell). "0-0" is a stream
		// that did not exist when the reader started.
		if r.last != "0-0" && si.firstID != "" && idLess(r.last, si.firstID) {
			t.log.Error("cluster: stream entries may have been trimmed (MAXLEN) before this node read them: messages possibly lost, count unknown before Redis 7",
				"stream", r.key, "last_read", r.last, "first_remaining", si.firstID, "max_len", t.opts.MaxLen)
		}
		return
	}
	if !r.haveCounters {
		// Started on a Redis without the counters. Our position's count
		// is known once a read returns everything after it.
		if len(read) >= t.opts.ReadCount {
			return
		}
		r.haveCounters = true
		r.baseAdded, r.readSince = si.entriesAdded-int64(len(read)), 0
		r.publishPosition()
		return
	}
	// MAXLEN trims from the head: the entries removed are the first
	// entriesAdded-length ever added. Those we read (or skipped at start)
	// are the first baseAdded+readSince. More removed than that, with the
	// first remaining entry after our position, means entries we never
	// read were trimmed.
	removed := si.entriesAdded - si.length
	if lost := removed - (r.baseAdded + r.readSince); lost > 0 && (si.length == 0 || idLess(r.last, si.firstID)) {
		t.metrics.entriesLost.WithLabelValues(r.key).Add(float64(lost))
		t.log.Error("cluster: stream entries were trimmed (MAXLEN) before this node read them: messages lost",
			"stream", r.key, "last_read", r.last, "first_remaining", si.firstID, "lost", lost, "max_len", t.opts.MaxLen)
		r.baseAdded, r.readSince = removed, 0
		r.publishPosition()
	}
}

func (r *reader) run() {
	t := r.t
	ctx := t.ctx
	var bo backoff
	var dc rueidis.DedicatedClient
	var release func()
	drop := func() {
		if dc != nil {
			dc.Close()
			release()
			dc = nil
		}
	}
	defer drop()
	if !t.waitConnected(ctx) {
		return
	}
	for r.last == "" {
		if err := r.start(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.failed(err)
			if !bo.wait(ctx, t.health) {
				return
			}
		}
	}
	t.readerStarted()
	bo.reset()
	for {
		// Backpressure: while the handlers are behind, stop reading and
		// leave the backlog in the stream (the lag probe reports it).
		if _, err := t.dispatch.waitRoom(ctx); err != nil {
			return
		}
		if dc == nil {
			dc, release = t.client.Dedicate()
		}
		entries, si, err := r.read(ctx, dc)
		if err == nil {
			r.checkGap(si, entries)
			r.deliver(entries)
			r.reportLag(si, len(entries))
			if len(entries) == 0 {
				// Caught up: wait for what comes next.
				err = r.wait(ctx, dc)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The connection may be stuck in a blocked XREAD or broken:
			// never reuse it.
			drop()
			r.failed(err)
			if !bo.wait(ctx, t.health) {
				return
			}
			continue
		}
		t.health.ok()
		bo.reset()
	}
}

// reportLag sets the lag gauges after a read of n entries from the state
// si.
func (r *reader) reportLag(si streamInfo, n int) {
	t := r.t
	now := time.Now()
	if n < t.opts.ReadCount {
		r.lag.readerCaughtUp(t.metrics, r.key, now)
		return
	}
	r.lag.readerBehind(t.metrics, r.key, r.last, now)
	if si.recordedCounts && r.haveCounters {
		r.lag.setEntries(t.metrics, r.key, si.entriesAdded-(r.baseAdded+r.readSince))
	}
}

func (r *reader) failed(err error) {
	t := r.t
	t.health.fail(err)
	t.metrics.readerErrors.WithLabelValues(r.key).Inc()
	if t.logLimit.allow() {
		t.log.Warn("cluster: reading the stream failed, will resume from the last entry read", "stream", r.key, "last_id", r.last, "err", err)
	}
}

// read reads up to ReadCount entries after r.last together with the
// stream's state, in one transaction: MULTI; XREAD; XINFO STREAM; EXEC.
// It does not block.
func (r *reader) read(ctx context.Context, dc rueidis.DedicatedClient) ([]rueidis.XRangeEntry, streamInfo, error) {
	t := r.t
	ctx, cancel := context.WithTimeout(ctx, t.opts.RequestTimeout)
	defer cancel()
	res := dc.DoMulti(ctx,
		dc.B().Multi().Build(),
		dc.B().Xread().Count(int64(t.opts.ReadCount)).Streams().Key(r.key).Id(r.last).Build(),
		dc.B().XinfoStream().Key(r.key).Build(),
		dc.B().Exec().Build())
	fail := func(err error) ([]rueidis.XRangeEntry, streamInfo, error) {
		return nil, streamInfo{}, fmt.Errorf("cluster: XREAD %s from %s: %w", r.key, r.last, err)
	}
	// The replies to MULTI and to the queued commands (QUEUED): an error
	// there (MOVED, a broken connection) aborts the transaction.
	for _, q := range res[:3] {
		if err := q.Error(); err != nil {
			return fail(err)
		}
	}
	replies, err := res[3].ToArray()
	if err != nil {
		return fail(fmt.Errorf("EXEC: %w", err))
	}
	if len(replies) != 2 {
		return fail(fmt.Errorf("EXEC returned %d replies, want 2", len(replies)))
	}
	xr, err := replies[0].AsXRead()
	if err != nil && !rueidis.IsRedisNil(err) {
		return fail(err)
	}
	si, err := r.parseInfo(&replies[1])
	if err != nil {
		return nil, streamInfo{}, err
	}
	return xr[r.key], si, nil
}

// wait runs one XREAD BLOCK from r.last, only to wait until there is
// something to read (or BlockTime passes); what it returns is read again,
// with the stream's state, by the next read. The command is cancelled (and
// the caller drops the connection) after BlockTime + RequestTimeout, so
// that a paused or unreachable Redis cannot hold the reader forever, and
// at Close.
func (r *reader) wait(ctx context.Context, dc rueidis.DedicatedClient) error {
	t := r.t
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(t.opts.BlockTime+t.opts.RequestTimeout, cancel)
	defer timer.Stop()
	cmd := dc.B().Xread().Count(1).Block(t.opts.BlockTime.Milliseconds()).
		Streams().Key(r.key).Id(r.last).Build()
	err := dc.Do(ctx, cmd).Error()
	if err == nil || rueidis.IsRedisNil(err) {
		return nil
	}
	if errors.Is(err, context.Canceled) && t.ctx.Err() == nil {
		err = fmt.Errorf("XREAD got no reply in %v: %w", t.opts.BlockTime+t.opts.RequestTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("cluster: XREAD BLOCK %s from %s: %w", r.key, r.last, err)
}

// deliver decodes entries and queues them for the subscriptions of their
// namespace, skipping (with a log line and a counter) what cannot be
// decoded.
func (r *reader) deliver(entries []rueidis.XRangeEntry) {
	t := r.t
	if len(entries) == 0 {
		return
	}
	ds := make([]delivery, 0, len(entries))
	for _, e := range entries {
		r.last = e.ID
		r.readSince++
		msg, err := t.codec.DecodeEntry(e.ID, e.FieldValues)
		if err != nil {
			t.malformed(r.key, e.ID, err)
			continue
		}
		for _, s := range t.subscribers(msg.Nsp) {
			if s.uid != msg.UID {
				ds = append(ds, delivery{sub: s, msg: msg})
			}
		}
	}
	t.metrics.entriesRead.WithLabelValues(r.key).Add(float64(len(entries)))
	r.publishPosition()
	t.dispatch.push(ds...)
}
