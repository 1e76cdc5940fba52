package msgpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// MaxDepth bounds the nesting of a decoded value. @msgpack/msgpack refuses
// to encode deeper than 100 levels, so nothing legitimate comes near.
const MaxDepth = 256

// TimestampExt is the MessagePack extension type of timestamps.
const TimestampExt = -1

// Errors of Decode, wrapped: test with errors.Is.
var (
	// ErrTruncated: the input ends inside a value, or a length announces
	// more elements than there are bytes left.
	ErrTruncated = errors.New("msgpack: truncated input")
	// ErrTooDeep: the value nests deeper than MaxDepth.
	ErrTooDeep = errors.New("msgpack: nesting too deep")
	// ErrInvalid: a byte sequence MessagePack does not define, an
	// extension other than timestamps, a map key that is neither a string
	// nor a number, or trailing bytes after the value.
	ErrInvalid = errors.New("msgpack: invalid input")
)

// Decode decodes exactly one value from b; trailing bytes are an error, as
// they are for @msgpack/msgpack's decode. Map keys that are numbers become
// the strings JavaScript would make of them. Binary values are copies: the
// result shares no memory with b.
func Decode(b []byte) (any, error) {
	return Decoder{}.Decode(b)
}

// Decoder is Decode with options. The zero Decoder is Decode.
type Decoder struct {
	// Time, when set, converts every decoded timestamp into the value the
	// result holds instead of a time.Time (package cluster uses it to give
	// dates their JavaScript JSON form).
	Time func(time.Time) any
}

// Decode decodes exactly one value from b, as the package-level Decode.
func (o Decoder) Decode(b []byte) (any, error) {
	d := decoder{buf: b, time: o.Time}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("at byte %d: %w", d.pos, err)
	}
	if d.pos != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the value", ErrInvalid, len(b)-d.pos)
	}
	return v, nil
}

type decoder struct {
	buf  []byte
	pos  int
	time func(time.Time) any
}

func (d *decoder) remaining() int { return len(d.buf) - d.pos }

func (d *decoder) next(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, ErrTruncated
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

// uint reads an n-byte big-endian unsigned integer (n = 1, 2, 4 or 8).
func (d *decoder) uint(n int) (uint64, error) {
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
func (d *decoder) length(n, min int) (int, error) {
	u, err := d.uint(n)
	if err != nil {
		return 0, err
	}
	if u > uint64(d.remaining()/min) {
		return 0, ErrTruncated
	}
	return int(u), nil
}

func (d *decoder) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
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
		return append([]byte{}, b...), nil
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
	return nil, fmt.Errorf("%w: type code 0x%02x", ErrInvalid, c)
}

func (d *decoder) str(n int) (any, error) {
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func (d *decoder) arrayOf(n, depth int) (any, error) {
	if n > d.remaining() {
		return nil, ErrTruncated
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

func (d *decoder) mapOf(n, depth int) (any, error) {
	if n > d.remaining()/2 {
		return nil, ErrTruncated
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
			key = string(AppendJSNumber(nil, k))
		default:
			return nil, fmt.Errorf("%w: map key of type %T", ErrInvalid, k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}

func (d *decoder) ext(n int) (any, error) {
	t, err := d.uint(1)
	if err != nil {
		return nil, err
	}
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if int8(t) != TimestampExt {
		// @msgpack/msgpack's default codec writes no other extension.
		return nil, fmt.Errorf("%w: extension type %d", ErrInvalid, int8(t))
	}
	var sec int64
	var nsec uint32
	switch n {
	case 4:
		sec = int64(binary.BigEndian.Uint32(b))
	case 8:
		u := binary.BigEndian.Uint64(b)
		nsec, sec = uint32(u>>34), int64(u&(1<<34-1))
	case 12:
		nsec, sec = binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:]))
	default:
		return nil, fmt.Errorf("%w: timestamp of %d bytes", ErrInvalid, n)
	}
	if nsec > 999_999_999 {
		return nil, fmt.Errorf("%w: timestamp nanoseconds %d out of range", ErrInvalid, nsec)
	}
	ts := time.Unix(sec, int64(nsec)).UTC()
	if d.time != nil {
		return d.time(ts), nil
	}
	return ts, nil
}

// AppendJSNumber appends f as JavaScript's String(f) writes it, which is
// also how JSON.stringify writes a finite number (NaN and the infinities
// become null, as in JSON).
func AppendJSNumber(b []byte, f float64) []byte {
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
		// e-09 -> e-9, e+21 stays: JavaScript writes no leading zero.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
