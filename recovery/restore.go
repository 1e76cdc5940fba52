package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// Reason says why a restore failed. The values are the result label of
// sockstream_recovery_attempts_total.
type Reason string

// The reasons of a failed restore. For every one of them the client gets a
// fresh session (socket.recovered is false), as with Node.
const (
	// ReasonExpired: no session for the pid. It expired, was already
	// restored (sessions are restored at most once), was evicted, or never
	// existed.
	ReasonExpired Reason = "expired"
	// ReasonTrimmed: the client's offset is no longer in the packet log
	// (or never was), so the missed packets cannot all be found.
	ReasonTrimmed Reason = "trimmed"
	// ReasonInvalid: a malformed pid or offset, a corrupt stored session,
	// or a session of another namespace.
	ReasonInvalid Reason = "invalid"
	// ReasonError: the store or the log failed (Redis unreachable, ctx
	// done). The session, if it was taken, is lost.
	ReasonError Reason = "error"
)

// RestoreError is the error of a failed restore: the reason, and the error
// behind it (ErrNotFound, ErrExpired, ErrOffsetNotFound, adapter.ErrInvalidOffset,
// ErrInvalidPID, ErrCorrupt, ErrNamespaceMismatch, a ctx or backend error),
// reachable with errors.Is.
type RestoreError struct {
	Reason Reason
	Err    error
}

func (e *RestoreError) Error() string {
	return "recovery: restore failed (" + string(e.Reason) + "): " + e.Err.Error()
}

func (e *RestoreError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of a restore error, or "" when err is nil or
// not a *RestoreError.
func ReasonOf(err error) Reason {
	var re *RestoreError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// ErrNamespaceMismatch: the session was persisted for another namespace.
var ErrNamespaceMismatch = errors.New("recovery: session belongs to another namespace")

// Restored is a successful restore.
type Restored struct {
	// Session is the socket's state: id, rooms (its own id included), data.
	Session Session
	// MissedPackets are the EVENT packets' data the socket missed, in log
	// order: the event name, its arguments and, last, the packet's offset,
	// which is what the client remembers to recover again later.
	MissedPackets [][]any
	// LastOffset is the end of the read: the offset of the last entry of
	// the log when the read began (the client's own offset when nothing
	// followed it). Every live packet at or before it was either replayed
	// in MissedPackets or deliberately left out; see Covers and "Handover"
	// in the package documentation.
	LastOffset string

	last  adapter.Offset
	rooms map[string]struct{}
}

// Covers reports whether the restore already accounted for the live packet
// at offset, which must then not be delivered to the restored socket: it
// is at or before LastOffset. A packet without a valid offset (volatile,
// or with an ack) is never covered.
func (r *Restored) Covers(offset string) bool {
	o, err := adapter.ParseOffset(offset)
	return err == nil && o.Compare(r.last) <= 0
}

// Wants reports whether a live broadcast the adapter held back while the
// restore ran must still be delivered to the restored socket: it is not
// covered by the restore and its rooms and except rooms select the
// session's rooms. Deliver the wanted ones, in the order they arrived,
// after MissedPackets.
func (r *Restored) Wants(p Packet) bool {
	return !r.Covers(p.Offset) && shouldInclude(r.rooms, p.Opts)
}

// Restorer restores sessions from a Store and a PacketLog, with metrics
// and logs. Its zero value is not usable: Store and Log are required.
type Restorer struct {
	Store Store
	Log   PacketLog
	// Metrics, when set, records every attempt.
	Metrics *Metrics
	// Logger receives a debug line per attempt and a warning per backend
	// failure. Default slog.Default(). Pids are never logged, only
	// pid_hash, a short hash to correlate lines.
	Logger *slog.Logger
}

// Restore is Restorer{Store: store, Log: log}.Restore, without metrics.
func Restore(ctx context.Context, store Store, log PacketLog, pid, offset, nsp string) (*Restored, error) {
	r := Restorer{Store: store, Log: log}
	return r.Restore(ctx, pid, offset, nsp)
}

// Restore gives back the session of pid in namespace nsp, with the
// broadcasts it missed after offset (the last offset its client received).
//
// It validates offset (^[0-9]+-[0-9]+$) and pid before touching anything,
// takes the session (at most once: the store deletes it), then reads the
// log after offset and keeps the BROADCAST packets of nsp the socket would
// have received, by Node's rule: the packet's rooms are empty or include
// one of the session's rooms, and its except rooms include none of them.
// Volatile packets are skipped: live delivery never gives them an offset,
// whereas Node replays them.
//
// Either the whole restore succeeds or it fails with a *RestoreError; it
// never returns part of the missed packets. The session is taken first,
// so a replayed pid costs one store lookup and no log read.
func (r *Restorer) Restore(ctx context.Context, pid, offset, nsp string) (*Restored, error) {
	start := time.Now()
	res, err := r.restore(ctx, pid, offset, nsp)
	d := time.Since(start)

	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err != nil {
		reason := ReasonOf(err)
		r.Metrics.observe(string(reason), d, 0)
		level := slog.LevelDebug
		if reason == ReasonError {
			level = slog.LevelWarn
		}
		logger.Log(ctx, level, "recovery: session not restored",
			"pid_hash", PIDHash(pid), "nsp", nsp, "reason", reason, "err", err, "duration", d)
		return nil, err
	}
	r.Metrics.observe(resultRecovered, d, len(res.MissedPackets))
	logger.Debug("recovery: session restored",
		"pid_hash", PIDHash(pid), "nsp", nsp, "missed", len(res.MissedPackets), "last_offset", res.LastOffset, "duration", d)
	return res, nil
}

func (r *Restorer) restore(ctx context.Context, pid, offset, nsp string) (*Restored, error) {
	if _, err := adapter.ParseOffset(offset); err != nil {
		return nil, &RestoreError{Reason: ReasonInvalid, Err: err}
	}
	if !ValidPID(pid) {
		return nil, &RestoreError{Reason: ReasonInvalid, Err: ErrInvalidPID}
	}

	sess, err := r.Store.Take(ctx, pid)
	if err != nil {
		return nil, &RestoreError{Reason: takeReason(err), Err: err}
	}
	if sess.Nsp != "" && sess.Nsp != nsp {
		return nil, &RestoreError{Reason: ReasonInvalid, Err: ErrNamespaceMismatch}
	}

	rooms := make(map[string]struct{}, len(sess.Rooms))
	for _, room := range sess.Rooms {
		rooms[room] = struct{}{}
	}
	var missed [][]any
	from, unsent := replayPlan(sess, offset)
	seen := from == offset // the log checks that from exists
	end, err := r.Log.ReadAfter(ctx, nsp, from, func(p Packet) error {
		if p.Offset == offset {
			seen = true
		}
		if p.Nsp != nsp || p.Opts.Volatile || !unsent(p) || !shouldInclude(rooms, p.Opts) {
			return nil
		}
		// A fresh slice: appending to p.Data could write into the log's
		// backing array.
		data := make([]any, len(p.Data)+1)
		copy(data, p.Data)
		data[len(p.Data)] = p.Offset
		missed = append(missed, data)
		return nil
	})
	if err != nil {
		return nil, &RestoreError{Reason: readReason(err), Err: err}
	}
	if !seen {
		// The client's offset is not a broadcast of the namespace in the
		// log: trimmed, or made up.
		return nil, &RestoreError{Reason: ReasonTrimmed, Err: fmt.Errorf("%w: %s", ErrOffsetNotFound, offset)}
	}
	last, err := adapter.ParseOffset(end)
	if err != nil {
		// The log broke its contract; treat it as a backend failure
		// rather than hand out a handover point that means nothing.
		return nil, &RestoreError{Reason: ReasonError, Err: err}
	}
	return &Restored{Session: *sess, MissedPackets: missed, LastOffset: end, last: last, rooms: rooms}, nil
}

// replayPlan returns where to read the log from and which packets read the
// client had not been sent, for a client whose last offset is offset.
//
// By the offset alone (Node's rule) the client was sent everything up to
// it: read after it, keep everything. With the mark of offset (see adapter.DeliveryMark),
// the client was sent exactly the origin node's own packets up to
// mark.Own and the others' up to mark.Others: read from the oldest of the
// three and keep, per publisher, what is after its bound. A path with no
// delivery yet falls back to the offset.
func replayPlan(s *Session, offset string) (from string, unsent func(Packet) bool) {
	all := func(Packet) bool { return true }
	if s.Origin == "" {
		return offset, all
	}
	var mark *adapter.DeliveryMark
	for i := len(s.Marks) - 1; i >= 0; i-- {
		if s.Marks[i].Offset == offset {
			mark = &s.Marks[i]
			break
		}
	}
	l, err := adapter.ParseOffset(offset)
	if mark == nil || err != nil {
		return offset, all
	}
	own, others, start := l, l, l
	if o, err := adapter.ParseOffset(mark.Own); err == nil {
		own = o
	}
	if o, err := adapter.ParseOffset(mark.Others); err == nil {
		others = o
	}
	for _, o := range []adapter.Offset{own, others} {
		if o.Compare(start) < 0 {
			start = o
		}
	}
	origin := s.Origin
	return start.String(), func(p Packet) bool {
		o, err := adapter.ParseOffset(p.Offset)
		if err != nil {
			return false
		}
		bound := others
		if p.UID == origin {
			bound = own
		}
		return o.Compare(bound) > 0
	}
}

func takeReason(err error) Reason {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, ErrInvalidPID), errors.Is(err, ErrCorrupt):
		return ReasonInvalid
	}
	return ReasonError
}

func readReason(err error) Reason {
	switch {
	case errors.Is(err, ErrOffsetNotFound):
		return ReasonTrimmed
	case errors.Is(err, adapter.ErrInvalidOffset):
		return ReasonInvalid
	}
	return ReasonError
}

// shouldInclude is Node's shouldIncludePacket: the socket got the packet if
// the packet went to every socket or to one of the socket's rooms, and
// none of the socket's rooms was excluded.
func shouldInclude(sessionRooms map[string]struct{}, o PacketOptions) bool {
	included := len(o.Rooms) == 0
	for _, room := range o.Rooms {
		if _, ok := sessionRooms[room]; ok {
			included = true
			break
		}
	}
	if !included {
		return false
	}
	for _, room := range o.Except {
		if _, ok := sessionRooms[room]; ok {
			return false
		}
	}
	return true
}
