package msgpack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// unhex is the bytes of the hex string s, a test's constant.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	t.Fatalf("bad hex %q", s)
	return nil
}

type extCall struct {
	typ   int8
	fixed bool
	data  []byte
}

// TestDecoderExt: Ext sees every extension, timestamps included, with its
// form, and its result or error stands for the extension.
func TestDecoderExt(t *testing.T) {
	var calls []extCall
	errOdd := errors.New("odd extension")
	d := Decoder{Ext: func(typ int8, fixed bool, data []byte) (any, error) {
		calls = append(calls, extCall{typ, fixed, bytes.Clone(data)})
		if typ == 9 {
			return nil, errOdd
		}
		return int(typ), nil
	}}
	// [fixext 1 type 0, fixext 8 type 0, ext 8 of 8 bytes type 0, ext 8 of 0 bytes type 3, timestamp 32]
	in := unhex(t, "95"+"d40007"+"d7000102030405060708"+"c708000102030405060708"+"c70003"+"d6ff00000001")
	got, err := d.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{0, 0, 0, 3, -1}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
	want := []extCall{
		{0, true, []byte{7}},
		{0, true, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{0, false, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{3, false, []byte{}},
		{-1, true, []byte{0, 0, 0, 1}},
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %+v, want %+v", calls, want)
	}
	if _, err := d.Decode(unhex(t, "91d40900")); !errors.Is(err, errOdd) {
		t.Errorf("error of Ext: %v, want it wrapped", err)
	}
	// The bounds hold before Ext is called.
	calls = nil
	for _, in := range []string{"c7ff00", "d700010203", "c9ffffffff00"} {
		if _, err := d.Decode(unhex(t, in)); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v, want ErrTruncated", in, err)
		}
	}
	if calls != nil {
		t.Errorf("Ext called on truncated input: %+v", calls)
	}
}

// TestDecoderUndefined: Undefined from Ext is absent from a map (an earlier
// entry of its key too), nil in an array and at the top.
func TestDecoderUndefined(t *testing.T) {
	d := Decoder{Ext: func(typ int8, fixed bool, data []byte) (any, error) { return Undefined, nil }}
	for in, want := range map[string]any{
		"d40000":                        nil,
		"92d40000a161":                  []any{nil, "a"},
		"83a161d40000a16201a163d40000":  map[string]any{"b": 1.0},
		"82a16101a161d40000":            map[string]any{},
		"81a16192d40000d40000":          map[string]any{"a": []any{nil, nil}},
		"81a16181a162d40000":            map[string]any{"a": map[string]any{}},
		"93c0d40000" + "81a178d40000":   []any{nil, nil, map[string]any{}},
		"81a16193d40000a162" + "d40000": map[string]any{"a": []any{nil, "b", nil}},
	} {
		got, err := d.Decode(unhex(t, in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v, %v; want %#v", in, got, err, want)
		}
	}
	if _, err := d.Decode(unhex(t, "81d40000c0")); !errors.Is(err, ErrInvalid) {
		t.Errorf("undefined as a map key: %v, want ErrInvalid", err)
	}
}

func TestDecoderStringKeys(t *testing.T) {
	strict := Decoder{StringKeys: true}
	for _, in := range []string{"8101a178", "81cb3ff8000000000000a178", "81c0c0", "81c3c0", "8190c0"} {
		if v, err := strict.Decode(unhex(t, in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %#v, %v; want ErrInvalid", in, v, err)
		}
	}
	got, err := strict.Decode(unhex(t, "82a16101d920"+strings.Repeat("61", 32)+"02"))
	want := map[string]any{"a": 1.0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": 2.0}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("string keys: %#v, %v", got, err)
	}
}

func TestDecoderReplaceInvalidUTF8(t *testing.T) {
	// {"\xffa": "b\xff", "k": ["\xc3"], "\xfe" (str 8): 1}
	in := unhex(t, "83"+"a2ff61"+"a262ff"+"a16b"+"91a1c3"+"d901fe"+"01")
	got, err := Decoder{ReplaceInvalidUTF8: true}.Decode(in)
	want := map[string]any{"\uFFFDa": "b\uFFFD", "k": []any{"\uFFFD"}, "\uFFFD": 1.0}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("replaced: %#v, %v; want %#v", got, err, want)
	}
	// Without the option the bytes are kept as they are.
	got, err = Decode(in)
	want = map[string]any{"\xffa": "b\xff", "k": []any{"\xc3"}, "\xfe": 1.0}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("kept: %#v, %v; want %#v", got, err, want)
	}
	// Valid UTF-8 is untouched.
	got, err = Decoder{ReplaceInvalidUTF8: true}.Decode(unhex(t, "81a3e282aca3e282ac"))
	if want := map[string]any{"€": "€"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("valid: %#v, %v", got, err)
	}
}

// TestDecoderInexact: Inexact hears of the top-level entries whose value
// held an integer that a float64 rounds, and only of those.
func TestDecoderInexact(t *testing.T) {
	var keys []string
	errID := errors.New("rounded id")
	d := Decoder{Inexact: func(key string) error {
		keys = append(keys, key)
		if key == "id" {
			return errID
		}
		return nil
	}}
	// {a: 2^53, b: 2^53+1 (uint 64), c: -2^53-1 (int 64), d: [2^60], e: {f: 2^60}, g: 1, h: 2^60 as a float 64}
	in := unhex(t, "87"+
		"a161cf0020000000000000"+
		"a162cf0020000000000001"+
		"a163d3ffdfffffffffffff"+
		"a16491cf1000000000000000"+
		"a16581a166cf1000000000000000"+
		"a16701"+
		"a168cb43b0000000000000")
	v, err := d.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "c", "d", "e"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("Inexact called for %q, want %q", keys, want)
	}
	if m := v.(map[string]any); m["b"] != float64(1<<53) || m["c"] != -float64(1<<53) {
		t.Errorf("rounded values %v %v", m["b"], m["c"])
	}
	// Not below the top: a map in an array is not the outermost map.
	keys = nil
	if _, err := d.Decode(unhex(t, "9181a162cf0020000000000001")); err != nil || keys != nil {
		t.Errorf("nested map: %v, calls %q", err, keys)
	}
	// An error ends the decoding.
	_, err = d.Decode(unhex(t, "82a26964cf0020000000000001a178c0"))
	if !errors.Is(err, errID) {
		t.Errorf("rounded id: %v, want it wrapped", err)
	}
}

// envelopeKey is a Key function: the keys of a packet envelope.
var envelopeKey = Keys("type", "nsp", "data")

func TestKeys(t *testing.T) {
	long := strings.Repeat("k", 32)
	key := Keys("type", "tape", "nsp", "", long, "compress", strings.Repeat("l", 31))
	for in, known := range map[string]bool{
		"type": true, "tape": true, "nsp": true, "compress": true, strings.Repeat("l", 31): true,
		"typ": false, "types": false, "tapf": false, "uype": false, "": false, long: false, "n": false, "compresS": false,
	} {
		k, ok := key([]byte(in))
		if ok != known || ok && k != in {
			t.Errorf("%q: %q, %v; want %v", in, k, ok, known)
		}
	}
}

// TestDecoderKey: a key that Key knows is the string it returns (no
// allocation), and other keys decode as before.
func TestDecoderKey(t *testing.T) {
	const typeKey = "type"
	var seen []string
	d := Decoder{Key: func(b []byte) (string, bool) {
		seen = append(seen, string(b))
		if string(b) == typeKey {
			return typeKey, true
		}
		return "", false
	}}
	// {type: 2, nsp: "/", "\xff": 1 (str 8, not a fixstr), type: nil}
	in := unhex(t, "84a47479706502a36e7370a12fd901ff01a474797065c0")
	got, err := d.Decode(in)
	if want := map[string]any{"type": nil, "nsp": "/", "\xff": 1.0}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, %v", got, err)
	}
	if want := []string{"type", "nsp", "type"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("Key asked for %q, want %q (fixstr keys only)", seen, want)
	}
	for k := range got.(map[string]any) {
		if k == typeKey && unsafe.StringData(k) != unsafe.StringData(typeKey) {
			t.Errorf("key %q was allocated, not the one Key gave", k)
		}
	}
	// {type: 2, nsp: "/", types: 1}
	in = unhex(t, "83a47479706502a36e7370a12fa57479706573a101")
	with := testing.AllocsPerRun(100, func() { _, _ = Decoder{Key: envelopeKey}.Decode(in) })
	without := testing.AllocsPerRun(100, func() { _, _ = Decode(in) })
	if with >= without {
		t.Errorf("%v allocations with Key, %v without", with, without)
	}
}

// TestDecodeKeyForms: the in-place reading of fixstr keys agrees with the
// general one at the end of the input and for keys that are not fixstr.
func TestDecodeKeyForms(t *testing.T) {
	for in, want := range map[string]error{
		"81a3":       ErrTruncated, // a key cut short
		"81a16b":     ErrTruncated, // no value
		"81a4747970": ErrTruncated, // a known key cut short
		"81a0c0":     nil,          // the empty key
		"81d9016bc0": nil,          // str 8 key
	} {
		for _, d := range []Decoder{{}, {Key: envelopeKey}, {StringKeys: true, ReplaceInvalidUTF8: true}} {
			if _, err := d.Decode(unhex(t, in)); !errors.Is(err, want) {
				t.Errorf("%s with %+v: %v, want %v", in, d, err, want)
			}
		}
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	// {type: 2, nsp: "/", data: ["chat", {from: "alice", text: "hello", ts: 1700000000000}]}
	in := unhex(b, "83a47479706502a36e7370a12fa46461746192a46368617483a466726f6da5616c696365a474657874a568656c6c6fa27473cf0000018bcfe56800")
	d := Decoder{Key: envelopeKey}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}
