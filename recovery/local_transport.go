package recovery

import (
	"context"
	"sync"

	"github.com/sockstream/sockstream/adapter"
)

// LocalTransport is the adapter.Transport of a single node without Redis:
// there are no peers, and the broadcasts connection state recovery may
// replay are appended to a MemoryLog, whose offsets are the ones the
// clients get. With it the cluster adapter, and its handover, serve a
// single node with the same guarantees as a cluster:
//
//	log := recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxAge: maxDisconnection})
//	store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{})
//	builder, _ := adapter.New(recovery.NewLocalTransport(log),
//		adapter.Config{Sessions: &recovery.Sessions{Store: store, Log: log}})
//
// Without recovery, a single node runs the same adapter over
// NewLocalTransport(nil): nothing is logged, and no offset is given.
type LocalTransport struct {
	log *MemoryLog

	mu     sync.Mutex
	closed bool
}

var _ adapter.Transport = (*LocalTransport)(nil)

// NewLocalTransport returns a LocalTransport appending to log. A nil log is
// valid: the transport of a single node without connection state recovery,
// which appends nothing and gives every publication the offset "".
func NewLocalTransport(log *MemoryLog) *LocalTransport {
	return &LocalTransport{log: log}
}

// Publish implements adapter.Transport: a broadcast of an event without ack
// is appended to the log, if any, and gets its offset; nothing else goes
// anywhere.
func (t *LocalTransport) Publish(ctx context.Context, msg *adapter.Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return "", adapter.ErrClosed
	}
	if t.log == nil {
		return "", nil
	}
	d, ok := msg.Data.(*adapter.BroadcastData)
	if msg.Type != adapter.Broadcast || !ok || !d.Replayable() || d.Opts.Flags.Volatile {
		return "", nil
	}
	return t.log.Append(msg.Nsp, d.Packet.Data, PacketOptions{Rooms: d.Opts.Rooms, Except: d.Opts.Except}), nil
}

// PublishResponse implements adapter.Transport: there is no one to answer.
func (t *LocalTransport) PublishResponse(context.Context, string, *adapter.Message) error {
	return nil
}

// Subscribe implements adapter.Transport: no other node ever publishes.
func (t *LocalTransport) Subscribe(context.Context, string, string, adapter.Handler) (func(), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, adapter.ErrClosed
	}
	return func() {}, nil
}

// ServerCount implements adapter.Transport: this node alone.
func (t *LocalTransport) ServerCount(context.Context, string) (int, error) { return 1, nil }

// Ready implements adapter.Transport.
func (t *LocalTransport) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.closed
}

// Close implements adapter.Transport. It starts no goroutine, so it has
// none to stop; later publications fail with adapter.ErrClosed.
func (t *LocalTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return nil
}
