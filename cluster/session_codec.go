package cluster

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/msgpack"
	"github.com/sockstream/sockstream/recovery"
)

// The Redis value of a session is what @socket.io/redis-streams-adapter
// writes: base64 (standard alphabet, padded, as Buffer.toString("base64"))
// of the @msgpack/msgpack encoding of {sid, pid, rooms, data}. It is
// written by the encoder the stream entries use (msgpack.go), so a
// Go-written value is byte for byte a Node-written one (maps in key order,
// numbers in their smallest form, dates as timestamps), and decoded by
// internal/msgpack, bounded, because a stored value is untrusted input.

// encodeSession returns the Redis value of s. Nsp is written only when
// set, and Origin and Marks as delivery: {uid, marks: [[offset, own,
// others], ...]} only when Origin is; Node ignores both. Only Data goes
// through the normalizer: the session's own fields, the 64 marks above
// all, are written straight, which keeps a persist to a few allocations.
func encodeSession(s recovery.Session) (string, error) {
	var n normalizer
	data, err := n.value(s.Data, 1)
	if err != nil {
		return "", fmt.Errorf("cluster: encode session data: %w", err)
	}
	fields := 4
	if s.Nsp != "" {
		fields++
	}
	if s.Origin != "" {
		fields++
	}
	e := mpEncoder{buf: make([]byte, 0, 64+len(s.Rooms)*24+len(s.Marks)*64)}
	e.buf = msgpack.AppendMapHeader(e.buf, fields)
	e.buf = msgpack.AppendString(e.buf, "sid")
	e.buf = msgpack.AppendString(e.buf, s.SID)
	e.buf = msgpack.AppendString(e.buf, "pid")
	e.buf = msgpack.AppendString(e.buf, s.PID)
	// Node's restore calls rooms.forEach: never nil, always an array.
	e.buf = msgpack.AppendString(e.buf, "rooms")
	e.buf = msgpack.AppendArrayHeader(e.buf, len(s.Rooms))
	for _, r := range s.Rooms {
		e.buf = msgpack.AppendString(e.buf, r)
	}
	e.buf = msgpack.AppendString(e.buf, "data")
	if err := e.encode(data, 1); err != nil {
		return "", fmt.Errorf("cluster: encode session data: %w", err)
	}
	if s.Nsp != "" {
		e.buf = msgpack.AppendString(e.buf, "nsp")
		e.buf = msgpack.AppendString(e.buf, s.Nsp)
	}
	if s.Origin != "" {
		e.buf = msgpack.AppendString(e.buf, "delivery")
		e.buf = msgpack.AppendMapHeader(e.buf, 2)
		e.buf = msgpack.AppendString(e.buf, "uid")
		e.buf = msgpack.AppendString(e.buf, s.Origin)
		e.buf = msgpack.AppendString(e.buf, "marks")
		e.buf = msgpack.AppendArrayHeader(e.buf, len(s.Marks))
		for _, m := range s.Marks {
			e.buf = msgpack.AppendArrayHeader(e.buf, 3)
			e.buf = msgpack.AppendString(e.buf, m.Offset)
			e.buf = msgpack.AppendString(e.buf, m.Own)
			e.buf = msgpack.AppendString(e.buf, m.Others)
		}
	}
	return base64.StdEncoding.EncodeToString(e.buf), nil
}

// decodeSession parses a Redis value stored under the key of pid. Every
// failure wraps recovery.ErrCorrupt. Data holds the values JavaScript
// would see: float64 for every number, time.Time for dates.
func decodeSession(value, pid string) (*recovery.Session, error) {
	// Node's Buffer.from(s, "base64") accepts missing padding; so do we.
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %w", recovery.ErrCorrupt, err)
	}
	v, err := msgpack.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not MessagePack: %w", recovery.ErrCorrupt, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a %s, not a map", recovery.ErrCorrupt, mpTypeName(v))
	}
	s := &recovery.Session{Data: m["data"]}
	if s.SID, ok = m["sid"].(string); !ok || s.SID == "" {
		return nil, fmt.Errorf("%w: sid is a %s, not a non-empty string", recovery.ErrCorrupt, mpTypeName(m["sid"]))
	}
	// A value whose pid differs from its key's was not written by a
	// persistSession: someone could otherwise plant one session under many
	// keys.
	if p, ok := m["pid"].(string); !ok || p != pid {
		return nil, fmt.Errorf("%w: pid does not match the key", recovery.ErrCorrupt)
	}
	s.PID = pid
	rooms, ok := m["rooms"].([]any)
	if !ok {
		return nil, fmt.Errorf("%w: rooms is a %s, not an array", recovery.ErrCorrupt, mpTypeName(m["rooms"]))
	}
	s.Rooms = make([]string, len(rooms))
	for i, r := range rooms {
		if s.Rooms[i], ok = r.(string); !ok {
			return nil, fmt.Errorf("%w: rooms[%d] is a %s, not a string", recovery.ErrCorrupt, i, mpTypeName(r))
		}
	}
	if n, present := m["nsp"]; present {
		if s.Nsp, ok = n.(string); !ok {
			return nil, fmt.Errorf("%w: nsp is a %s, not a string", recovery.ErrCorrupt, mpTypeName(n))
		}
	}
	if d, present := m["delivery"]; present {
		if err := decodeDelivery(s, d); err != nil {
			return nil, fmt.Errorf("%w: delivery: %w", recovery.ErrCorrupt, err)
		}
	}
	return s, nil
}

func decodeDelivery(s *recovery.Session, v any) error {
	d, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a %s, not a map", mpTypeName(v))
	}
	if s.Origin, ok = d["uid"].(string); !ok || s.Origin == "" {
		return fmt.Errorf("uid is a %s, not a non-empty string", mpTypeName(d["uid"]))
	}
	marks, ok := d["marks"].([]any)
	if !ok {
		return fmt.Errorf("marks is a %s, not an array", mpTypeName(d["marks"]))
	}
	s.Marks = make([]adapter.DeliveryMark, len(marks))
	for i, mv := range marks {
		triple, ok := mv.([]any)
		if !ok || len(triple) != 3 {
			return fmt.Errorf("marks[%d] is not an array of 3", i)
		}
		var f [3]string
		for j, x := range triple {
			if f[j], ok = x.(string); !ok {
				return fmt.Errorf("marks[%d][%d] is a %s, not a string", i, j, mpTypeName(x))
			}
		}
		s.Marks[i] = adapter.DeliveryMark{Offset: f[0], Own: f[1], Others: f[2]}
	}
	return nil
}

// mpTypeName names the type of a decoded MessagePack value in MessagePack
// terms (nil, map, timestamp), for errors about a stored session; typeName
// (value.go) names payload values in the JSON terms of Node's payloads.
func mpTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case map[string]any:
		return "map"
	case time.Time:
		return "timestamp"
	}
	return typeName(v)
}
