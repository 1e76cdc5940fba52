package msgpack

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"
)

func TestDecodeValues(t *testing.T) {
	at := time.Unix(1700000000, 123000000).UTC()
	for _, c := range []struct {
		in   any
		want any
	}{
		{nil, nil},
		{true, true},
		{false, false},
		{int8(-5), -5.0},
		{int16(-300), -300.0},
		{int32(-70000), -70000.0},
		{int64(-1) << 40, -float64(int64(1) << 40)},
		{uint8(200), 200.0},
		{uint16(60000), 60000.0},
		{uint32(1 << 31), float64(uint32(1 << 31))},
		{uint64(1) << 50, float64(uint64(1) << 50)},
		{float32(1.5), 1.5},
		{3.25, 3.25},
		{"", ""},
		{strings.Repeat("x", 40), strings.Repeat("x", 40)},
		{strings.Repeat("y", 300), strings.Repeat("y", 300)},
		{strings.Repeat("z", 70000), strings.Repeat("z", 70000)},
		{[]byte{0, 1, 255}, []byte{0, 1, 255}},
		{[]any{1, "a", nil}, []any{1.0, "a", nil}},
		{map[string]any{"k": []any{}}, map[string]any{"k": []any{}}},
		{at, at},
		{time.Unix(1700000000, 0).UTC(), time.Unix(1700000000, 0).UTC()},
		{time.Unix(1<<35, 5).UTC(), time.Unix(1<<35, 5).UTC()},
	} {
		b, err := vm.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Errorf("Decode(%T %v): %v", c.in, c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Decode(%T %v) = %#v, want %#v", c.in, c.in, got, c.want)
		}
	}
}

func TestDecodeLongContainers(t *testing.T) {
	arr := make([]any, 70000)
	m := make(map[string]any, 20)
	for i := range arr {
		arr[i] = float64(i % 100)
	}
	for i := range 20 {
		m[strings.Repeat("k", i+1)] = float64(i)
	}
	for _, v := range []any{arr, m} {
		b, err := vm.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %T failed: %v", v, err)
		}
	}
}

func TestDecodeNumberKeys(t *testing.T) {
	// {1: "a", -2.5: "b", 1e21: "c"}
	b := []byte{0x83, 0x01, 0xa1, 'a', 0xcb}
	b = append(b, f64(-2.5)...)
	b = append(b, 0xa1, 'b', 0xcb)
	b = append(b, f64(1e21)...)
	b = append(b, 0xa1, 'c')
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"1": "a", "-2.5": "b", "1e+21": "c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func f64(f float64) []byte {
	u := math.Float64bits(f)
	return []byte{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

func TestDecodeErrors(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0xc0)
	for name, c := range map[string]struct {
		in   []byte
		want error
	}{
		"empty":               {nil, ErrTruncated},
		"trailing":            {[]byte{0xc0, 0xc0}, ErrInvalid},
		"reserved 0xc1":       {[]byte{0xc1}, ErrInvalid},
		"short str":           {[]byte{0xa3, 'a'}, ErrTruncated},
		"forged array32":      {[]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ErrTruncated},
		"forged map32":        {[]byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0}, ErrTruncated},
		"forged bin32":        {[]byte{0xc6, 0xff, 0xff, 0xff, 0xff, 0x00}, ErrTruncated},
		"too deep":            {deep, ErrTooDeep},
		"other extension":     {[]byte{0xd4, 0x05, 0x00}, ErrInvalid},
		"timestamp of 1 byte": {[]byte{0xd4, 0xff, 0x00}, ErrInvalid},
		"timestamp nanos":     {[]byte{0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ErrInvalid},
		"array map key":       {[]byte{0x81, 0x90, 0xc0}, ErrInvalid},
		"truncated int64":     {[]byte{0xd3, 0x01}, ErrTruncated},
	} {
		_, err := Decode(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestAppendJSNumber(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", math.Copysign(0, -1): "0", 1: "1", -2.5: "-2.5", 1e21: "1e+21", 1e20: "100000000000000000000",
		1e-7: "1e-7", 0.000001: "0.000001", math.NaN(): "null", math.Inf(1): "null",
	} {
		if got := string(AppendJSNumber(nil, f)); got != want {
			t.Errorf("AppendJSNumber(%v) = %q, want %q", f, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range []any{nil, 1, "s", []any{1, []byte{2}}, map[string]any{"a": time.Unix(1, 2)}} {
		b, _ := vm.Marshal(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err == nil {
			// Whatever decodes must encode again and decode to the same.
			re, err := vm.Marshal(v)
			if err != nil {
				t.Fatalf("re-encoding %#v: %v", v, err)
			}
			if _, err := Decode(re); err != nil {
				t.Fatalf("decoding the re-encoding of %#v: %v", v, err)
			}
		}
	})
}

func TestDecodeForms(t *testing.T) {
	// Forms @msgpack/msgpack writes or accepts that vmihailenco does not
	// produce from Go values.
	for _, tc := range []struct {
		b    []byte
		want any
	}{
		{[]byte{0x81, 0x01, 0xa1, 'x'}, map[string]any{"1": "x"}},
		{[]byte{0x81, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, 'x'}, map[string]any{"1.5": "x"}},
		{[]byte{0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00}, time.Unix(0x6553f100, 0).UTC()},
		{[]byte{0xc7, 12, 0xff, 0, 0, 0, 5, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00}, time.Unix(0x6553f100, 5).UTC()},
		{[]byte{0xc4, 0x00}, []byte{}},
		{[]byte{0xdc, 0x00, 0x01, 0xc3}, []any{true}},
		{[]byte{0xde, 0x00, 0x01, 0xa1, 'k', 0xc2}, map[string]any{"k": false}},
	} {
		got, err := Decode(tc.b)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Decode(% x) = %#v, %v; want %#v", tc.b, got, err, tc.want)
		}
	}
}

func TestDecoderTime(t *testing.T) {
	type date struct{ time.Time }
	b, _ := vm.Marshal([]any{time.Unix(5, 0)})
	got, err := Decoder{Time: func(t time.Time) any { return date{t} }}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{date{time.Unix(5, 0).UTC()}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

// TestAppendDecodes: what the writer writes, another implementation
// (vmihailenco) and Decode read back.
func TestAppendDecodes(t *testing.T) {
	at := time.Unix(1700000000, 123000000).UTC()
	var b []byte
	b = AppendArrayHeader(b, 9)
	b = AppendNil(b)
	b = AppendBool(b, true)
	b = AppendInt(b, -70000)
	b = AppendUint(b, 1<<40)
	b = AppendFloat32(b, 0.25)
	b = AppendFloat64(b, -2.5)
	b = AppendString(b, strings.Repeat("s", 300))
	b = AppendBinary(b, []byte{7})
	b = AppendMapHeader(b, 1)
	b = AppendString(b, "t")
	b = AppendTimestamp(b, at)
	want := []any{nil, true, -70000.0, float64(1 << 40), 0.25, -2.5, strings.Repeat("s", 300), []byte{7}, map[string]any{"t": at}}
	got, err := Decode(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Decode: %#v, %v; want %#v", got, err, want)
	}
	var v []any
	if err := vm.Unmarshal(b, &v); err != nil || len(v) != 9 {
		t.Fatalf("vmihailenco: %v, %v", v, err)
	}
	if m, ok := v[8].(map[string]any); !ok || !m["t"].(time.Time).Equal(at) {
		t.Errorf("vmihailenco read the timestamp as %#v", v[8])
	}
}

func TestDecoderNonFiniteAsNil(t *testing.T) {
	// [NaN (float 64), +Inf (float 32), -Inf (float 64), 1.5 (float 32), -0 (float 64)]
	in := unhex(t, "95"+"cb7ff8000000000000"+"ca7f800000"+"cbfff0000000000000"+"ca3fc00000"+"cb8000000000000000")
	got, err := Decoder{NonFiniteAsNil: true}.Decode(in)
	if want := []any{nil, nil, nil, 1.5, math.Copysign(0, -1)}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, %v; want %#v", got, err, want)
	}
	got, err = Decode(in)
	a, _ := got.([]any)
	if err != nil || len(a) != 5 || !math.IsNaN(a[0].(float64)) || !math.IsInf(a[1].(float64), 1) || !math.IsInf(a[2].(float64), -1) {
		t.Errorf("raw floats: %#v, %v", got, err)
	}
}
