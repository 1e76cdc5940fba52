package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// This file holds a small MessagePack encoder and decoder instead of a general
// library because the wire format needs three things a reflection-based codec
// does not give: the exact bytes @msgpack/msgpack 2.x writes (smallest integer
// form, integral floats written as integers, str8, map keys in the order Node
// builds its objects), decoding into exactly the value types this package
// documents (numbers as float64, as JavaScript sees them), and hard bounds on
// what hostile input can make us allocate.

// maxDepth bounds the nesting of decoded and encoded values. @msgpack/msgpack
// refuses to encode deeper than 100 levels, so nothing legitimate comes near.
const maxDepth = 256

// timestampExt is the MessagePack extension type of timestamps, which is how
// @msgpack/msgpack encodes a JavaScript Date.
const timestampExt = -1

var errMsgpackTruncated = errors.New("truncated input")

// mpDecoder decodes MessagePack into the generic values of this package: nil,
// bool, float64, string, []byte, []any, map[string]any and Date.
type mpDecoder struct {
	buf []byte
	pos int
}

// decodeMsgpack decodes exactly one value from b; trailing bytes are an error,
// as they are for @msgpack/msgpack's decode.
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

func (d *mpDecoder) remaining() int { return len(d.buf) - d.pos }

func (d *mpDecoder) next(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, errMsgpackTruncated
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

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
	default:
		return binary.BigEndian.Uint64(b), nil
	}
}

// length reads an n-byte length and checks that at least min bytes per
// element are left, so a forged length cannot make us allocate.
func (d *mpDecoder) length(n, min int) (int, error) {
	u, err := d.uint(n)
	if err != nil {
		return 0, err
	}
	if u > uint64(d.remaining()/min) {
		return 0, errMsgpackTruncated
	}
	return int(u), nil
}

func (d *mpDecoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nesting too deep")
	}
	c, err := d.uint(1)
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f:
		return float64(c), nil
	case c >= 0xe0:
		return float64(int8(c)), nil
	case c >= 0x80 && c <= 0x8f:
		return d.mapOf(int(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return d.arrayOf(int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		return d.str(int(c & 0x1f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := d.length(1<<(c-0xc4), 1)
		if err != nil {
			return nil, err
		}
		b, _ := d.next(n)
		return append([]byte{}, b...), nil
	case 0xc7, 0xc8, 0xc9:
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
	case 0xcc, 0xcd, 0xce, 0xcf:
		u, err := d.uint(1 << (c - 0xcc))
		return float64(u), err
	case 0xd0:
		u, err := d.uint(1)
		return float64(int8(u)), err
	case 0xd1:
		u, err := d.uint(2)
		return float64(int16(u)), err
	case 0xd2:
		u, err := d.uint(4)
		return float64(int32(u)), err
	case 0xd3:
		u, err := d.uint(8)
		return float64(int64(u)), err
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return d.ext(1 << (c - 0xd4))
	case 0xd9, 0xda, 0xdb:
		n, err := d.length(1<<(c-0xd9), 1)
		if err != nil {
			return nil, err
		}
		return d.str(n)
	case 0xdc, 0xdd:
		n, err := d.length(2<<(c-0xdc), 1)
		if err != nil {
			return nil, err
		}
		return d.arrayOf(n, depth)
	case 0xde, 0xdf:
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

func (d *mpDecoder) arrayOf(n int, depth int) (any, error) {
	if n > d.remaining() {
		return nil, errMsgpackTruncated
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

func (d *mpDecoder) mapOf(n int, depth int) (any, error) {
	if n > d.remaining()/2 {
		return nil, errMsgpackTruncated
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
			// @msgpack/msgpack accepts number keys and JavaScript turns
			// them into property names.
			key = jsNumberString(k)
		default:
			return nil, fmt.Errorf("map key of type %T", k)
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
	t, err := d.uint(1)
	if err != nil {
		return nil, err
	}
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if int8(t) != timestampExt {
		return nil, fmt.Errorf("unsupported extension type %d", int8(t))
	}
	switch n {
	case 4:
		return Date{time.Unix(int64(binary.BigEndian.Uint32(b)), 0).UTC()}, nil
	case 8:
		u := binary.BigEndian.Uint64(b)
		nsec := int64(u >> 34)
		if nsec > 999999999 {
			return nil, errors.New("timestamp nanoseconds out of range")
		}
		return Date{time.Unix(int64(u&0x3ffffffff), nsec).UTC()}, nil
	case 12:
		nsec := int64(binary.BigEndian.Uint32(b))
		if nsec > 999999999 {
			return nil, errors.New("timestamp nanoseconds out of range")
		}
		return Date{time.Unix(int64(binary.BigEndian.Uint64(b[4:])), nsec).UTC()}, nil
	}
	return nil, fmt.Errorf("timestamp of %d bytes", n)
}

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

// jsNumberString formats f as JavaScript's String(f) does, which is also how
// JSON.stringify writes a finite number.
func jsNumberString(f float64) string {
	return string(appendJSNumber(nil, f))
}

func appendJSNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == 0 {
		return append(b, '0') // -0 too, as JavaScript prints it
	}
	// Same rule as encoding/json, which follows ECMAScript's Number::toString.
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
