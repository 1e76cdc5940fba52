package recovery

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	jsmsgpack "github.com/sockstream/sockstream/internal/msgpack"
)

// The Redis value of a session is what @socket.io/redis-streams-adapter
// writes: base64 (standard alphabet, padded, as Buffer.toString("base64"))
// of the @msgpack/msgpack encoding of {sid, pid, rooms, data}. Encoding uses
// vmihailenco/msgpack, set up to write what @msgpack/msgpack writes for the
// same JavaScript value (smallest integer forms, integral floats as
// integers, timestamps as extension -1). Decoding uses internal/msgpack,
// the bounded decoder package cluster uses too, because a stored value is
// untrusted input, and it yields the value types JavaScript would see.

// wireSession fixes the key order of the encoded map to Node's (sid, pid,
// rooms, data), so a Go-written value looks like a Node-written one. Nsp is
// written only when set: Node ignores it.
type wireSession struct {
	SID   string   `msgpack:"sid"`
	PID   string   `msgpack:"pid"`
	Rooms []string `msgpack:"rooms"`
	Data  any      `msgpack:"data"`
	Nsp   string   `msgpack:"nsp,omitempty"`
	// Delivery is {uid, marks: [[offset, own, others], ...]}: Origin and
	// Marks, which Node ignores.
	Delivery *wireDelivery `msgpack:"delivery,omitempty"`
}

type wireDelivery struct {
	UID   string      `msgpack:"uid"`
	Marks [][3]string `msgpack:"marks"`
}

// encodeSession returns the Redis value of s.
func encodeSession(s Session) (string, error) {
	rooms := s.Rooms
	if rooms == nil {
		// Node's restore calls rooms.forEach: nil would crash a Node node.
		rooms = []string{}
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.UseCompactFloats(true)
	// Structs in Data are encoded under their JSON names, as a JavaScript
	// peer expects to read them.
	enc.SetCustomStructTag("json")
	w := &wireSession{SID: s.SID, PID: s.PID, Rooms: rooms, Data: s.Data, Nsp: s.Nsp}
	if s.Origin != "" {
		w.Delivery = &wireDelivery{UID: s.Origin, Marks: make([][3]string, len(s.Marks))}
		for i, m := range s.Marks {
			w.Delivery.Marks[i] = [3]string{m.Offset, m.Own, m.Others}
		}
	}
	if err := enc.Encode(w); err != nil {
		return "", fmt.Errorf("recovery: encode session: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// decodeSession parses a Redis value stored under the key of pid. Every
// failure wraps ErrCorrupt.
func decodeSession(value, pid string) (*Session, error) {
	// Node's Buffer.from(s, "base64") accepts missing padding; so do we.
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %w", ErrCorrupt, err)
	}
	v, err := jsmsgpack.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not MessagePack: %w", ErrCorrupt, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a %s, not a map", ErrCorrupt, typeName(v))
	}
	s := &Session{Data: m["data"]}
	if s.SID, ok = m["sid"].(string); !ok || s.SID == "" {
		return nil, fmt.Errorf("%w: sid is a %s, not a non-empty string", ErrCorrupt, typeName(m["sid"]))
	}
	// A value whose pid differs from its key's was not written by a
	// persistSession: someone could otherwise plant one session under many
	// keys.
	if p, ok := m["pid"].(string); !ok || p != pid {
		return nil, fmt.Errorf("%w: pid does not match the key", ErrCorrupt)
	}
	s.PID = pid
	rooms, ok := m["rooms"].([]any)
	if !ok {
		return nil, fmt.Errorf("%w: rooms is a %s, not an array", ErrCorrupt, typeName(m["rooms"]))
	}
	s.Rooms = make([]string, len(rooms))
	for i, r := range rooms {
		if s.Rooms[i], ok = r.(string); !ok {
			return nil, fmt.Errorf("%w: rooms[%d] is a %s, not a string", ErrCorrupt, i, typeName(r))
		}
	}
	if n, present := m["nsp"]; present {
		if s.Nsp, ok = n.(string); !ok {
			return nil, fmt.Errorf("%w: nsp is a %s, not a string", ErrCorrupt, typeName(n))
		}
	}
	if d, present := m["delivery"]; present {
		if err := decodeDelivery(s, d); err != nil {
			return nil, fmt.Errorf("%w: delivery: %w", ErrCorrupt, err)
		}
	}
	return s, nil
}

func decodeDelivery(s *Session, v any) error {
	d, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a %s, not a map", typeName(v))
	}
	if s.Origin, ok = d["uid"].(string); !ok || s.Origin == "" {
		return fmt.Errorf("uid is a %s, not a non-empty string", typeName(d["uid"]))
	}
	marks, ok := d["marks"].([]any)
	if !ok {
		return fmt.Errorf("marks is a %s, not an array", typeName(d["marks"]))
	}
	s.Marks = make([]Mark, len(marks))
	for i, mv := range marks {
		triple, ok := mv.([]any)
		if !ok || len(triple) != 3 {
			return fmt.Errorf("marks[%d] is not an array of 3", i)
		}
		var f [3]string
		for j, x := range triple {
			if f[j], ok = x.(string); !ok {
				return fmt.Errorf("marks[%d][%d] is a %s, not a string", i, j, typeName(x))
			}
		}
		s.Marks[i] = Mark{Offset: f[0], Own: f[1], Others: f[2]}
	}
	return nil
}

// typeName names the type of a decoded MessagePack value in MessagePack
// terms (nil, map, timestamp), for errors about a stored session.
// cluster/value.go names payload values in JSON terms instead.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []byte:
		return "binary"
	case []any:
		return "array"
	case map[string]any:
		return "map"
	case time.Time:
		return "timestamp"
	}
	return fmt.Sprintf("%T", v)
}
