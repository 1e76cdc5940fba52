package siocodec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
)

// Encoded is a packet ready for Engine.IO: the header (a text message) and
// the binary attachments (one binary message each, in order).
type Encoded struct {
	Header      []byte
	Attachments [][]byte
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Encode encodes a packet. data may hold []byte at any depth outside
// structs (in []any, map[string]any, or any other slice, array or
// string-keyed map): each becomes an attachment, and EVENT / ACK become
// BINARY_EVENT / BINARY_ACK. Other values are encoded by encoding/json
// (a []byte inside a struct therefore travels as base64 text). A nil data
// writes no payload.
func Encode(t Type, nsp string, id *uint64, data any) (Encoded, error) {
	var atts [][]byte
	if data != nil && (t == Event || t == Ack) {
		if hasBinary(reflect.ValueOf(data)) {
			data = deconstruct(data, &atts)
			if t == Event {
				t = BinaryEvent
			} else {
				t = BinaryAck
			}
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		bufPool.Put(buf)
	}()
	buf.WriteByte('0' + byte(t))
	if t == BinaryEvent || t == BinaryAck {
		buf.WriteString(strconv.Itoa(len(atts)))
		buf.WriteByte('-')
	}
	if nsp != "" && nsp != "/" {
		buf.WriteString(nsp)
		buf.WriteByte(',')
	}
	if id != nil {
		buf.WriteString(strconv.FormatUint(*id, 10))
	}
	if data != nil {
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(data); err != nil {
			return Encoded{}, fmt.Errorf("encode %s payload: %w", t, err)
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	return Encoded{Header: bytes.Clone(buf.Bytes()), Attachments: atts}, nil
}

var bytesType = reflect.TypeFor[[]byte]()

// hasBinary reports whether v holds a []byte outside structs.
func hasBinary(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return false
		}
		if v.Kind() == reflect.Pointer {
			return false // a pointer is encoding/json's business (structs)
		}
		return hasBinary(v.Elem())
	case reflect.Slice:
		if v.Type() == bytesType {
			return !v.IsNil()
		}
		if !mayHold(v.Type().Elem()) {
			return false
		}
		for i := range v.Len() {
			if hasBinary(v.Index(i)) {
				return true
			}
		}
	case reflect.Array:
		if !mayHold(v.Type().Elem()) {
			return false
		}
		for i := range v.Len() {
			if hasBinary(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String || !mayHold(v.Type().Elem()) {
			return false
		}
		for it := v.MapRange(); it.Next(); {
			if hasBinary(it.Value()) {
				return true
			}
		}
	}
	return false
}

// mayHold reports whether a value of type t may hold a []byte that Encode
// turns into an attachment.
func mayHold(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Slice:
		return t == bytesType || mayHold(t.Elem())
	case reflect.Array:
		return mayHold(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && mayHold(t.Elem())
	}
	return false
}

type placeholder struct {
	Placeholder bool `json:"_placeholder"`
	Num         int  `json:"num"`
}

// deconstruct returns a copy of v with every []byte replaced by a
// placeholder, appending the bytes to atts in document order (depth first,
// as socket.io-parser numbers them).
func deconstruct(v any, atts *[][]byte) any {
	switch t := v.(type) {
	case nil:
		return nil
	case []byte:
		*atts = append(*atts, t)
		return placeholder{Placeholder: true, Num: len(*atts) - 1}
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = deconstruct(x, atts)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for _, k := range sortedKeys(t) {
			out[k] = deconstruct(t[k], atts)
		}
		return out
	case string, bool, float64, int, int64:
		return v
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() || !mayHold(rv.Type().Elem()) {
			return v
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = deconstruct(rv.Index(i).Interface(), atts)
		}
		return out
	case reflect.Map:
		if rv.IsNil() || rv.Type().Key().Kind() != reflect.String || !mayHold(rv.Type().Elem()) {
			return v
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return deconstruct(m, atts)
	}
	return v
}

func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
