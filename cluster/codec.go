package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sockstream/sockstream/adapter"
)

// DefaultMaxDataSize is the default limit on the size of one encoded value
// read from Redis: a stream entry field (the data field is the one that
// grows) or a pub/sub payload. Socket.IO's own default limit on a client
// packet is 1 MB; 16 MiB leaves room for a fetchSockets response listing
// thousands of sockets, while a foreign or corrupt entry cannot make a node
// decode hundreds of megabytes.
const DefaultMaxDataSize = 16 << 20

// The reasons a stream entry or pub/sub payload is rejected. A *DecodeError
// wraps one of them: test with errors.Is(err, ErrBadJSON).
var (
	ErrMissingNsp  = errors.New("missing nsp")
	ErrBadType     = errors.New("missing or malformed type")
	ErrUnknownType = errors.New("unknown message type")
	ErrBadJSON     = errors.New("malformed JSON data")
	ErrBadBase64   = errors.New("malformed base64 data")
	ErrBadMsgpack  = errors.New("malformed MessagePack")
	ErrTooLarge    = errors.New("value too large")
	ErrBadPayload  = errors.New("data does not match the message type")
)

// ErrInvalidMessage is wrapped by the encoding errors: a Message whose Data
// does not have the type its Type requires, a missing namespace, a value
// that cannot be encoded.
var ErrInvalidMessage = errors.New("invalid message")

// DecodeError describes a stream entry or pub/sub payload that cannot be
// decoded. errors.Is matches both Reason and the underlying error.
type DecodeError struct {
	// Reason is one of ErrMissingNsp, ErrBadType, ErrUnknownType,
	// ErrBadJSON, ErrBadBase64, ErrBadMsgpack, ErrTooLarge, ErrBadPayload.
	Reason error
	// Err gives the details, when there are any.
	Err error
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return "cluster: cannot decode message: " + e.Reason.Error()
	}
	return "cluster: cannot decode message: " + e.Reason.Error() + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

func decodeErr(reason, err error) error { return &DecodeError{Reason: reason, Err: err} }

// reasonLabel names the reason of a decode error for metrics and logs.
func reasonLabel(err error) string {
	for _, r := range []struct {
		err   error
		label string
	}{
		{ErrMissingNsp, "missing_nsp"},
		{ErrBadType, "bad_type"},
		{ErrUnknownType, "unknown_type"},
		{ErrBadJSON, "bad_json"},
		{ErrBadBase64, "bad_base64"},
		{ErrBadMsgpack, "bad_msgpack"},
		{ErrTooLarge, "too_large"},
		{ErrBadPayload, "bad_payload"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// Entry is a message as a stream entry: the fields the Node package writes
// with XADD, in its order.
type Entry struct {
	UID  string
	Nsp  string
	Type adapter.MessageType
	// Data is JSON text, or base64 MessagePack when the message may carry
	// binary and does; "" when the message has no data (heartbeats, close).
	Data string
}

// FieldValues returns the entry as XADD field-value pairs:
// uid, nsp, type (decimal) and, when there is data, data.
func (e Entry) FieldValues() []string {
	fv := []string{"uid", e.UID, "nsp", e.Nsp, "type", strconv.Itoa(int(e.Type))}
	if e.Data != "" {
		fv = append(fv, "data", e.Data)
	}
	return fv
}

// Codec converts messages to and from their Redis forms, byte for byte as
// @socket.io/redis-streams-adapter 0.3.1 writes them. The zero Codec is
// ready to use.
type Codec struct {
	// OnlyPlaintext writes stream data as JSON even when it holds binary,
	// like the Node option of the same name: binary then becomes
	// {"type":"Buffer","data":[...]}, as JSON.stringify makes of a Buffer.
	OnlyPlaintext bool
	// MaxDataSize bounds every value decoded; 0 means DefaultMaxDataSize.
	MaxDataSize int
}

func (c Codec) maxSize() int {
	if c.MaxDataSize > 0 {
		return c.MaxDataSize
	}
	return DefaultMaxDataSize
}

func checkHeader(msg *adapter.Message) error {
	if msg == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	if msg.Nsp == "" {
		return fmt.Errorf("%w: empty namespace", ErrInvalidMessage)
	}
	if !msg.Type.Valid() {
		return fmt.Errorf("%w: unknown type %d", ErrInvalidMessage, int(msg.Type))
	}
	return nil
}

// EncodeEntry encodes msg as a stream entry. Data is JSON unless the type
// may carry binary (adapter.MessageType.MayCarryBinary), the payload holds a
// []byte somewhere and OnlyPlaintext is off: then it is base64 of the
// MessagePack encoding, as in Node.
func (c Codec) EncodeEntry(msg *adapter.Message) (Entry, error) {
	if err := checkHeader(msg); err != nil {
		return Entry{}, err
	}
	e := Entry{UID: msg.UID, Nsp: msg.Nsp, Type: msg.Type}
	tree, binary, err := payloadTree(msg.Type, msg.Data)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if tree == nil {
		return e, nil
	}
	if binary && msg.Type.MayCarryBinary() && !c.OnlyPlaintext {
		enc := mpEncoder{}
		if err := enc.encode(tree, 0); err != nil {
			return Entry{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
		e.Data = base64.StdEncoding.EncodeToString(enc.buf)
		return e, nil
	}
	w := jsonWriter{}
	if err := w.value(tree); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	e.Data = string(w.buf)
	return e, nil
}

// DecodeEntry decodes the fields of the stream entry id. Unknown fields are
// ignored. The message's Offset is id.
func (c Codec) DecodeEntry(id string, fields map[string]string) (*adapter.Message, error) {
	max := c.maxSize()
	for k, v := range fields {
		if len(v) > max {
			return nil, decodeErr(ErrTooLarge, fmt.Errorf("field %q has %d bytes, the limit is %d", k, len(v), max))
		}
	}
	nsp := fields["nsp"]
	if nsp == "" {
		return nil, decodeErr(ErrMissingNsp, nil)
	}
	rawType, ok := fields["type"]
	if !ok {
		return nil, decodeErr(ErrBadType, errors.New("no type field"))
	}
	n, err := strconv.Atoi(rawType)
	if err != nil {
		return nil, decodeErr(ErrBadType, fmt.Errorf("type %q", truncate(rawType)))
	}
	t := adapter.MessageType(n)
	if !t.Valid() {
		return nil, decodeErr(ErrUnknownType, fmt.Errorf("type %d", n))
	}
	msg := &adapter.Message{UID: fields["uid"], Nsp: nsp, Type: t, Offset: id}
	raw := fields["data"]
	var tree any
	// Node tells the two encodings apart by the first character.
	switch {
	case raw == "":
	case raw[0] == '{':
		if tree, err = decodeJSON(raw); err != nil {
			return nil, decodeErr(ErrBadJSON, err)
		}
	default:
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			// Buffer.from(s, "base64") also takes unpadded input.
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(raw, "="))
		}
		if err != nil {
			return nil, decodeErr(ErrBadBase64, err)
		}
		if tree, err = decodeMsgpack(b); err != nil {
			return nil, decodeErr(ErrBadMsgpack, err)
		}
	}
	if msg.Data, err = decodePayload(t, tree, raw != ""); err != nil {
		return nil, decodeErr(ErrBadPayload, err)
	}
	return msg, nil
}

// EncodePubSub encodes msg as a pub/sub payload: the whole message as a
// MessagePack map {type, data, uid, nsp} (the order in which Node builds it;
// data is left out when there is none).
func (c Codec) EncodePubSub(msg *adapter.Message) ([]byte, error) {
	if err := checkHeader(msg); err != nil {
		return nil, err
	}
	tree, _, err := payloadTree(msg.Type, msg.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	o := object{{"type", int64(msg.Type)}}
	if tree != nil {
		o = append(o, field{"data", tree})
	}
	o = append(o, field{"uid", msg.UID}, field{"nsp", msg.Nsp})
	enc := mpEncoder{}
	if err := enc.encode(o, 0); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return enc.buf, nil
}

// DecodePubSub decodes a pub/sub payload. Unknown keys are ignored.
func (c Codec) DecodePubSub(payload []byte) (*adapter.Message, error) {
	if len(payload) > c.maxSize() {
		return nil, decodeErr(ErrTooLarge, fmt.Errorf("payload has %d bytes, the limit is %d", len(payload), c.maxSize()))
	}
	v, err := decodeMsgpack(payload)
	if err != nil {
		return nil, decodeErr(ErrBadMsgpack, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, decodeErr(ErrBadPayload, fmt.Errorf("payload is a %s, not a map", typeName(v)))
	}
	nsp, _ := m["nsp"].(string)
	if nsp == "" {
		return nil, decodeErr(ErrMissingNsp, nil)
	}
	uid, err := optString(m, "uid", "message")
	if err != nil {
		return nil, decodeErr(ErrBadPayload, err)
	}
	rawType, ok := m["type"]
	if !ok {
		return nil, decodeErr(ErrBadType, errors.New("no type"))
	}
	n, err := asInt64(rawType, "type")
	if err != nil {
		return nil, decodeErr(ErrBadType, err)
	}
	t := adapter.MessageType(n)
	if int64(t) != n || !t.Valid() {
		return nil, decodeErr(ErrUnknownType, fmt.Errorf("type %d", n))
	}
	msg := &adapter.Message{UID: uid, Nsp: nsp, Type: t}
	data, present := m["data"]
	if msg.Data, err = decodePayload(t, data, present && data != nil); err != nil {
		return nil, decodeErr(ErrBadPayload, err)
	}
	return msg, nil
}

// HashCode is the Node package's hashCode: Java's String.hashCode over the
// UTF-16 code units of s, in signed 32-bit arithmetic.
func HashCode(s string) int32 {
	var h int32
	for _, r := range s {
		// Invalid UTF-8 arrives in JavaScript as U+FFFD, which is what
		// range yields for it.
		if r >= 0x10000 {
			r1, r2 := utf16Surrogates(r)
			h = h*31 + r1
			h = h*31 + r2
			continue
		}
		h = h*31 + r
	}
	return h
}

func utf16Surrogates(r rune) (int32, int32) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// StreamKey returns the stream a namespace's messages go to, as the Node
// package computes it: name itself when count is 1, otherwise
// name + "-" + HashCode(nsp) % count. The remainder keeps the sign of the
// hash, so it can be negative ("socket.io--2").
func StreamKey(name string, count int, nsp string) string {
	if count <= 1 {
		return name
	}
	return name + "-" + strconv.Itoa(int(HashCode(nsp))%count)
}

// streamKeys returns every stream a node must read: name when count is 1,
// otherwise name-0 … name-(count-1) like Node, plus name--1 …
// name--(count-1), where Node writes (and never reads) the namespaces whose
// hash is negative.
func streamKeys(name string, count int) []string {
	if count <= 1 {
		return []string{name}
	}
	keys := make([]string, 0, 2*count-1)
	for i := range count {
		keys = append(keys, name+"-"+strconv.Itoa(i))
	}
	for i := 1; i < count; i++ {
		keys = append(keys, name+"-"+strconv.Itoa(-i))
	}
	return keys
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
