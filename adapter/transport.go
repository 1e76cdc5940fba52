package adapter

import (
	"context"
	"errors"
)

// Transport carries cluster messages between the nodes of a cluster. The
// adapter knows nothing of Redis: cluster.Transport is the Redis Streams
// implementation, and an in-process one serves the adapter's own tests.
//
// A Transport is shared by every namespace of a server: each namespace adapter
// registers its namespace and uid with Subscribe.
type Transport interface {
	// Publish sends msg to every node of the namespace: durable messages go to
	// the stream and the returned offset is the entry id; ephemeral ones (see
	// Message.Ephemeral) go over pub/sub and the offset is "". While the
	// backend is unreachable, a durable message waits in a bounded buffer and
	// Publish returns once it is queued (offset ""), or an error wrapping
	// ErrBufferFull when the buffer is full.
	//
	// The verdict, which the adapter hands to the caller of the operation:
	//
	//   - nil, offset != "": the backend accepted the message (for Redis:
	//     XADD answered with this entry id); every node reading the stream
	//     gets it.
	//   - nil, offset "" for a durable message: queued in the transport's
	//     bounded outage buffer (the backend is unreachable, or did not
	//     answer within the transport's request timeout); it is written, in
	//     order, when the backend answers again, unless the transport is
	//     closed first (counted and logged as "closed") or the backend
	//     refuses the entry itself (counted and logged).
	//   - nil, offset "" for an ephemeral message: sent.
	//   - an error: refused, no other node gets the message. Errors a
	//     caller can branch on (wrapped): ErrBufferFull (durable message,
	//     buffer full), ErrUnavailable (ephemeral message, backend
	//     unreachable), ErrClosed (transport closed); others (a message
	//     that cannot be encoded, an error reply) are not typed.
	//
	// Publish returns within a bound of the transport's (its request
	// timeout) or when ctx ends.
	Publish(ctx context.Context, msg *Message) (offset string, err error)

	// PublishResponse sends a response to the one node whose namespace
	// adapter has the uid toUID.
	PublishResponse(ctx context.Context, toUID string, msg *Message) error

	// Subscribe delivers to h every message for nsp published by other nodes,
	// and every response addressed to uid, in publication order per stream.
	// h may be called from two of the transport's goroutines at once (stream
	// and pub/sub), so it must be safe for concurrent use. It may block on a
	// message read from the stream (durable: it has an Offset and is not
	// Ephemeral) to apply backpressure, which the transport passes on to its
	// stream reader; it must not block on any other message. Close the
	// adapters before the transport: the transport's Close waits for a
	// handler that is blocked. The returned function unsubscribes.
	Subscribe(ctx context.Context, nsp, uid string, h Handler) (unsubscribe func(), err error)

	// ServerCount returns the number of nodes serving nsp, this one included.
	ServerCount(ctx context.Context, nsp string) (int, error)

	// Ready reports whether the backend is reachable right now.
	Ready() bool

	// Close stops every goroutine of the transport.
	Close() error
}

// Handler receives the messages of a subscription.
type Handler func(msg *Message)

// BatchPublisher is an optional interface a Transport may implement to let
// the adapter pipeline its publications. The adapter publishes the messages
// of one namespace one batch at a time (on a node-level worker), in order;
// without this interface it waits for each Publish (one round trip per
// broadcast). With it, it hands over everything queued meanwhile in one
// call.
//
// PublishBatch must behave like len(msgs) successive Publish calls made in
// that order (same routing, same per-stream order, the same buffering while
// the backend is unreachable) and return one PublishResult per message, at
// the same index.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, msgs []*Message) []PublishResult
}

// PublishResult is the outcome of one message of a PublishBatch call: what
// Publish would have returned for it.
type PublishResult struct {
	Offset string
	Err    error
}

// errShortBatch: a BatchPublisher returned fewer results than messages.
var errShortBatch = errors.New("adapter: transport returned fewer results than messages")

// batchResult is the result of the i-th message of a PublishBatch that
// returned res; one the transport left out is an error.
func batchResult(res []PublishResult, i int) PublishResult {
	if i < len(res) {
		return res[i]
	}
	return PublishResult{Err: errShortBatch}
}
