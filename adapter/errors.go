package adapter

import (
	"errors"
	"fmt"
)

// ErrBufferFull is returned (wrapped) by Transport.Publish when the backend is
// unreachable (or too slow) and the buffer of messages waiting for it is
// full: the message was refused and no other node will get it. The
// publishing operations of NamespaceAdapter (Broadcast, AddSockets...)
// return it wrapped.
var ErrBufferFull = errors.New("publish buffer full")

// ErrUnavailable is returned (wrapped) by Transport.Publish for a message
// the transport does not buffer (those that travel over pub/sub: a
// broadcast with acks, a server-side emit, a fetchSockets request) when
// the backend cannot be reached: the message was not sent. The operations
// of NamespaceAdapter that send such messages return it wrapped.
var ErrUnavailable = errors.New("cluster backend unavailable")

// ErrClosed is returned by operations on a closed adapter or transport,
// and (wrapped) by a publishing operation whose message Close kept from
// being published.
var ErrClosed = errors.New("closed")

// ErrInvalidConfig is wrapped by the error New returns for an invalid
// Config; the error itself is a *ConfigError naming the field.
var ErrInvalidConfig = errors.New("invalid adapter config")

// ConfigError reports one invalid field of Config (or argument of New).
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return "adapter: invalid config " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// ErrTimeout is wrapped by the error a cluster request (fetchSockets,
// serverSideEmit with acks) completes with when some expected nodes did not
// answer in time; the error itself is a *TimeoutError.
var ErrTimeout = errors.New("timeout reached")

// TimeoutError reports a cluster request that timed out. The results passed
// along with it are the responses that did arrive.
type TimeoutError struct {
	// Kind is "fetch_sockets" or "server_side_emit".
	Kind     string
	Received int
	Expected int
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s: timeout reached: only %d responses received out of %d", e.Kind, e.Received, e.Expected)
}

// Unwrap makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Unwrap() error { return ErrTimeout }
