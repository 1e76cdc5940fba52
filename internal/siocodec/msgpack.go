package siocodec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The MessagePack format of socket.io-msgpack-parser 3.x, what the
// official client speaks with `parser: require("socket.io-msgpack-parser")`:
// each packet is one Engine.IO binary message, the MessagePack encoding (by
// notepack.io) of the object {type, nsp, data, id}. Types are 0 to 4 only
// (binary values stay inline as MessagePack bin: there are no attachments
// and no BINARY_EVENT / BINARY_ACK); ids and types are numbers.
//
// notepack.io has three extensions, all of type 0: fixext 1 is undefined,
// fixext 8 a Date (milliseconds since the epoch, as two 32-bit halves), and
// ext 8/16/32 an ArrayBuffer (what a browser's binary values become).
// Decoding maps them as JSON would see the same value: undefined is absent
// (nil in an array, the key dropped in an object), a Date its toJSON string,
// an ArrayBuffer []byte.

// MaxMsgpackDepth bounds the nesting of a decoded MessagePack packet (the
// packet object included), so that a forged message cannot exhaust the
// stack.
const MaxMsgpackDepth = 256

// EncodeMsgpack encodes a packet as socket.io-msgpack-parser does: one
// binary message. []byte values at any depth outside structs (as for
// Encode) are MessagePack bin; BINARY_EVENT and BINARY_ACK are written as
// EVENT and ACK. Values of other types (structs, typed maps and slices) are
// encoded as encoding/json would encode them, then as MessagePack: a
// []byte inside a struct therefore travels as base64 text, as with Encode.
// A nil data writes no data key.
func EncodeMsgpack(t Type, nsp string, id *uint64, data any) ([]byte, error) {
	switch t {
	case BinaryEvent:
		t = Event
	case BinaryAck:
		t = Ack
	}
	if nsp == "" {
		nsp = "/"
	}
	n := 2
	if data != nil {
		n++
	}
	if id != nil {
		n++
	}
	e := mpEncoder{buf: make([]byte, 0, 64)}
	e.buf = append(e.buf, 0x80|byte(n))
	e.str("type")
	e.uint(uint64(t))
	e.str("nsp")
	e.str(nsp)
	if data != nil {
		e.str("data")
		if err := e.value(data, 0); err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", t, err)
		}
	}
	if id != nil {
		e.str("id")
		e.uint(*id)
	}
	return e.buf, nil
}

type mpEncoder struct{ buf []byte }

func (e *mpEncoder) uint(v uint64) {
	switch {
	case v < 0x80:
		e.buf = append(e.buf, byte(v))
	case v <= math.MaxUint8:
		e.buf = append(e.buf, 0xcc, byte(v))
	case v <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xce), uint32(v))
	default:
		e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xcf), v)
	}
}

func (e *mpEncoder) int(v int64) {
	if v >= 0 {
		e.uint(uint64(v))
		return
	}
	switch {
	case v >= -32:
		e.buf = append(e.buf, byte(v))
	case v >= math.MinInt8:
		e.buf = append(e.buf, 0xd0, byte(v))
	case v >= math.MinInt16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xd1), uint16(v))
	case v >= math.MinInt32:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xd2), uint32(v))
	default:
		e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xd3), uint64(v))
	}
}

// float writes an integral value as an integer (as notepack.io does), any
// other as a float 64.
func (e *mpEncoder) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// encoding/json refuses them too.
		return fmt.Errorf("unsupported value: %v", f)
	}
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 && !(f == 0 && math.Signbit(f)) {
		e.int(int64(f))
		return nil
	}
	e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xcb), math.Float64bits(f))
	return nil
}

func (e *mpEncoder) str(s string) {
	n := len(s)
	switch {
	case n < 32:
		e.buf = append(e.buf, 0xa0|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xd9, byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xda), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdb), uint32(n))
	}
	e.buf = append(e.buf, s...)
}

func (e *mpEncoder) bin(b []byte) {
	n := len(b)
	switch {
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xc4, byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xc5), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xc6), uint32(n))
	}
	e.buf = append(e.buf, b...)
}

func (e *mpEncoder) arrayHeader(n int) {
	switch {
	case n < 16:
		e.buf = append(e.buf, 0x90|byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xdc), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdd), uint32(n))
	}
}

func (e *mpEncoder) mapHeader(n int) {
	switch {
	case n < 16:
		e.buf = append(e.buf, 0x80|byte(n))
	case n <= math.MaxUint16:
		e.buf = binary.BigEndian.AppendUint16(append(e.buf, 0xde), uint16(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdf), uint32(n))
	}
}

func (e *mpEncoder) value(v any, depth int) error {
	if depth > MaxMsgpackDepth {
		return fmt.Errorf("value nests deeper than %d", MaxMsgpackDepth)
	}
	switch t := v.(type) {
	case nil:
		e.buf = append(e.buf, 0xc0)
	case bool:
		if t {
			e.buf = append(e.buf, 0xc3)
		} else {
			e.buf = append(e.buf, 0xc2)
		}
	case string:
		e.str(t)
	case float64:
		return e.float(t)
	case int:
		e.int(int64(t))
	case int64:
		e.int(t)
	case uint64:
		e.uint(t)
	case []byte:
		if t == nil {
			e.buf = append(e.buf, 0xc0)
		} else {
			e.bin(t)
		}
	case []any:
		if t == nil {
			e.buf = append(e.buf, 0xc0)
			return nil
		}
		e.arrayHeader(len(t))
		for _, x := range t {
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if t == nil {
			e.buf = append(e.buf, 0xc0)
			return nil
		}
		e.mapHeader(len(t))
		for _, k := range sortedKeys(t) { // deterministic, as encoding/json
			e.str(k)
			if err := e.value(t[k], depth+1); err != nil {
				return err
			}
		}
	case []string:
		if t == nil {
			e.buf = append(e.buf, 0xc0)
			return nil
		}
		e.arrayHeader(len(t))
		for _, s := range t {
			e.str(s)
		}
	default:
		return e.other(v, depth)
	}
	return nil
}

// other encodes a value of any other type: slices, arrays and string-keyed
// maps that may hold []byte element by element (as Encode finds binary in
// them), anything else through its JSON form.
func (e *mpEncoder) other(v any, depth int) error {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			e.buf = append(e.buf, 0xc0)
			return nil
		}
		if mayHold(rv.Type().Elem()) {
			e.arrayHeader(rv.Len())
			for i := range rv.Len() {
				if err := e.value(rv.Index(i).Interface(), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Map:
		if rv.IsNil() {
			e.buf = append(e.buf, 0xc0)
			return nil
		}
		if rv.Type().Key().Kind() == reflect.String && mayHold(rv.Type().Elem()) {
			keys := make([]string, 0, rv.Len())
			vals := make(map[string]reflect.Value, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				k := it.Key().String()
				keys = append(keys, k)
				vals[k] = it.Value()
			}
			sort.Strings(keys)
			e.mapHeader(len(keys))
			for _, k := range keys {
				e.str(k)
				if err := e.value(vals[k].Interface(), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	return e.value(generic, depth)
}

// Msgpack decodes one binary message of socket.io-msgpack-parser into a
// packet, with the checks of Text: a payload valid for its type (as
// socket.io-parser's isPayloadValid, reserved event names refused), a
// namespace within Limits.MaxNamespaceLength, an ack id that is an integer
// from 0 to 2^53. Numbers are float64, binary values []byte (copies: the
// packet shares no memory with msg), as Text gives them. Keys of the
// packet object other than type, nsp, data and id are ignored (the client
// sends its emit options along). Map keys must be strings, and extensions
// other than notepack.io's three are refused.
func (d *Decoder) Msgpack(msg []byte) (*Packet, error) {
	if d.pending != nil {
		return nil, invalid("msgpack packet while %d attachment(s) of a binary packet are awaited", d.want-len(d.atts))
	}
	r := mpDecoder{buf: msg}
	v, err := r.value(0)
	if err == nil && r.pos != len(msg) {
		err = fmt.Errorf("%d trailing bytes", len(msg)-r.pos)
	}
	if err != nil {
		return nil, invalid("msgpack: at byte %d: %v", r.pos, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("msgpack packet is not an object")
	}
	typ, ok := obj["type"].(float64)
	if !ok || typ != math.Trunc(typ) || typ < float64(Connect) || typ > float64(ConnectError) {
		return nil, invalid("invalid packet type")
	}
	nsp, ok := obj["nsp"].(string)
	if !ok {
		return nil, invalid("invalid namespace")
	}
	if len(nsp) > d.limits.MaxNamespaceLength {
		return nil, invalid("namespace longer than %d", d.limits.MaxNamespaceLength)
	}
	if nsp == "" {
		nsp = "/" // as Text does for a packet that names none
	}
	p := &Packet{Type: Type(typ), Nsp: nsp}
	if raw, present := obj["id"]; present {
		f, ok := raw.(float64)
		if !ok || f != math.Trunc(f) || f < 0 || f > 1<<53 {
			return nil, invalid("illegal packet id")
		}
		id := uint64(f)
		p.ID = &id
	}
	data, present := obj["data"]
	p.Data = data
	if !payloadValid(p.Type, data, present) {
		return nil, invalid("invalid payload for %s", p.Type)
	}
	return p, nil
}

// undefined is notepack.io's undefined while decoding: absent once in an
// object, null in an array.
type undefinedT struct{}

var undefined any = undefinedT{}

type mpDecoder struct {
	buf []byte
	pos int
	// inexact is set when an integer beyond ±2^53 was decoded (float64,
	// as JavaScript, rounds it): an ack id must be exact.
	inexact bool
}

func (d *mpDecoder) next(n int) ([]byte, error) {
	if n < 0 || n > len(d.buf)-d.pos {
		return nil, fmt.Errorf("truncated input")
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *mpDecoder) uintN(n int) (uint64, error) {
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
// element are left for it.
func (d *mpDecoder) length(n, min int) (int, error) {
	l, err := d.uintN(n)
	if err != nil {
		return 0, err
	}
	if l > uint64(len(d.buf)-d.pos)/uint64(min) {
		return 0, fmt.Errorf("truncated input: length %d", l)
	}
	return int(l), nil
}

func (d *mpDecoder) value(depth int) (any, error) {
	if depth > MaxMsgpackDepth {
		return nil, fmt.Errorf("nesting deeper than %d", MaxMsgpackDepth)
	}
	b, err := d.next(1)
	if err != nil {
		return nil, err
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return float64(c), nil
	case c >= 0xe0:
		return float64(int8(c)), nil
	case c&0xf0 == 0x80:
		return d.object(int(c&0x0f), depth)
	case c&0xf0 == 0x90:
		return d.array(int(c&0x0f), depth)
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
	case 0xc4, 0xc5, 0xc6:
		n, err := d.length(1<<(c-0xc4), 1)
		if err != nil {
			return nil, err
		}
		return d.bin(n)
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32: notepack.io's ArrayBuffer
		n, err := d.length(1<<(c-0xc7), 1)
		if err != nil {
			return nil, err
		}
		t, err := d.next(1)
		if err != nil {
			return nil, err
		}
		if t[0] != 0 {
			return nil, fmt.Errorf("unknown extension %d", int8(t[0]))
		}
		return d.bin(n)
	case 0xca:
		v, err := d.uintN(4)
		return finite(float64(math.Float32frombits(uint32(v)))), err
	case 0xcb:
		v, err := d.uintN(8)
		return finite(math.Float64frombits(v)), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := d.uintN(1 << (c - 0xcc))
		if v > 1<<53 {
			d.inexact = true
		}
		return float64(v), err
	case 0xd0:
		v, err := d.uintN(1)
		return float64(int8(v)), err
	case 0xd1:
		v, err := d.uintN(2)
		return float64(int16(v)), err
	case 0xd2:
		v, err := d.uintN(4)
		return float64(int32(v)), err
	case 0xd3:
		v, err := d.uintN(8)
		if i := int64(v); i > 1<<53 || i < -(1<<53) {
			d.inexact = true
		}
		return float64(int64(v)), err
	case 0xd4: // fixext 1: notepack.io's undefined
		b, err := d.next(2)
		if err != nil {
			return nil, err
		}
		if b[0] != 0 {
			return nil, fmt.Errorf("unknown extension %d", int8(b[0]))
		}
		return undefined, nil
	case 0xd7: // fixext 8: notepack.io's Date
		b, err := d.next(9)
		if err != nil {
			return nil, err
		}
		if b[0] != 0 {
			return nil, fmt.Errorf("unknown extension %d", int8(b[0]))
		}
		hi := int64(int32(binary.BigEndian.Uint32(b[1:5])))
		ms := hi*(1<<32) + int64(binary.BigEndian.Uint32(b[5:9]))
		// Date.prototype.toJSON, what the JSON parser would carry.
		return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"), nil
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
		return d.array(n, depth)
	case 0xde, 0xdf:
		n, err := d.length(2<<(c-0xde), 2)
		if err != nil {
			return nil, err
		}
		return d.object(n, depth)
	}
	return nil, fmt.Errorf("unsupported byte 0x%02x", c)
}

// key decodes a map key, which must be a string. The keys of the packet
// object and of the client's emit options are not allocated, and a short
// key is not boxed in an interface on the way.
func (d *mpDecoder) key(depth int) (string, error) {
	if d.pos < len(d.buf) && d.buf[d.pos]&0xe0 == 0xa0 {
		if n := int(d.buf[d.pos] & 0x1f); n < len(d.buf)-d.pos {
			b := d.buf[d.pos+1 : d.pos+1+n]
			if k, ok := knownKey(b); ok {
				d.pos += 1 + n
				return k, nil
			}
			if utf8.Valid(b) {
				d.pos += 1 + n
				return string(b), nil
			}
		}
	}
	k, err := d.value(depth)
	if err != nil {
		return "", err
	}
	key, ok := k.(string)
	if !ok {
		return "", fmt.Errorf("map key is not a string")
	}
	return key, nil
}

func knownKey(b []byte) (string, bool) {
	switch string(b) { // compared without a conversion
	case "type":
		return "type", true
	case "nsp":
		return "nsp", true
	case "data":
		return "data", true
	case "id":
		return "id", true
	case "options":
		return "options", true
	case "compress":
		return "compress", true
	}
	return "", false
}

// finite is f, or nil for NaN and the infinities: what JSON.stringify
// makes of them, so what the JSON parser would deliver.
func finite(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

func (d *mpDecoder) str(n int) (any, error) {
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		// As encoding/json and notepack.io's decoder: replaced, not refused.
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	return string(b), nil
}

func (d *mpDecoder) bin(n int) (any, error) {
	b, err := d.next(n)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

func (d *mpDecoder) array(n int, depth int) (any, error) {
	if n > len(d.buf)-d.pos {
		return nil, fmt.Errorf("truncated input: array of %d", n)
	}
	out := make([]any, n)
	for i := range out {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if v == undefined {
			v = nil
		}
		out[i] = v
	}
	return out, nil
}

func (d *mpDecoder) object(n int, depth int) (any, error) {
	if n > (len(d.buf)-d.pos)/2 {
		return nil, fmt.Errorf("truncated input: map of %d", n)
	}
	out := make(map[string]any, n)
	for range n {
		key, err := d.key(depth + 1)
		if err != nil {
			return nil, err
		}
		d.inexact = false
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if depth == 0 && key == "id" && d.inexact {
			return nil, fmt.Errorf("illegal packet id: above 2^53")
		}
		if v == undefined {
			delete(out, key)
			continue
		}
		out[key] = v
	}
	return out, nil
}
