package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// DefaultMaxLen is the default bound of a MemoryLog: Node's default maxLen
// of the Redis stream, so a single node keeps as much history as a cluster.
const DefaultMaxLen = 10_000

// readBatch is how many log entries ReadAfter examines per lock hold:
// small enough that appends never wait long behind a restore, large enough
// that the lock is not taken per packet.
const readBatch = 256

// MemoryLogOptions configure a MemoryLog. The zero value is valid.
type MemoryLogOptions struct {
	// MaxLen bounds the number of packets held; appending beyond it drops
	// the oldest. Default DefaultMaxLen.
	MaxLen int
	// MaxAge, when set, also drops packets older than it, checked on
	// Append and ReadAfter (no goroutine). Set it to the maximum
	// disconnection duration: an older packet belongs to no session that
	// can still be restored.
	MaxAge time.Duration
}

// MemoryLog is a bounded in-memory PacketLog for a single node: the
// adapter appends each broadcast that connection state recovery may replay
// and gives the returned offset to the clients, and Restore reads it back.
//
// Offsets look like Redis stream ids, "<ms>-<seq>", and are strictly
// increasing even if the wall clock steps back (the sequence number then
// grows within the last millisecond, as Redis does).
//
// A MemoryLog starts no goroutine and needs no Close.
type MemoryLog struct {
	maxLen int
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	ring    []logEntry     // grows up to maxLen, then wraps
	head    int            // ring index of the oldest entry
	n       int            // entries held
	first   uint64         // absolute index (appends so far) of the oldest entry
	last    adapter.Offset // offset of the newest entry ever appended
	hasLast bool           // whether last is set
}

type logEntry struct {
	id     adapter.Offset
	offset string // id.String(), computed once
	nsp    string
	uid    string
	data   []any
	opts   PacketOptions
}

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog(opts MemoryLogOptions) *MemoryLog {
	return newMemoryLog(opts, time.Now)
}

func newMemoryLog(opts MemoryLogOptions, now func() time.Time) *MemoryLog {
	if opts.MaxLen <= 0 {
		opts.MaxLen = DefaultMaxLen
	}
	return &MemoryLog{maxLen: opts.MaxLen, maxAge: opts.MaxAge, now: now}
}

// Append records a broadcast of namespace nsp and returns its offset, the
// value to append to the packet's arguments for the clients. data is the
// event name followed by its arguments; the log keeps a copy of the slice
// but shares the arguments, which must not be modified afterwards.
func (l *MemoryLog) Append(nsp string, data []any, opts PacketOptions) string {
	now := l.now()
	ms := uint64(max(now.UnixMilli(), 0))

	l.mu.Lock()
	defer l.mu.Unlock()
	id := adapter.Offset{Ms: ms}
	if l.hasLast && ms <= l.last.Ms {
		id = l.last.Next()
	} else if id == (adapter.Offset{}) {
		id.Seq = 1 // Redis refuses 0-0 as an id; stay valid for it
	}
	l.last, l.hasLast = id, true
	l.appendLocked(now, id, nsp, "", data, opts)
	return id.String()
}

// ErrOutOfOrder is returned by MemoryLog.AppendAt for an offset that is not
// after the newest offset of the log.
var ErrOutOfOrder = errors.New("recovery: offset not after the end of the log")

// AppendAt records the broadcast p at p.Offset, chosen elsewhere (by a
// transport that numbers its messages itself), which must be after every
// offset appended so far: a log that accepted an older offset after a
// restore had read past it would hand that restore an incomplete replay.
// Like Append, it copies p.Data's slice and shares its values.
func (l *MemoryLog) AppendAt(p Packet) error {
	id, err := adapter.ParseOffset(p.Offset)
	if err != nil {
		return err
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hasLast && id.Compare(l.last) <= 0 {
		return fmt.Errorf("%w: %s after %s", ErrOutOfOrder, p.Offset, l.last)
	}
	l.last, l.hasLast = id, true
	l.appendLocked(now, id, p.Nsp, p.UID, p.Data, p.Opts)
	return nil
}

func (l *MemoryLog) appendLocked(now time.Time, id adapter.Offset, nsp, uid string, data []any, opts PacketOptions) {
	l.trimAgeLocked(now)
	if l.n == l.maxLen {
		l.dropOldestLocked()
	}
	if l.n == len(l.ring) {
		l.growLocked()
	}
	l.ring[(l.head+l.n)%len(l.ring)] = logEntry{
		id:     id,
		offset: id.String(),
		nsp:    nsp,
		uid:    uid,
		data:   slices.Clone(data),
		opts:   PacketOptions{Rooms: slices.Clone(opts.Rooms), Except: slices.Clone(opts.Except), Volatile: opts.Volatile},
	}
	l.n++
}

// growLocked doubles the ring (up to maxLen), moving the entries to its
// start in order, so memory follows what is held rather than maxLen.
func (l *MemoryLog) growLocked() {
	size := min(max(2*len(l.ring), 64), l.maxLen)
	ring := make([]logEntry, size)
	for i := range l.n {
		ring[i] = l.at(i)
	}
	l.ring, l.head = ring, 0
}

// at returns the i-th oldest entry.
func (l *MemoryLog) at(i int) logEntry { return l.ring[(l.head+i)%len(l.ring)] }

func (l *MemoryLog) dropOldestLocked() {
	l.ring[l.head] = logEntry{} // let the packet be collected
	l.head = (l.head + 1) % len(l.ring)
	l.n--
	l.first++
}

func (l *MemoryLog) trimAgeLocked(now time.Time) {
	if l.maxAge <= 0 {
		return
	}
	cutoff := now.Add(-l.maxAge).UnixMilli()
	for l.n > 0 && int64(l.at(0).id.Ms) < cutoff {
		l.dropOldestLocked()
	}
}

// Len returns the number of packets held.
func (l *MemoryLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimAgeLocked(l.now())
	return l.n
}

// ReadAfter implements PacketLog. It visits copies of at most readBatch
// entries at a time, without holding the lock while visit runs.
func (l *MemoryLog) ReadAfter(ctx context.Context, nsp, offset string, visit func(Packet) error) (string, error) {
	off, err := adapter.ParseOffset(offset)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.trimAgeLocked(l.now())
	i := sort.Search(l.n, func(i int) bool { return l.at(i).id.Compare(off) >= 0 })
	if i == l.n || l.at(i).id != off {
		l.mu.Unlock()
		return "", fmt.Errorf("%w: %s", ErrOffsetNotFound, offset)
	}
	// Absolute indexes survive the ring moving under us: cursor is the
	// last entry consumed, endAbs the last one to read.
	cursor := l.first + uint64(i)
	endAbs := l.first + uint64(l.n) - 1
	end := l.at(l.n - 1).offset
	l.mu.Unlock()

	batch := make([]Packet, 0, readBatch)
	for cursor < endAbs {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		batch = batch[:0]
		l.mu.Lock()
		l.trimAgeLocked(l.now())
		if cursor+1 < l.first {
			l.mu.Unlock()
			// Entries we had not read yet were dropped: what was visited
			// so far is not the whole story.
			return "", fmt.Errorf("%w: %s was trimmed during the read", ErrOffsetNotFound, offset)
		}
		stop := min(endAbs, cursor+readBatch)
		for a := cursor + 1; a <= stop; a++ {
			e := l.at(int(a - l.first))
			if e.nsp == nsp {
				batch = append(batch, Packet{Offset: e.offset, Nsp: e.nsp, UID: e.uid, Data: e.data, Opts: e.opts})
			}
		}
		l.mu.Unlock()
		cursor = stop
		for _, p := range batch {
			if err := visit(p); err != nil {
				return "", err
			}
		}
	}
	return end, nil
}
