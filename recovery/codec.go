package recovery

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The Redis value of a session is what @socket.io/redis-streams-adapter
// writes: base64 (standard alphabet, padded, as Buffer.toString("base64"))
// of the @msgpack/msgpack encoding of {sid, pid, rooms, data}. Encoding uses
// vmihailenco/msgpack, set up to write what @msgpack/msgpack writes for the
// same JavaScript value (smallest integer forms, integral floats as
// integers, timestamps as extension -1). Decoding uses the small decoder
// below instead, because a stored value is untrusted input: it bounds
// nesting depth (a reflection decoder recursing a megabyte of nested arrays
// can exhaust the goroutine stack, which is fatal, not a recoverable panic)
// and checks every length against the bytes left before allocating, and it
// yields the value types JavaScript would see.

// wireSession fixes the key order of the encoded map to Node's (sid, pid,
// rooms, data), so a Go-written value looks like a Node-written one. Nsp is
// written only when set: Node ignores it.
type wireSession struct {
	SID   string   `msgpack:"sid"`
	PID   string   `msgpack:"pid"`
	Rooms []string `msgpack:"rooms"`
	Data  any      `msgpack:"data"`
	Nsp   string   `msgpack:"nsp,omitempty"`
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
	if err := enc.Encode(&wireSession{SID: s.SID, PID: s.PID, Rooms: rooms, Data: s.Data, Nsp: s.Nsp}); err != nil {
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
	v, err := decodeMsgpack(raw)
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
	return s, nil
}

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

// maxDepth bounds the nesting of a decoded value. @msgpack/msgpack refuses
// to encode deeper than 100 levels, so nothing legitimate comes near.
const maxDepth = 128

// timestampExt is the MessagePack extension type of timestamps: how
// @msgpack/msgpack encodes a JavaScript Date.
const timestampExt = -1

var errTruncated = errors.New("truncated input")

// decodeMsgpack decodes exactly one value from b into nil, bool, float64,
// string, []byte, []any, map[string]any or time.Time. Trailing bytes are an
// error, as they are for @msgpack/msgpack's decode.
func decodeMsgpack(b []byte) (any, error) {
	d := mpDecoder{buf: b}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("at byte %d: %w", d.pos, err)
	}
	if d.pos != len(b) {
		return nil, fmt.Errorf("%d trailing bytes after the value", len(b)-d.pos)
	}
	return v, nil
}

type mpDecoder struct {
	buf []byte
	pos int
}

func (d *mpDecoder) next(n int) ([]byte, error) {
	if n < 0 || n > len(d.buf)-d.pos {
		return nil, errTruncated
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

// uint reads an n-byte big-endian unsigned integer (n = 1, 2, 4 or 8).
func (d *mpDecoder) uint(n int) (uint64, error) {
	b, err := d.next(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
	return binary.BigEndian.Uint64(b), nil
}

// length reads an n-byte length and checks that at least min bytes per
// element are left, so a forged length cannot make us allocate.
func (d *mpDecoder) length(n, min int) (int, error) {
	l, err := d.uint(n)
	if err != nil {
		return 0, err
	}
	if l > uint64(len(d.buf)-d.pos)/uint64(min) {
		return 0, errTruncated
	}
	return int(l), nil
}

func (d *mpDecoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	cb, err := d.next(1)
	if err != nil {
		return nil, err
	}
	c := cb[0]
	switch {
	case c <= 0x7f:
		return float64(c), nil
	case c >= 0xe0:
		return float64(int8(c)), nil
	case c&0xf0 == 0x80:
		return d.mapOf(int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.arrayOf(int(c&0x0f), depth)
	case c&0xe0 == 0xa0:
		return d.str(int(c & 0x1f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		n, err := d.length(1<<(c-0xc4), 1)
		if err != nil {
			return nil, err
		}
		b, _ := d.next(n)
		return bytes.Clone(b), nil
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32
		n, err := d.length(1<<(c-0xc7), 1)
		if err != nil {
			return nil, err
		}
		return d.ext(n)
	case 0xca:
		u, err := d.uint(4)
		return float64(math.Float32frombits(uint32(u))), err
	case 0xcb:
		u, err := d.uint(8)
		return math.Float64frombits(u), err
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		u, err := d.uint(1 << (c - 0xcc))
		return float64(u), err
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8/16/32/64
		n := 1 << (c - 0xd0)
		u, err := d.uint(n)
		if err != nil {
			return nil, err
		}
		shift := 64 - 8*n // sign-extend
		return float64(int64(u<<shift) >> shift), nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16
		return d.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		n, err := d.length(1<<(c-0xd9), 1)
		if err != nil {
			return nil, err
		}
		return d.str(n)
	case 0xdc, 0xdd: // array 16/32
		n, err := d.length(2<<(c-0xdc), 1)
		if err != nil {
			return nil, err
		}
		return d.arrayOf(n, depth)
	case 0xde, 0xdf: // map 16/32
		n, err := d.length(2<<(c-0xde), 2)
		if err != nil {
			return nil, err
		}
		return d.mapOf(n, depth)
	}
	return nil, fmt.Errorf("invalid type code 0x%02x", c)
}

func (d *mpDecoder) str(n int) (any, error) {
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func (d *mpDecoder) arrayOf(n, depth int) (any, error) {
	if n > len(d.buf)-d.pos {
		return nil, errTruncated
	}
	a := make([]any, n)
	for i := range a {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a[i] = v
	}
	return a, nil
}

func (d *mpDecoder) mapOf(n, depth int) (any, error) {
	if n > (len(d.buf)-d.pos)/2 {
		return nil, errTruncated
	}
	m := make(map[string]any, n)
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		var key string
		switch k := k.(type) {
		case string:
			key = k
		case float64:
			// A JavaScript object's keys are strings; @msgpack/msgpack
			// accepts number keys and JavaScript turns them into strings.
			key = jsNumberString(k)
		default:
			return nil, fmt.Errorf("map key is a %s", typeName(k))
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}

func (d *mpDecoder) ext(n int) (any, error) {
	tb, err := d.next(1)
	if err != nil {
		return nil, err
	}
	data, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if int8(tb[0]) != timestampExt {
		// @msgpack/msgpack's default codec writes no other extension.
		return nil, fmt.Errorf("unsupported extension type %d", int8(tb[0]))
	}
	var sec int64
	var nsec uint32
	switch n {
	case 4:
		sec = int64(binary.BigEndian.Uint32(data))
	case 8:
		v := binary.BigEndian.Uint64(data)
		nsec, sec = uint32(v>>34), int64(v&(1<<34-1))
	case 12:
		nsec, sec = binary.BigEndian.Uint32(data), int64(binary.BigEndian.Uint64(data[4:]))
	default:
		return nil, fmt.Errorf("timestamp of %d bytes", n)
	}
	if nsec >= 1e9 {
		return nil, fmt.Errorf("timestamp nanoseconds %d out of range", nsec)
	}
	return time.Unix(sec, int64(nsec)).UTC(), nil
}

// jsNumberString formats f as JavaScript's String(f) does for the numbers
// that occur as map keys.
func jsNumberString(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
