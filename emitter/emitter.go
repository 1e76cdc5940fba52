package emitter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/rueidis"
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
)

// Emitter publishes to a cluster through its Redis. It is safe for
// concurrent use; it starts no goroutine of its own.
type Emitter struct {
	opts   Options
	client rueidis.Client
	owned  bool // the client was created by New from URL
	codec  cluster.Codec
	maxLen string

	mu     sync.RWMutex
	closed bool
}

// New returns an Emitter on opts.Client, or on a new connection to
// opts.URL (New fails if Redis does not answer within RequestTimeout).
// Invalid options give an error wrapping ErrInvalidOptions.
func New(opts Options) (*Emitter, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emitter{
		opts:   o,
		client: o.Client,
		codec:  cluster.Codec{OnlyPlaintext: o.OnlyPlaintext, MaxDataSize: o.MaxDataSize},
		maxLen: strconv.FormatInt(o.MaxLen, 10),
	}
	if e.client == nil {
		co, err := o.clientOption()
		if err != nil {
			return nil, err
		}
		if e.client, err = rueidis.NewClient(co); err != nil {
			return nil, fmt.Errorf("emitter: connecting to Redis: %w", err)
		}
		e.owned = true
	}
	return e, nil
}

// Close makes every later operation fail with ErrClosed, waits for those
// in flight (each bounded by RequestTimeout) and, when New connected to
// Options.URL, closes that connection. A Client given in Options is left
// open. Close is idempotent.
func (e *Emitter) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.owned {
		e.client.Close()
	}
	return nil
}

// Of returns a Broadcast to every socket of the namespace nsp ("/" is the
// main namespace; a name without its leading slash gets one, as in Node).
func (e *Emitter) Of(nsp string) *Broadcast {
	if nsp == "" || nsp[0] != '/' {
		nsp = "/" + nsp
	}
	return &Broadcast{e: e, nsp: nsp}
}

// To returns a Broadcast to the sockets of the main namespace in any of
// rooms.
func (e *Emitter) To(rooms ...string) *Broadcast { return e.Of("/").To(rooms...) }

// In is To.
func (e *Emitter) In(rooms ...string) *Broadcast { return e.To(rooms...) }

// Except returns a Broadcast to the sockets of the main namespace in none
// of rooms.
func (e *Emitter) Except(rooms ...string) *Broadcast { return e.Of("/").Except(rooms...) }

// Emit sends an event to every socket of the main namespace; see
// Broadcast.Emit.
func (e *Emitter) Emit(ctx context.Context, event string, args ...any) error {
	return e.Of("/").Emit(ctx, event, args...)
}

// errNotNew is the error of an Emitter or Broadcast that was not made by
// New and its methods.
var errNotNew = errors.New("emitter: not made by emitter.New")

// StreamKey returns the stream the messages of namespace nsp are written
// to: StreamName, or StreamName-i when StreamCount > 1 (cluster.StreamKey).
func (e *Emitter) StreamKey(nsp string) string {
	return cluster.StreamKey(e.opts.StreamName, e.opts.StreamCount, nsp)
}

// publish writes msg to the stream of its namespace with XADD MAXLEN ~, as
// a node writes its own messages, and returns the entry id.
func (e *Emitter) publish(ctx context.Context, msg *adapter.Message) (string, error) {
	if e == nil || e.client == nil {
		return "", errNotNew
	}
	entry, err := e.codec.EncodeEntry(msg)
	if err != nil {
		return "", err
	}
	if len(entry.Data) > e.opts.MaxDataSize {
		return "", fmt.Errorf("%w: %d bytes of data, the limit is %d", ErrTooLarge, len(entry.Data), e.opts.MaxDataSize)
	}
	key := e.StreamKey(msg.Nsp)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return "", ErrClosed
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cmd := e.client.B().Arbitrary("XADD").Keys(key).Args("MAXLEN", "~", e.maxLen, "*").Args(entry.FieldValues()...).Build()
	id, err := e.client.Do(ctx, cmd).ToString()
	if err != nil {
		return "", failed("XADD to "+key, err)
	}
	return id, nil
}

// publishEphemeral publishes msg on the public channel of its namespace, as
// a node publishes its ephemeral messages.
func (e *Emitter) publishEphemeral(ctx context.Context, msg *adapter.Message) error {
	if e == nil || e.client == nil {
		return errNotNew
	}
	payload, err := e.codec.EncodePubSub(msg)
	if err != nil {
		return err
	}
	if len(payload) > e.opts.MaxDataSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(payload), e.opts.MaxDataSize)
	}
	channel := e.opts.ChannelPrefix + "#" + msg.Nsp + "#"
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	// The payload is binary MessagePack: rueidis sends a string as is.
	verb, cmd := "PUBLISH", rueidis.Completed{}
	if e.opts.UseShardedPubSub {
		verb, cmd = "SPUBLISH", e.client.B().Spublish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
	} else {
		cmd = e.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
	}
	if err := e.client.Do(ctx, cmd).Error(); err != nil {
		return failed(verb+" to "+channel, err)
	}
	return nil
}

// withTimeout bounds one command by RequestTimeout within ctx (nil is
// taken as context.Background()).
func (e *Emitter) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, e.opts.RequestTimeout)
}

// failed wraps the error of a command: an error reply means Redis refused
// the message (the caller gets it: nothing to log here); anything else
// leaves the outcome unknown.
func failed(what string, err error) error {
	if _, ok := rueidis.IsRedisErr(err); ok {
		return fmt.Errorf("emitter: %s: %w", what, err)
	}
	return fmt.Errorf("emitter: %s: %w: %w", what, ErrUnknownOutcome, err)
}
