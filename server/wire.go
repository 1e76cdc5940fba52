package server

import (
	"reflect"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Values cross the wire as JSON, except []byte, which travels as a binary
// attachment. zishang520's encoder only looks for []byte at the top level
// and inside []any and map[string]any: a []byte inside any other container
// ([][]byte, []map[string]any, map[string][]byte …) would be marshalled by
// encoding/json as a base64 string, and the client would get a string where
// it expects a Buffer. toWire rewrites such containers into []any and
// map[string]any so that every []byte outside a struct travels as binary
// (TestTransports, "bin" and "binout"). Structs are left to encoding/json.

// toWireArgs returns a copy of args ready for zishang520's encoder, with room
// for one more element (an ack callback).
func toWireArgs(args []any) []any {
	out := make([]any, len(args), len(args)+1)
	for i, a := range args {
		out[i] = toWire(a)
	}
	return out
}

func toWire(v any) any {
	switch t := v.(type) {
	case nil, string, bool, float64, float32, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, []byte:
		return v
	case []any:
		if !mayHoldBinary(t) {
			return v
		}
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = toWire(x)
		}
		return out
	case map[string]any:
		if !mayHoldBinary(t) {
			return v
		}
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = toWire(x)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() || !typeMayHoldBinary(rv.Type().Elem()) {
			return v
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toWire(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.IsNil() || rv.Type().Key().Kind() != reflect.String || !typeMayHoldBinary(rv.Type().Elem()) {
			return v
		}
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out[it.Key().String()] = toWire(it.Value().Interface())
		}
		return out
	}
	return v
}

var bytesType = reflect.TypeFor[[]byte]()

// typeMayHoldBinary reports whether a value of type t may hold a []byte
// that toWire must bring to the surface.
func typeMayHoldBinary(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Slice:
		return t == bytesType || typeMayHoldBinary(t.Elem())
	case reflect.Array:
		return typeMayHoldBinary(t.Elem())
	case reflect.Map:
		return t.Key().Kind() == reflect.String && typeMayHoldBinary(t.Elem())
	}
	return false
}

// mayHoldBinary reports whether a []any or map[string]any holds a container
// that toWire would rewrite.
func mayHoldBinary(v any) bool {
	check := func(x any) bool {
		switch x.(type) {
		case nil, string, bool, float64, int, int64, []byte:
			return false
		case []any, map[string]any:
			return mayHoldBinary(x)
		}
		rv := reflect.ValueOf(x)
		switch rv.Kind() {
		case reflect.Slice, reflect.Array, reflect.Map:
			return typeMayHoldBinary(rv.Type())
		}
		return false
	}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			if check(x) {
				return true
			}
		}
	case map[string]any:
		for _, x := range t {
			if check(x) {
				return true
			}
		}
	}
	return false
}

// fromWire turns zishang520's binary values into []byte, recursively, so that
// handlers see plain Go values.
func fromWire(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = plain(a)
	}
	return out
}

func plain(v any) any {
	switch t := v.(type) {
	case types.BufferInterface:
		return t.Bytes()
	case []any:
		return fromWire(t)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = plain(x)
		}
		return m
	default:
		return v
	}
}
