package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The codec works in two steps. Encoding first turns the typed payload into a
// tree of a few value types (nil, bool, int64, uint64, float64, string,
// []byte, time.Time, []any and object, an ordered map), laid out as Node lays
// out the same message, then writes that tree as JSON or MessagePack.
// Decoding parses JSON or MessagePack into a generic tree (nil, bool, float64,
// string, []byte, time.Time, []any, map[string]any) and converts it into the
// typed payload, checking every field it reads.

// field is one member of an object.
type field struct {
	k string
	v any
}

// object is a JSON/MessagePack map whose keys keep their order, so that the
// bytes we write are the bytes Node writes for the same message.
type object []field

// normalizer turns the arbitrary Go values found in packet arguments into the
// tree, noting whether any binary was seen (which decides the stream encoding
// as hasBinary does in Node).
type normalizer struct {
	binary bool
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	timeType          = reflect.TypeFor[time.Time]()
)

func (n *normalizer) value(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deep (or cyclic)")
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case bool, string, float64, int64, uint64:
		return v, nil
	case object:
		out := make(object, len(v))
		for i, f := range v {
			x, err := n.value(f.v, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = field{f.k, x}
		}
		return out, nil
	case []byte:
		n.binary = true
		if v == nil {
			return []byte{}, nil
		}
		return v, nil
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case uint:
		return uint64(v), nil
	case uint8:
		return uint64(v), nil
	case uint16:
		return uint64(v), nil
	case uint32:
		return uint64(v), nil
	case float32:
		return float64(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("json.Number %q: %w", string(v), err)
		}
		return f, nil
	case time.Time:
		return v, nil
	case Date:
		return v.Time, nil
	case *Date:
		if v == nil {
			return nil, nil
		}
		return v.Time, nil
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := n.value(x, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// Go maps have no order; sort like encoding/json so the output is
		// deterministic.
		slices.Sort(keys)
		out := make(object, len(keys))
		for i, k := range keys {
			y, err := n.value(v[k], depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = field{k, y}
		}
		return out, nil
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out, nil
	}
	return n.reflectValue(reflect.ValueOf(v), depth)
}

// reflectValue handles every other type: its own JSON encoding when it has
// one, slices, arrays and string-keyed maps element by element (so []byte
// inside them still counts as binary), and anything else through
// encoding/json, which honours struct tags.
func (n *normalizer) reflectValue(rv reflect.Value, depth int) (any, error) {
	t := rv.Type()
	if t.Implements(jsonMarshalerType) || t == timeType {
		return viaJSON(rv.Interface(), depth)
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return n.value(rv.Elem().Interface(), depth+1)
	case reflect.Slice:
		if rv.IsNil() {
			return nil, nil
		}
		fallthrough
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return n.value(rv.Bytes(), depth)
		}
		out := make([]any, rv.Len())
		for i := range out {
			y, err := n.value(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return viaJSON(rv.Interface(), depth)
		}
		if rv.IsNil() {
			return nil, nil
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			if a.String() < b.String() {
				return -1
			}
			if a.String() > b.String() {
				return 1
			}
			return 0
		})
		out := make(object, len(keys))
		for i, k := range keys {
			y, err := n.value(rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = field{k.String(), y}
		}
		return out, nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return nil, fmt.Errorf("cannot encode a value of type %s", t)
	}
	return viaJSON(rv.Interface(), depth)
}

// viaJSON converts v through its JSON encoding, as JSON.stringify would
// treat an object with a toJSON method. Object members keep the order
// encoding/json wrote them in (struct field order).
func viaJSON(v any, depth int) (any, error) {
	switch t := v.(type) {
	case time.Time:
		return t, nil
	case Date:
		return t.Time, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tree, err := orderedJSON(dec, depth)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return tree, nil
}

// orderedJSON reads one JSON value from dec into the encoding tree, objects
// as ordered objects and integers as int64 where they fit.
func orderedJSON(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '[':
			a := []any{}
			for dec.More() {
				v, err := orderedJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		case '{':
			o := object{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := orderedJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				o = append(o, field{k.(string), v})
			}
			_, err := dec.Token()
			return o, err
		}
		return nil, fmt.Errorf("unexpected %v", tok)
	case json.Number:
		if i, err := tok.Int64(); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(tok), 10, 64); err == nil {
			return u, nil
		}
		return tok.Float64()
	default: // nil, bool, string
		return tok, nil
	}
}

// jsonWriter writes the tree as JSON.stringify writes the equivalent
// JavaScript value.
type jsonWriter struct {
	buf []byte
}

func (w *jsonWriter) value(v any) error {
	switch v := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case bool:
		w.buf = strconv.AppendBool(w.buf, v)
	case int64:
		w.buf = strconv.AppendInt(w.buf, v, 10)
	case uint64:
		w.buf = strconv.AppendUint(w.buf, v, 10)
	case float64:
		w.buf = appendJSNumber(w.buf, v)
	case string:
		w.buf = appendJSONString(w.buf, v)
	case []byte:
		// What JSON.stringify makes of a Buffer (Buffer.prototype.toJSON).
		w.buf = append(w.buf, `{"type":"Buffer","data":[`...)
		for i, c := range v {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = strconv.AppendUint(w.buf, uint64(c), 10)
		}
		w.buf = append(w.buf, "]}"...)
	case time.Time:
		// Date.prototype.toJSON: ISO 8601 in UTC with milliseconds.
		w.buf = append(w.buf, '"')
		w.buf = v.UTC().AppendFormat(w.buf, "2006-01-02T15:04:05.000Z")
		w.buf = append(w.buf, '"')
	case []any:
		w.buf = append(w.buf, '[')
		for i, x := range v {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(x); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, ']')
	case object:
		w.buf = append(w.buf, '{')
		for i, f := range v {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = appendJSONString(w.buf, f.k)
			w.buf = append(w.buf, ':')
			if err := w.value(f.v); err != nil {
				return err
			}
		}
		w.buf = append(w.buf, '}')
	default:
		return fmt.Errorf("cannot encode %T", v)
	}
	return nil
}

// appendJSONString quotes s as JSON.stringify does: only '"', '\\' and control
// characters are escaped (no HTML escaping, U+2028/U+2029 kept). Invalid UTF-8
// becomes U+FFFD, which is what a JavaScript string holds for such bytes.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// decodeJSON parses JSON into the generic tree (numbers as float64).
func decodeJSON(s string) (any, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	return v, nil
}

// schemaError reports a payload that parsed but does not have the shape its
// message type requires.
type schemaError struct {
	path string
	msg  string
}

func (e *schemaError) Error() string { return e.path + ": " + e.msg }

func badField(path string, format string, args ...any) error {
	return &schemaError{path: path, msg: fmt.Sprintf(format, args...)}
}

// typeName names the type of a decoded value in the terms of the Node
// adapter's JSON payloads (null, object, date), for schema errors a Node
// developer reads. mpTypeName (session_codec.go) names them in MessagePack
// terms, for the stored sessions: the two vocabularies differ on purpose.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []byte:
		return "binary"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case time.Time, Date:
		return "date"
	}
	return fmt.Sprintf("%T", v)
}

func asObject(v any, path string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badField(path, "want an object, got %s", typeName(v))
	}
	return m, nil
}

// optString reads an optional string member: absent or null gives "".
func optString(m map[string]any, key, path string) (string, error) {
	switch v := m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", badField(path+"."+key, "want a string, got %s", typeName(v))
	}
}

func reqString(m map[string]any, key, path string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", badField(path+"."+key, "missing")
	}
	return optString(m, key, path)
}

func optBool(m map[string]any, key, path string) (bool, error) {
	switch v := m[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	default:
		return false, badField(path+"."+key, "want a boolean, got %s", typeName(v))
	}
}

// asInt64 accepts a number with no fractional part that fits in int64.
func asInt64(v any, path string) (int64, error) {
	f, ok := v.(float64)
	if !ok {
		return 0, badField(path, "want a number, got %s", typeName(v))
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, badField(path, "want an integer, got %v", f)
	}
	return int64(f), nil
}

func optStrings(m map[string]any, key, path string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, badField(path+"."+key, "want an array, got %s", typeName(v))
	}
	out := make([]string, len(a))
	for i, x := range a {
		s, ok := x.(string)
		if !ok {
			return nil, badField(fmt.Sprintf("%s.%s[%d]", path, key, i), "want a string, got %s", typeName(x))
		}
		out[i] = s
	}
	return out, nil
}

func optArray(m map[string]any, key, path string) ([]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, badField(path+"."+key, "want an array, got %s", typeName(v))
	}
	return a, nil
}

func optMap(m map[string]any, key, path string) (map[string]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	return asObject(v, path+"."+key)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
