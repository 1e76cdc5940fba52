package siocodec

import (
	"errors"
	"fmt"
)

// Type is a Socket.IO packet type.
type Type byte

// The Socket.IO v5 packet types.
const (
	Connect      Type = 0
	Disconnect   Type = 1
	Event        Type = 2
	Ack          Type = 3
	ConnectError Type = 4
	BinaryEvent  Type = 5
	BinaryAck    Type = 6
)

func (t Type) String() string {
	switch t {
	case Connect:
		return "CONNECT"
	case Disconnect:
		return "DISCONNECT"
	case Event:
		return "EVENT"
	case Ack:
		return "ACK"
	case ConnectError:
		return "CONNECT_ERROR"
	case BinaryEvent:
		return "BINARY_EVENT"
	case BinaryAck:
		return "BINARY_ACK"
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Packet is a decoded Socket.IO packet.
type Packet struct {
	Type Type
	// Nsp is the namespace, "/" when the packet names none.
	Nsp string
	// ID is the ack id, nil when the packet carries none.
	ID *uint64
	// Data is the decoded JSON payload, binary placeholders replaced by
	// []byte; nil when the packet has none. For EVENT it is a []any whose
	// first element is the event name; for ACK a []any; for CONNECT a
	// map[string]any or nil.
	Data any
}

// Limits bound what a decoder accepts.
type Limits struct {
	// MaxAttachments is the most binary attachments one packet may carry.
	// Default 10, as socket.io-parser's maxAttachments.
	MaxAttachments int
	// MaxNamespaceLength bounds a namespace name. Default 256.
	MaxNamespaceLength int
	// MaxAttachmentBytes bounds the total size, in bytes, of the
	// attachments of one binary packet. It is checked as each attachment
	// arrives, so a decoder never holds more than this for a packet being
	// reconstructed. Default 1,000,000 (Node's maxHttpBufferSize, the
	// default bound on one message).
	MaxAttachmentBytes int64
}

// Defaults of Limits.
const (
	DefaultMaxAttachments     = 10
	DefaultMaxNamespaceLength = 256
	DefaultMaxAttachmentBytes = 1_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = DefaultMaxAttachments
	}
	if l.MaxNamespaceLength <= 0 {
		l.MaxNamespaceLength = DefaultMaxNamespaceLength
	}
	if l.MaxAttachmentBytes <= 0 {
		l.MaxAttachmentBytes = DefaultMaxAttachmentBytes
	}
	return l
}

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("invalid socket.io packet")

// ErrTooLarge is wrapped, beside ErrInvalid, by the error of a packet whose
// attachments pass Limits.MaxAttachmentBytes.
var ErrTooLarge = errors.New("socket.io packet too large")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// reserved are the event names a client may not emit (socket.io's
// RESERVED_EVENTS on the parser side).
var reserved = map[string]bool{
	"connect":        true,
	"connect_error":  true,
	"disconnect":     true,
	"disconnecting":  true,
	"newListener":    true,
	"removeListener": true,
}

// Reserved reports whether name is an event name the protocol reserves.
func Reserved(name string) bool { return reserved[name] }
