package emitter

import "errors"

// The errors of the emitter's operations, wrapped: test with errors.Is.
// An argument that cannot be encoded (a channel, a func, a cycle) gives an
// error wrapping cluster.ErrInvalidMessage.
var (
	// ErrClosed: the Emitter was closed.
	ErrClosed = errors.New("emitter: closed")
	// ErrReservedEvent: the event name is one the Socket.IO protocol
	// reserves (connect, connect_error, disconnect, disconnecting,
	// newListener, removeListener), which no client can receive.
	ErrReservedEvent = errors.New("emitter: reserved event name")
	// ErrTooLarge: the encoded message is larger than
	// Options.MaxDataSize, and the Go nodes would skip it.
	ErrTooLarge = errors.New("emitter: message too large")
	// ErrUnknownOutcome: the command may have reached Redis but its reply
	// did not come back (connection lost, timeout, context ended): the
	// message may or may not have been written, and sending it again may
	// deliver it twice. Any other failure (an error reply from Redis, such
	// as WRONGTYPE or an ACL refusal) means it was not written.
	ErrUnknownOutcome = errors.New("emitter: outcome unknown")
)
