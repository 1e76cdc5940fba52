package msgpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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
	// extension other than timestamps (without Decoder.Ext), a map key
	// that is neither a string nor a number (nor a number with
	// Decoder.StringKeys), or trailing bytes after the value.
	ErrInvalid = errors.New("msgpack: invalid input")
)

// Decode decodes exactly one value from b; trailing bytes are an error, as
// they are for @msgpack/msgpack's decode. Map keys that are numbers become
// the strings JavaScript would make of them. Binary values are copies: the
// result shares no memory with b.
func Decode(b []byte) (any, error) {
	return Decoder{}.Decode(b)
}

// Decoder is Decode with options, one field for each point on which a
// dialect departs from @msgpack/msgpack's (the zero Decoder, which is
// Decode). The bounds hold whatever the options: MaxDepth, every length
// checked against the bytes left before anything is allocated for it,
// trailing bytes refused, binary values copied.
type Decoder struct {
	// Time, when set, converts every decoded timestamp into the value the
	// result holds instead of a time.Time (package cluster uses it to give
	// dates their JavaScript JSON form). Unused when Ext is set.
	Time func(time.Time) any

	// Ext, when set, decodes every extension in place of the timestamps
	// of the zero Decoder: typ is the extension type, fixed whether it
	// came as a fixext (1, 2, 4, 8 or 16 bytes of data) rather than an
	// ext 8/16/32 (notepack.io tells a Date, fixext 8, from an ArrayBuffer
	// of 8 bytes, ext 8, by it), and data the extension's bytes, which
	// alias the input: a result that keeps them must copy them. What it
	// returns is the decoded value (Undefined for JavaScript's undefined);
	// an error it returns ends the decoding.
	Ext func(typ int8, fixed bool, data []byte) (any, error)

	// Inexact, when set, is called when the value of an entry of the
	// outermost map (when the value decoded is a map) held an integer
	// beyond ±2^53, which a float64, like a JavaScript number, rounds:
	// key is the entry's key. An error it returns ends the decoding
	// (siocodec refuses a packet id so rounded).
	Inexact func(key string) error

	// Key, when set, gives map keys without allocating them: given the
	// bytes of a key (of a fixstr, aliasing the input), it returns a
	// string equal to them and true, or false for a key it does not know,
	// which is then allocated. Keys makes one for the keys of a dialect's
	// envelope.
	Key func(b []byte) (string, bool)

	// StringKeys refuses map keys that are not strings (notepack.io);
	// without it a number key becomes the string JavaScript makes of it
	// (@msgpack/msgpack's decoder into a JavaScript object).
	StringKeys bool

	// ReplaceInvalidUTF8 replaces each invalid UTF-8 sequence of a
	// string (map keys included) with U+FFFD, as encoding/json and
	// notepack.io's decoder do; without it a string holds its bytes as
	// they are.
	ReplaceInvalidUTF8 bool

	// NonFiniteAsNil decodes a float that is NaN or an infinity as nil,
	// the null that JSON.stringify makes of it; without it a float is kept
	// as it is.
	NonFiniteAsNil bool
}

// Keys returns a Decoder.Key function that knows keys. A key that is
// empty or longer than a fixstr (31 bytes) is left out: the empty key is
// not allocated anyway, and a longer one is never looked up.
func Keys(keys ...string) func(b []byte) (string, bool) {
	var byLen [32][]string // a lookup compares the keys of one length only
	for _, k := range keys {
		if n := len(k); n > 0 && n < len(byLen) {
			byLen[n] = append(byLen[n], k)
		}
	}
	return func(b []byte) (string, bool) {
		if len(b) < len(byLen) {
			for _, k := range byLen[len(b)] {
				if k[0] == b[0] && string(b) == k { // compared without a conversion
					return k, true
				}
			}
		}
		return "", false
	}
}

// Undefined is the value an Ext function returns for JavaScript's undefined
// (notepack.io's fixext 1 of type 0). The decoder handles it as a
// JavaScript object or array would hold it once through JSON: the key is
// absent from its map (an earlier entry of the same key removed too), the
// element nil in its array, and the whole value nil.
var Undefined any = undefined{}

type undefined struct{}

// Decode decodes exactly one value from b, as the package-level Decode
// with the options of o.
func (o Decoder) Decode(b []byte) (any, error) {
	d := decoder{Decoder: o, buf: b}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("at byte %d: %w", d.pos, err)
	}
	if d.pos != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the value", ErrInvalid, len(b)-d.pos)
	}
	if v == Undefined {
		v = nil
	}
	return v, nil
}

type decoder struct {
	Decoder
	buf []byte
	pos int
	// inexact is set when an integer beyond ±2^53 is decoded; a top-level
	// map clears it before each of its values, for Inexact.
	inexact bool
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
	if d.pos >= len(d.buf) {
		return nil, ErrTruncated
	}
	c := d.buf[d.pos]
	d.pos++
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
		return d.ext(n, false)
	case 0xca:
		u, err := d.uint(4)
		return d.float(float64(math.Float32frombits(uint32(u)))), err
	case 0xcb:
		u, err := d.uint(8)
		return d.float(math.Float64frombits(u)), err
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		u, err := d.uint(1 << (c - 0xcc))
		if u > 1<<53 {
			d.inexact = true
		}
		return float64(u), err
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8/16/32/64
		n := 1 << (c - 0xd0)
		u, err := d.uint(n)
		if err != nil {
			return nil, err
		}
		shift := 64 - 8*n // sign-extend
		i := int64(u<<shift) >> shift
		if i > 1<<53 || i < -(1<<53) {
			d.inexact = true
		}
		return float64(i), nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16
		return d.ext(1<<(c-0xd4), true)
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

// float is f, or nil for NaN and the infinities with NonFiniteAsNil.
func (d *decoder) float(f float64) any {
	if d.NonFiniteAsNil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil
	}
	return f
}

func (d *decoder) str(n int) (any, error) {
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if d.ReplaceInvalidUTF8 && !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
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
		if v == Undefined {
			v = nil
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
		key, err := d.key(depth + 1)
		if err != nil {
			return nil, err
		}
		if depth == 0 {
			d.inexact = false
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if depth == 0 && d.inexact && d.Inexact != nil {
			if err := d.Inexact(key); err != nil {
				return nil, err
			}
		}
		if v == Undefined {
			delete(m, key)
			continue
		}
		m[key] = v
	}
	return m, nil
}

// key decodes a map key at depth. A fixstr key is read in place: one that
// Key knows is not allocated, and no key is boxed in an interface on the
// way.
func (d *decoder) key(depth int) (string, error) {
	if d.pos < len(d.buf) && d.buf[d.pos]&0xe0 == 0xa0 {
		if n := int(d.buf[d.pos] & 0x1f); n < d.remaining() {
			b := d.buf[d.pos+1 : d.pos+1+n]
			if d.Key != nil {
				if k, ok := d.Key(b); ok {
					d.pos += 1 + n
					return k, nil
				}
			}
			if !d.ReplaceInvalidUTF8 || utf8.Valid(b) {
				d.pos += 1 + n
				return string(b), nil
			}
		}
	}
	k, err := d.value(depth)
	if err != nil {
		return "", err
	}
	switch k := k.(type) {
	case string:
		return k, nil
	case float64:
		if !d.StringKeys {
			// A JavaScript object's keys are strings; @msgpack/msgpack
			// accepts number keys and JavaScript turns them into strings.
			return string(AppendJSNumber(nil, k)), nil
		}
	}
	return "", fmt.Errorf("%w: map key of type %T", ErrInvalid, k)
}

// ext decodes an extension of n bytes of data, its type first.
func (d *decoder) ext(n int, fixed bool) (any, error) {
	t, err := d.uint(1)
	if err != nil {
		return nil, err
	}
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if d.Ext != nil {
		return d.Ext(int8(t), fixed, b)
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
	if d.Time != nil {
		return d.Time(ts), nil
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
