package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// reader reads one stream on its own dedicated connection, with XREAD
// BLOCK, from the id of the last entry it read: after a failure it resumes
// there, so every entry written meanwhile is delivered, once, in order,
// unless MAXLEN trimmed it first; that is detected and counted.
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
	exists         bool
	length         int64
	lastGenerated  string
	entriesAdded   int64
	firstID        string
	recordedCounts bool // entries-added and recorded-first-entry-id present (Redis 7+)
}

func (r *reader) info(ctx context.Context) (streamInfo, error) {
	c := r.t.client
	ctx, cancel := context.WithTimeout(ctx, r.t.opts.RequestTimeout)
	defer cancel()
	m, err := c.Do(ctx, c.B().XinfoStream().Key(r.key).Build()).AsMap()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && strings.Contains(strings.ToLower(re.Error()), "no such key") {
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

// checkGap looks whether entries after r.last were trimmed before being
// read, counts them, and updates the lag gauges.
func (r *reader) checkGap(ctx context.Context) error {
	t := r.t
	si, err := r.info(ctx)
	if err != nil {
		return err
	}
	if !si.exists {
		r.lag.setEntries(t.metrics, r.key, 0)
		return nil
	}
	if !si.recordedCounts {
		if !r.warnedOld {
			r.warnedOld = true
			t.log.Warn("cluster: Redis is older than 7.0, trimmed entries cannot be detected", "stream", r.key)
		}
		return nil
	}
	if !r.haveCounters {
		r.haveCounters = true
		r.baseAdded, r.readSince = si.entriesAdded-si.length, 0
		r.publishPosition()
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
	r.lag.setEntries(t.metrics, r.key, si.entriesAdded-(r.baseAdded+r.readSince))
	return nil
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
	resumed := false
	for {
		// Backpressure: while the handlers are behind, stop reading and
		// leave the backlog in the stream.
		waited, err := t.dispatch.waitRoom(ctx)
		if err != nil {
			return
		}
		if waited {
			// Held back: see whether MAXLEN trimmed entries meanwhile,
			// before reading past the gap.
			resumed = true
		}
		if resumed {
			// Back after a failure: did MAXLEN trim what we missed?
			if err := r.checkGap(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.failed(err)
				if !bo.wait(ctx, t.health) {
					return
				}
				continue
			}
			resumed = false
		}
		if dc == nil {
			dc, release = t.client.Dedicate()
		}
		entries, err := r.read(ctx, dc)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The connection may be stuck in a blocked XREAD or broken:
			// never reuse it.
			drop()
			r.failed(err)
			resumed = true
			if !bo.wait(ctx, t.health) {
				return
			}
			continue
		}
		t.health.ok()
		bo.reset()
		r.deliver(entries)
		if len(entries) >= t.opts.ReadCount {
			// Falling behind: watch for trimming and report the lag.
			r.lag.readerBehind(t.metrics, r.key, r.last, time.Now())
			if err := r.checkGap(ctx); err != nil && ctx.Err() == nil {
				resumed = true
			}
		} else {
			r.lag.readerCaughtUp(t.metrics, r.key, time.Now())
		}
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

// read runs one XREAD BLOCK. The command is cancelled (and the caller
// drops the connection) after BlockTime + RequestTimeout, so that a paused
// or unreachable Redis cannot hold the reader forever, and at Close.
func (r *reader) read(ctx context.Context, dc rueidis.DedicatedClient) ([]rueidis.XRangeEntry, error) {
	t := r.t
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(t.opts.BlockTime+t.opts.RequestTimeout, cancel)
	defer timer.Stop()
	cmd := dc.B().Xread().Count(int64(t.opts.ReadCount)).Block(t.opts.BlockTime.Milliseconds()).
		Streams().Key(r.key).Id(r.last).Build()
	res, err := dc.Do(ctx, cmd).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && t.ctx.Err() == nil {
			err = fmt.Errorf("XREAD got no reply in %v: %w", t.opts.BlockTime+t.opts.RequestTimeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("cluster: XREAD %s from %s: %w", r.key, r.last, err)
	}
	return res[r.key], nil
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
