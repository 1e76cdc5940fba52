package cluster

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sockstream/sockstream/internal/msgpack"
)

// This file holds the dialect of what goes to Redis (stream entries,
// pub/sub payloads, persisted sessions): @msgpack/msgpack 2.x's. The
// MessagePack itself, the writer and the bounded decoder, is
// internal/msgpack's; what is this package's is which value becomes which
// item, so that a Go-written entry is byte for byte what Node writes
// (smallest integer form, integral floats written as integers, str8, map
// keys in the order Node builds its objects), and a decoder that gives dates
// their JavaScript JSON form.

// maxDepth bounds the nesting of encoded values, as internal/msgpack bounds
// decoded ones.
const maxDepth = msgpack.MaxDepth

// mpEncoder appends the MessagePack encoding of the values produced by
// normalize to buf, byte for byte as @msgpack/msgpack encodes the same
// JavaScript values, with the writer of internal/msgpack.
type mpEncoder struct {
	buf []byte
}

func (e *mpEncoder) encode(v any, depth int) error {
	if depth > maxDepth {
		return errors.New("nesting too deep")
	}
	switch v := v.(type) {
	case nil:
		e.buf = msgpack.AppendNil(e.buf)
	case bool:
		e.buf = msgpack.AppendBool(e.buf, v)
	case int64:
		e.buf = msgpack.AppendInt(e.buf, v)
	case uint64:
		e.buf = msgpack.AppendUint(e.buf, v)
	case float64:
		e.float(v)
	case string:
		e.buf = msgpack.AppendString(e.buf, v)
	case []byte:
		e.buf = msgpack.AppendBinary(e.buf, v)
	case time.Time:
		// A Date, which has millisecond precision; t keeps whatever
		// precision it has.
		e.buf = msgpack.AppendTimestamp(e.buf, v)
	case []any:
		e.buf = msgpack.AppendArrayHeader(e.buf, len(v))
		for _, x := range v {
			if err := e.encode(x, depth+1); err != nil {
				return err
			}
		}
	case object:
		e.buf = msgpack.AppendMapHeader(e.buf, len(v))
		for _, f := range v {
			e.buf = msgpack.AppendString(e.buf, f.k)
			if err := e.encode(f.v, depth+1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("cannot encode %T", v)
	}
	return nil
}

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER.
const maxSafeInteger = 1<<53 - 1

// float writes f as @msgpack/msgpack writes a JavaScript number: a safe
// integer (-0 included) in integer form, anything else as a float 64.
func (e *mpEncoder) float(f float64) {
	if f == math.Trunc(f) && math.Abs(f) <= maxSafeInteger {
		e.buf = msgpack.AppendInt(e.buf, int64(f))
		return
	}
	e.buf = msgpack.AppendFloat64(e.buf, f)
}

// appendJSNumber appends f as JavaScript's String(f) writes it.
func appendJSNumber(b []byte, f float64) []byte { return msgpack.AppendJSNumber(b, f) }

// decodeMsgpack decodes exactly one value; see internal/msgpack.
func decodeMsgpack(b []byte) (any, error) { return mpDecoder.Decode(b) }

// mpDecoder gives decoded timestamps their JavaScript JSON form (Date), and
// the keys of Node's envelopes without allocating them.
var mpDecoder = msgpack.Decoder{
	Time: func(t time.Time) any { return Date{t} },
	// The keys of a pub/sub message and of a stream entry's packet and
	// options (see Codec).
	Key: msgpack.Keys("type", "data", "uid", "nsp", "id", "packet", "opts", "rooms", "except", "flags"),
}
