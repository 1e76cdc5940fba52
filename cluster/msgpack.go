package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sockstream/sockstream/internal/msgpack"
)

// This file holds the module's MessagePack encoder for what goes to Redis
// (stream entries, pub/sub payloads, persisted sessions; the decoder is
// internal/msgpack) instead of a general library because the wire format needs three things a reflection-based codec
// does not give: the exact bytes @msgpack/msgpack 2.x writes (smallest integer
// form, integral floats written as integers, str8, map keys in the order Node
// builds its objects), decoding into exactly the value types this package
// documents (numbers as float64, as JavaScript sees them), and hard bounds on
// what hostile input can make us allocate.

// maxDepth bounds the nesting of encoded values, as internal/msgpack bounds
// decoded ones.
const maxDepth = msgpack.MaxDepth

// timestampExt is the MessagePack extension type of timestamps, which is how
// @msgpack/msgpack encodes a JavaScript Date.
const timestampExt = msgpack.TimestampExt

// mpEncoder appends the MessagePack encoding of the values produced by
// normalize to buf, byte for byte as @msgpack/msgpack encodes the same
// JavaScript values.
type mpEncoder struct {
	buf []byte
}

func (e *mpEncoder) encode(v any, depth int) error {
	if depth > maxDepth {
		return errors.New("nesting too deep")
	}
	switch v := v.(type) {
	case nil:
		e.buf = append(e.buf, 0xc0)
	case bool:
		if v {
			e.buf = append(e.buf, 0xc3)
		} else {
			e.buf = append(e.buf, 0xc2)
		}
	case int64:
		e.int(v)
	case uint64:
		if v > math.MaxInt64 {
			e.buf = append(e.buf, 0xcf)
			e.buf = binary.BigEndian.AppendUint64(e.buf, v)
		} else {
			e.int(int64(v))
		}
	case float64:
		e.float(v)
	case string:
		e.strHeader(len(v))
		e.buf = append(e.buf, v...)
	case []byte:
		switch n := len(v); {
		case n < 0x100:
			e.buf = append(e.buf, 0xc4, byte(n))
		case n < 0x10000:
			e.buf = append(e.buf, 0xc5)
			e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
		default:
			e.buf = append(e.buf, 0xc6)
			e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
		}
		e.buf = append(e.buf, v...)
	case time.Time:
		e.timestamp(v)
	case []any:
		e.header(len(v), 0x90, 0xdc)
		for _, x := range v {
			if err := e.encode(x, depth+1); err != nil {
				return err
			}
		}
	case object:
		e.header(len(v), 0x80, 0xde)
		for _, f := range v {
			e.strHeader(len(f.k))
			e.buf = append(e.buf, f.k...)
			if err := e.encode(f.v, depth+1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("cannot encode %T", v)
	}
	return nil
}

// header writes an array (fix 0x90, 16-bit 0xdc) or map (0x80, 0xde) header.
func (e *mpEncoder) header(n int, fix, b16 byte) {
	switch {
	case n < 16:
		e.buf = append(e.buf, fix|byte(n))
	case n < 0x10000:
		e.buf = append(e.buf, b16)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	default:
		e.buf = append(e.buf, b16+1)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	}
}

// str writes the string s.
func (e *mpEncoder) str(s string) {
	e.strHeader(len(s))
	e.buf = append(e.buf, s...)
}

func (e *mpEncoder) strHeader(n int) {
	switch {
	case n < 32:
		e.buf = append(e.buf, 0xa0|byte(n))
	case n < 0x100:
		e.buf = append(e.buf, 0xd9, byte(n))
	case n < 0x10000:
		e.buf = append(e.buf, 0xda)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	default:
		e.buf = append(e.buf, 0xdb)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	}
}

func (e *mpEncoder) int(n int64) {
	switch {
	case n >= 0 && n < 0x80:
		e.buf = append(e.buf, byte(n))
	case n >= 0 && n < 0x100:
		e.buf = append(e.buf, 0xcc, byte(n))
	case n >= 0 && n < 0x10000:
		e.buf = append(e.buf, 0xcd)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	case n >= 0 && n < 0x100000000:
		e.buf = append(e.buf, 0xce)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	case n >= 0:
		e.buf = append(e.buf, 0xcf)
		e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(n))
	case n >= -0x20:
		e.buf = append(e.buf, byte(n))
	case n >= -0x80:
		e.buf = append(e.buf, 0xd0, byte(n))
	case n >= -0x8000:
		e.buf = append(e.buf, 0xd1)
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	case n >= -0x80000000:
		e.buf = append(e.buf, 0xd2)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = append(e.buf, 0xd3)
		e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(n))
	}
}

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER.
const maxSafeInteger = 1<<53 - 1

// float writes f as @msgpack/msgpack writes a JavaScript number: a safe
// integer (-0 included) in integer form, anything else as a float 64.
func (e *mpEncoder) float(f float64) {
	if f == math.Trunc(f) && math.Abs(f) <= maxSafeInteger {
		e.int(int64(f))
		return
	}
	e.buf = append(e.buf, 0xcb)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
}

// timestamp writes t as @msgpack/msgpack writes a Date (which has millisecond
// precision; t keeps whatever precision it has).
func (e *mpEncoder) timestamp(t time.Time) {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	switch {
	case sec >= 0 && sec <= 0xffffffff && nsec == 0:
		e.buf = append(e.buf, 0xd6, 0xff)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(sec))
	case sec >= 0 && sec <= 0x3ffffffff:
		e.buf = append(e.buf, 0xd7, 0xff)
		e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(nsec)<<34|uint64(sec))
	default:
		e.buf = append(e.buf, 0xc7, 12, 0xff)
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(nsec))
		e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(sec))
	}
}

// appendJSNumber appends f as JavaScript's String(f) writes it.
func appendJSNumber(b []byte, f float64) []byte { return msgpack.AppendJSNumber(b, f) }

// decodeMsgpack decodes exactly one value; see internal/msgpack.
func decodeMsgpack(b []byte) (any, error) { return mpDecoder.Decode(b) }

// mpDecoder gives decoded timestamps their JavaScript JSON form (Date).
var mpDecoder = msgpack.Decoder{Time: func(t time.Time) any { return Date{t} }}
