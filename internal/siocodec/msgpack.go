package siocodec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"time"

	"github.com/sockstream/sockstream/internal/msgpack"
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
const MaxMsgpackDepth = msgpack.MaxDepth

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
	e.buf = msgpack.AppendMapHeader(e.buf, n)
	e.buf = msgpack.AppendString(e.buf, "type")
	e.buf = msgpack.AppendUint(e.buf, uint64(t))
	e.buf = msgpack.AppendString(e.buf, "nsp")
	e.buf = msgpack.AppendString(e.buf, nsp)
	if data != nil {
		e.buf = msgpack.AppendString(e.buf, "data")
		if err := e.value(data, 0); err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", t, err)
		}
	}
	if id != nil {
		e.buf = msgpack.AppendString(e.buf, "id")
		e.buf = msgpack.AppendUint(e.buf, *id)
	}
	return e.buf, nil
}

// mpEncoder writes the values of a packet's data with the writer of
// internal/msgpack, in notepack.io's dialect.
type mpEncoder struct{ buf []byte }

// float writes an integral value as an integer (as notepack.io does), any
// other as a float 64.
func (e *mpEncoder) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// encoding/json refuses them too.
		return fmt.Errorf("unsupported value: %v", f)
	}
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 && !(f == 0 && math.Signbit(f)) {
		e.buf = msgpack.AppendInt(e.buf, int64(f))
		return nil
	}
	e.buf = msgpack.AppendFloat64(e.buf, f)
	return nil
}

func (e *mpEncoder) value(v any, depth int) error {
	if depth > MaxMsgpackDepth {
		return fmt.Errorf("value nests deeper than %d", MaxMsgpackDepth)
	}
	switch t := v.(type) {
	case nil:
		e.buf = msgpack.AppendNil(e.buf)
	case bool:
		e.buf = msgpack.AppendBool(e.buf, t)
	case string:
		e.buf = msgpack.AppendString(e.buf, t)
	case float64:
		return e.float(t)
	case int:
		e.buf = msgpack.AppendInt(e.buf, int64(t))
	case int64:
		e.buf = msgpack.AppendInt(e.buf, t)
	case uint64:
		e.buf = msgpack.AppendUint(e.buf, t)
	case []byte:
		if t == nil {
			e.buf = msgpack.AppendNil(e.buf)
		} else {
			e.buf = msgpack.AppendBinary(e.buf, t)
		}
	case []any:
		if t == nil {
			e.buf = msgpack.AppendNil(e.buf)
			return nil
		}
		e.buf = msgpack.AppendArrayHeader(e.buf, len(t))
		for _, x := range t {
			if err := e.value(x, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if t == nil {
			e.buf = msgpack.AppendNil(e.buf)
			return nil
		}
		e.buf = msgpack.AppendMapHeader(e.buf, len(t))
		for _, k := range sortedKeys(t) { // deterministic, as encoding/json
			e.buf = msgpack.AppendString(e.buf, k)
			if err := e.value(t[k], depth+1); err != nil {
				return err
			}
		}
	case []string:
		if t == nil {
			e.buf = msgpack.AppendNil(e.buf)
			return nil
		}
		e.buf = msgpack.AppendArrayHeader(e.buf, len(t))
		for _, s := range t {
			e.buf = msgpack.AppendString(e.buf, s)
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
			e.buf = msgpack.AppendNil(e.buf)
			return nil
		}
		if mayHold(rv.Type().Elem()) {
			e.buf = msgpack.AppendArrayHeader(e.buf, rv.Len())
			for i := range rv.Len() {
				if err := e.value(rv.Index(i).Interface(), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
	case reflect.Map:
		if rv.IsNil() {
			e.buf = msgpack.AppendNil(e.buf)
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
			e.buf = msgpack.AppendMapHeader(e.buf, len(keys))
			for _, k := range keys {
				e.buf = msgpack.AppendString(e.buf, k)
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
	v, err := notepack.Decode(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
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

// notepack is the decoder of notepack.io's dialect: its extensions (see
// notepackExt), string keys only, invalid UTF-8 replaced (as encoding/json
// and notepack.io's decoder do: replaced, not refused), NaN and the
// infinities as the null JSON.stringify makes of them, so what the JSON
// parser would deliver, and an ack id that is exact. The keys of the
// packet object and of the client's emit options are not allocated.
var notepack = msgpack.Decoder{
	Ext:                notepackExt,
	Inexact:            inexactID,
	Key:                knownKey,
	StringKeys:         true,
	ReplaceInvalidUTF8: true,
	NonFiniteAsNil:     true,
}

// notepackExt decodes notepack.io's three extensions, all of type 0:
// fixext 1 is undefined (absent once in an object, null in an array),
// fixext 8 a Date, ext 8/16/32 an ArrayBuffer.
func notepackExt(typ int8, fixed bool, data []byte) (any, error) {
	if typ == 0 {
		switch {
		case !fixed:
			return bytes.Clone(data), nil
		case len(data) == 1:
			return msgpack.Undefined, nil
		case len(data) == 8:
			hi := int64(int32(binary.BigEndian.Uint32(data[:4])))
			ms := hi*(1<<32) + int64(binary.BigEndian.Uint32(data[4:]))
			// Date.prototype.toJSON, what the JSON parser would carry.
			return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"), nil
		}
	}
	return nil, fmt.Errorf("%w: unknown extension (type %d, %d bytes of data)", msgpack.ErrInvalid, typ, len(data))
}

// inexactID refuses an id of the packet object that is an integer beyond
// 2^53, which float64 (as JavaScript) rounds: an ack id must be exact.
func inexactID(key string) error {
	if key == "id" {
		return errors.New("illegal packet id: above 2^53")
	}
	return nil
}

// knownKey gives the keys of the packet object and of the client's emit
// options without allocating them: a switch on constant strings, which on
// this path (every packet of every client) is faster than msgpack.Keys.
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
