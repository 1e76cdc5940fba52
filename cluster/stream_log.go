package cluster

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/recovery"
)

// DefaultReadBatch is the default COUNT of the XRANGE calls of a StreamLog.
const DefaultReadBatch = 100

// StreamLogOptions configure a StreamLog made by NewStreamLog. They must
// name the same streams as the transport's Options (StreamName and
// StreamCount): the log reads where the transport writes.
// Transport.StreamLog fills them from the transport's Options.
type StreamLogOptions struct {
	// StreamName is the stream, or the prefix of the streams when
	// StreamCount > 1. Default DefaultStreamName.
	StreamName string
	// StreamCount is the number of streams the namespaces are spread over.
	// Default 1.
	StreamCount int
	// ReadBatch is the COUNT of each XRANGE: a restore reads the missed
	// entries in round trips of at most this many, so no single reply
	// grows with the stream. Default DefaultReadBatch.
	ReadBatch int
	// Codec decodes the entries; its MaxDataSize bounds what a corrupt
	// entry can make the restore decode.
	Codec Codec
	// Metrics, when set, counts the entries skipped as malformed.
	Metrics *recovery.Metrics
	// Logger receives a warning per read that met malformed entries.
	// Default slog.Default().
	Logger *slog.Logger
}

// StreamLog is the recovery.PacketLog of a cluster: the Redis stream the
// transport publishes broadcasts to, whose entry ids are the offsets the
// clients hold. It only reads; the transport writes and trims (MAXLEN).
type StreamLog struct {
	client rueidis.Client
	opts   StreamLogOptions
}

var _ recovery.PacketLog = (*StreamLog)(nil)

// NewStreamLog returns a StreamLog reading through client, which stays the
// caller's. Transport.StreamLog is the usual way to get one.
func NewStreamLog(client rueidis.Client, opts StreamLogOptions) (*StreamLog, error) {
	if client == nil {
		return nil, fmt.Errorf("cluster: NewStreamLog: nil client")
	}
	if opts.StreamCount < 0 || opts.ReadBatch < 0 {
		return nil, fmt.Errorf("cluster: NewStreamLog: negative StreamCount or ReadBatch")
	}
	setDefault(&opts.StreamName, DefaultStreamName)
	setDefault(&opts.StreamCount, DefaultStreamCount)
	setDefault(&opts.ReadBatch, DefaultReadBatch)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &StreamLog{client: client, opts: opts}, nil
}

// ReadAfter implements recovery.PacketLog over the namespace's stream.
//
// The end is the stream's last entry, read (XREVRANGE + - COUNT 1) in the
// same pipeline as the first batch. Every batch is XRANGE from the last
// entry already read, inclusive, to the end: that the reply starts with
// that very entry proves nothing after it was trimmed, since MAXLEN
// trimming removes the oldest entries first. So the client's offset is
// checked the same way, and a trim overtaking the read makes it fail
// rather than skip entries.
//
// Only BROADCAST entries whose packet live delivery gives an offset (an
// EVENT without ack id) are visited; volatile ones are flagged. Malformed
// entries are skipped, counted and logged, as the live path drops them.
func (l *StreamLog) ReadAfter(ctx context.Context, nsp, offset string, visit func(recovery.Packet) error) (string, error) {
	start, err := adapter.ParseOffset(offset)
	if err != nil {
		return "", err
	}
	key := StreamKey(l.opts.StreamName, l.opts.StreamCount, nsp)
	batch := int64(l.opts.ReadBatch) + 1 // +1: the entry we start from

	c := l.client
	res := c.DoMulti(ctx,
		c.B().Xrevrange().Key(key).End("+").Start("-").Count(1).Build(),
		c.B().Xrange().Key(key).Start(offset).End("+").Count(batch).Build())
	last, err := res[0].AsXRange()
	if err != nil {
		return "", fmt.Errorf("cluster: reading the end of stream %s: %w", key, err)
	}
	if len(last) == 0 {
		return "", fmt.Errorf("%w: %s (stream %s is empty)", recovery.ErrOffsetNotFound, offset, key)
	}
	endID := last[0].ID
	end, err := adapter.ParseOffset(endID)
	if err != nil {
		return "", fmt.Errorf("cluster: stream %s: last entry id %q: %w", key, endID, err)
	}
	entries, err := res[1].AsXRange()
	if err != nil {
		return "", fmt.Errorf("cluster: reading stream %s: %w", key, err)
	}

	cursor := start
	malformed := 0
	defer func() {
		if malformed > 0 {
			l.opts.Metrics.MalformedEntries(malformed)
			l.opts.Logger.Warn("cluster: skipped malformed stream entries while restoring",
				"stream", key, "nsp", nsp, "count", malformed)
		}
	}()
	for {
		if len(entries) == 0 || entries[0].ID != cursor.String() {
			if cursor == start {
				return "", fmt.Errorf("%w: %s", recovery.ErrOffsetNotFound, offset)
			}
			return "", fmt.Errorf("%w: %s was trimmed during the read", recovery.ErrOffsetNotFound, offset)
		}
		done := len(entries) < int(batch)
		for _, e := range entries[1:] {
			id, err := adapter.ParseOffset(e.ID)
			if err != nil {
				return "", fmt.Errorf("cluster: stream %s: entry id %q: %w", key, e.ID, err)
			}
			if id.Compare(end) > 0 {
				done = true
				break
			}
			cursor = id
			p, ok, bad := l.packet(nsp, e)
			if bad {
				malformed++
			}
			if ok {
				if err := visit(p); err != nil {
					return "", err
				}
			}
			if id == end {
				done = true
				break
			}
		}
		if done || cursor == end {
			return endID, nil
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		entries, err = c.Do(ctx, c.B().Xrange().Key(key).Start(cursor.String()).End(endID).Count(batch).Build()).AsXRange()
		if err != nil {
			return "", fmt.Errorf("cluster: reading stream %s: %w", key, err)
		}
	}
}

// packet turns a stream entry into a Packet when it is a replayable
// broadcast of nsp. bad reports an entry of nsp that does not decode.
func (l *StreamLog) packet(nsp string, e rueidis.XRangeEntry) (p recovery.Packet, ok, bad bool) {
	// Cheap checks first: most entries of a shared stream are other
	// namespaces' or other types'.
	if e.FieldValues["nsp"] != nsp || e.FieldValues["type"] != strconv.Itoa(int(adapter.Broadcast)) {
		return recovery.Packet{}, false, false
	}
	msg, err := l.opts.Codec.DecodeEntry(e.ID, e.FieldValues)
	if err != nil {
		return recovery.Packet{}, false, true
	}
	d, isBroadcast := msg.Data.(*adapter.BroadcastData)
	if !isBroadcast || d == nil {
		return recovery.Packet{}, false, true
	}
	// Live delivery gives an offset only to an EVENT without ack id (and
	// broadcasts with acks travel over pub/sub anyway); nothing else can be
	// ordered against the client's offset.
	if !d.Replayable() {
		return recovery.Packet{}, false, false
	}
	return recovery.Packet{
		Offset: e.ID,
		Nsp:    nsp,
		UID:    msg.UID,
		Data:   d.Packet.Data,
		Opts: recovery.PacketOptions{
			Rooms:    d.Opts.Rooms,
			Except:   d.Opts.Except,
			Volatile: d.Opts.Flags.Volatile,
		},
	}, true, false
}

// StreamLog returns the StreamLog of the streams t writes, through t's
// client, with t's stream layout, MaxDataSize and Logger; opts gives
// ReadBatch and Metrics (its other fields are ignored).
func (t *Transport) StreamLog(opts StreamLogOptions) *StreamLog {
	return &StreamLog{client: t.client, opts: StreamLogOptions{
		StreamName:  t.opts.StreamName,
		StreamCount: t.opts.StreamCount,
		ReadBatch:   cmp.Or(max(opts.ReadBatch, 0), DefaultReadBatch),
		Codec:       t.codec,
		Metrics:     opts.Metrics,
		Logger:      t.log,
	}}
}
