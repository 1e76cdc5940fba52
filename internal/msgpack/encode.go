package msgpack

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"
)

// The writer: each function appends one MessagePack item to b and returns
// the extended slice, as strconv's Append functions do. Integers and
// lengths take the smallest form MessagePack has for them, as the
// specification requires of an encoder (and as @msgpack/msgpack and
// notepack.io write them). Which Go value becomes which item, and how a
// number is written (integer or float), is the dialect's choice: see
// cluster/msgpack.go (@msgpack/msgpack) and internal/siocodec/msgpack.go
// (notepack.io).

// AppendNil appends nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendUint appends v as a positive fixint or a uint 8, 16, 32 or 64,
// whichever is the smallest that holds it.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendInt appends v in its smallest form: as AppendUint when it is not
// negative, else as a negative fixint or an int 8, 16, 32 or 64.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendFloat32 appends f as a float 32.
func AppendFloat32(b []byte, f float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(f))
}

// AppendFloat64 appends f as a float 64, whatever its value (NaN and the
// infinities included).
func AppendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

// AppendString appends s as a str (header and bytes; s is not checked
// for UTF-8).
func AppendString(b []byte, s string) []byte {
	if len(s) < 32 {
		return append(append(b, 0xa0|byte(len(s))), s...)
	}
	return appendLongString(b, s)
}

// appendLongString is AppendString past a fixstr, kept out of line so
// that AppendString, inlined, stays small in its callers.
//
//go:noinline
func appendLongString(b []byte, s string) []byte {
	return append(appendLength(b, len(s), 0xd9), s...)
}

// AppendStringHeader appends the header of a str of n bytes (fixstr, str
// 8, 16 or 32), which the caller follows with the n bytes.
func AppendStringHeader(b []byte, n int) []byte {
	if n < 32 {
		return append(b, 0xa0|byte(n))
	}
	return appendLength(b, n, 0xd9)
}

// AppendBinary appends v as a bin (header and bytes), a nil v as an empty
// one.
func AppendBinary(b []byte, v []byte) []byte {
	return append(AppendBinaryHeader(b, len(v)), v...)
}

// AppendBinaryHeader appends the header of a bin of n bytes (bin 8, 16 or
// 32), which the caller follows with the n bytes.
func AppendBinaryHeader(b []byte, n int) []byte { return appendLength(b, n, 0xc4) }

// AppendArrayHeader appends the header of an array of n elements
// (fixarray, array 16 or 32), which the caller follows with the n values.
func AppendArrayHeader(b []byte, n int) []byte { return appendCount(b, n, 0x90, 0xdc) }

// AppendMapHeader appends the header of a map of n entries (fixmap, map 16
// or 32), which the caller follows with n keys, each before its value.
func AppendMapHeader(b []byte, n int) []byte { return appendCount(b, n, 0x80, 0xde) }

// AppendExtHeader appends the header of an extension of type typ with n
// bytes of data, which the caller follows with the n bytes: a fixext when n
// is 1, 2, 4, 8 or 16, else an ext 8, 16 or 32.
func AppendExtHeader(b []byte, typ int8, n int) []byte {
	switch n {
	case 1, 2, 4, 8, 16: // fixext 1 (0xd4) to fixext 16 (0xd8)
		return append(b, 0xd4+byte(bits.TrailingZeros(uint(n))), byte(typ))
	}
	return append(appendLength(b, n, 0xc7), byte(typ))
}

// appendLength appends the header of a str, bin or ext of n bytes in the
// smallest of its 8-, 16- and 32-bit forms, whose type codes are code8,
// code8+1 and code8+2.
func appendLength(b []byte, n int, code8 byte) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, code8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code8+1), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code8+2), uint32(n))
}

// appendCount appends the header of an array or map of n in the smallest
// of its forms: fix|n below 16, else code16 (16-bit) or code16+1 (32-bit).
func appendCount(b []byte, n int, fix, code16 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code16+1), uint32(n))
}

// AppendTimestamp appends t as the timestamp extension (TimestampExt) in
// the smallest of its three forms, as @msgpack/msgpack writes a Date:
// timestamp 32 (whole seconds from 0 to 2^32-1), timestamp 64 (seconds
// from 0 to 2^34-1 with nanoseconds), else timestamp 96. t keeps the
// precision it has.
func AppendTimestamp(b []byte, t time.Time) []byte {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	switch {
	case sec >= 0 && sec <= math.MaxUint32 && nsec == 0:
		return binary.BigEndian.AppendUint32(AppendExtHeader(b, TimestampExt, 4), uint32(sec))
	case sec >= 0 && sec < 1<<34:
		return binary.BigEndian.AppendUint64(AppendExtHeader(b, TimestampExt, 8), uint64(nsec)<<34|uint64(sec))
	}
	b = binary.BigEndian.AppendUint32(AppendExtHeader(b, TimestampExt, 12), uint32(nsec))
	return binary.BigEndian.AppendUint64(b, uint64(sec))
}
