package server

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
)

// Event is an event received from a client (or from another server, for
// server-side emits).
type Event struct {
	// Name is the event name.
	Name string
	// Args are the event's arguments as decoded JSON values (float64,
	// string, bool, nil, []any, map[string]any) and []byte for binary.
	Args []any

	ack   func(args []any)
	acked atomic.Bool
}

// HasAck reports whether the sender asked for an acknowledgement.
func (e *Event) HasAck() bool { return e.ack != nil }

// Ack answers the sender's acknowledgement with args. It returns false when
// no ack was asked for or one was already sent. It may be called after the
// handler returned, from any goroutine; an ack for a socket that has
// disconnected is dropped.
func (e *Event) Ack(args ...any) bool {
	if e.ack == nil || !e.acked.CompareAndSwap(false, true) {
		return false
	}
	if args == nil {
		args = []any{}
	}
	e.ack(args)
	return true
}

// Arg returns argument i, or nil when there are fewer arguments.
func (e *Event) Arg(i int) any {
	if i < 0 || i >= len(e.Args) {
		return nil
	}
	return e.Args[i]
}

// Bind decodes argument i into v, as json.Unmarshal would decode it from the
// JSON the client sent. A []byte argument binds to a *[]byte.
func (e *Event) Bind(i int, v any) error {
	if i < 0 || i >= len(e.Args) {
		return fmt.Errorf("event %q: no argument %d (got %d)", e.Name, i, len(e.Args))
	}
	if b, ok := e.Args[i].([]byte); ok {
		if p, ok := v.(*[]byte); ok {
			*p = b
			return nil
		}
	}
	raw, err := json.Marshal(e.Args[i])
	if err != nil {
		return fmt.Errorf("event %q: argument %d: %w", e.Name, i, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("event %q: argument %d: %w", e.Name, i, err)
	}
	return nil
}
