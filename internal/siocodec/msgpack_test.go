package siocodec

import (
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	imsgpack "github.com/sockstream/sockstream/internal/msgpack"
	vm "github.com/vmihailenco/msgpack/v5"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Packets as the official client writes them with socket.io-msgpack-parser
// 3.0.2 (notepack.io 2.2.0's encode, in testdata/node_modules).
const (
	// {type:0, data:undefined, nsp:"/"}: a CONNECT without auth.
	notepackConnect = "83a47479706500a464617461d40000a36e7370a12f"
	// {type:2, data:["chat",{from:"alice",text:"hello there, how are you?",ts:1700000000000}], options:{compress:true}, nsp:"/"}
	notepackChat = "84a47479706502a46461746192a46368617483a466726f6da5616c696365a474657874b968656c6c6f2074686572652c20686f772061726520796f753fa27473cf0000018bcfe56800a76f7074696f6e7381a8636f6d7072657373c3a36e7370a12f"
	// {type:3, data:[Buffer [1,2], ArrayBuffer [3], new Date(0), undefined, {u:undefined, v:1}, -1.5, 2**53], id:7, nsp:"/x"}
	notepackAck = "84a47479706503a46461746197c4020102c7010003d7000000000000000000d4000082a175d40000a17601cbbff8000000000000cf0020000000000000a2696407a36e7370a22f78"
)

func TestMsgpackDecodeNotepack(t *testing.T) {
	d := NewDecoder(Limits{})
	cases := []struct {
		in   string
		want Packet
	}{
		{notepackConnect, Packet{Type: Connect, Nsp: "/"}},
		{notepackChat, Packet{Type: Event, Nsp: "/", Data: []any{"chat", map[string]any{
			"from": "alice", "text": "hello there, how are you?", "ts": 1700000000000.0}}}},
		{notepackAck, Packet{Type: Ack, Nsp: "/x", ID: u64(7), Data: []any{
			[]byte{1, 2}, []byte{3}, "1970-01-01T00:00:00.000Z", nil, map[string]any{"v": 1.0}, -1.5, float64(1 << 53)}}},
	}
	for _, c := range cases {
		p, err := d.Msgpack(unhex(t, c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(*p, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.in, *p, c.want)
		}
	}
}

func TestMsgpackRoundTrip(t *testing.T) {
	type S struct {
		B []byte `json:"b"`
		N int    `json:"n"`
	}
	cases := []struct {
		t    Type
		nsp  string
		id   *uint64
		data any
		want any // Data decoded; nil: data itself
	}{
		{Connect, "/", nil, map[string]any{"sid": "abc"}, nil},
		{Connect, "/admin", nil, nil, nil},
		{Disconnect, "/admin", nil, nil, nil},
		{Event, "/", nil, []any{"e", "x", 2.5, -3.0, 1e300, true, false, nil, []byte{}, []byte("abc"),
			map[string]any{"k": []any{[]byte{0, 1}, strings.Repeat("s", 300)}}}, nil},
		{Event, "/", u64(1 << 53), []any{"big", strings.Repeat("x", 70000), make([]byte, 70000), make([]any, 20)}, nil},
		{BinaryEvent, "/b", u64(3), []any{"typed", [][]byte{{1}, {2}}, map[string][]byte{"k": {3}}, S{B: []byte{1}, N: 2}, 7, int64(-200), uint64(1 << 40)},
			[]any{"typed", []any{[]byte{1}, []byte{2}}, map[string]any{"k": []byte{3}}, map[string]any{"b": "AQ==", "n": 2.0}, 7.0, -200.0, float64(1 << 40)}},
		{Ack, "/", u64(0), []any{}, nil},
		{BinaryAck, "/", u64(9), []any{[]byte{9}}, nil},
		{ConnectError, "/", nil, map[string]any{"message": "no"}, nil},
		{ConnectError, "/", nil, "no", nil},
	}
	for _, c := range cases {
		b, err := EncodeMsgpack(c.t, c.nsp, c.id, c.data)
		if err != nil {
			t.Fatalf("%s %v: %v", c.t, c.data, err)
		}
		p, err := NewDecoder(Limits{}).Msgpack(b)
		if err != nil {
			t.Fatalf("%s %v: decode: %v", c.t, c.data, err)
		}
		wantType := c.t
		switch c.t {
		case BinaryEvent:
			wantType = Event
		case BinaryAck:
			wantType = Ack
		}
		want := c.want
		if want == nil {
			want = c.data
		}
		if p.Type != wantType || p.Nsp != c.nsp || !reflect.DeepEqual(p.ID, c.id) || !reflect.DeepEqual(p.Data, want) {
			t.Errorf("%s: got %+v, want data %#v", c.t, p, want)
		}
	}
}

func TestMsgpackEncodeError(t *testing.T) {
	for _, v := range []any{func() {}, math.NaN(), math.Inf(1), []any{make(chan int)}} {
		if _, err := EncodeMsgpack(Event, "/", nil, []any{"e", v}); err == nil {
			t.Errorf("%T encoded without error", v)
		}
	}
}

// mp builds a MessagePack packet object from key/value pairs, each already
// encoded (a helper for the strictness cases).
func mp(t testing.TB, kv ...string) []byte {
	t.Helper()
	s := hex.EncodeToString([]byte{0x80 | byte(len(kv)/2)})
	for _, x := range kv {
		s += x
	}
	return unhex(t, s)
}

const (
	kType = "a474797065"
	kNsp  = "a36e7370"
	kData = "a464617461"
	kID   = "a26964"
	slash = "a12f"
	evA   = "91a161" // ["a"]
)

func TestMsgpackDecodeStrict(t *testing.T) {
	long := "da0101" + hex.EncodeToString([]byte("/"+strings.Repeat("n", 256)))
	bad := map[string][]byte{
		"empty":                  {},
		"not a map":              unhex(t, "9102"),
		"nil":                    unhex(t, "c0"),
		"no type":                mp(t, kNsp, slash, kData, evA),
		"type as string":         mp(t, kType, "a132", kNsp, slash, kData, evA),
		"type 5":                 mp(t, kType, "05", kNsp, slash, kData, evA),
		"type 2.5":               mp(t, kType, "cb4004000000000000", kNsp, slash, kData, evA),
		"type -1":                mp(t, kType, "ff", kNsp, slash, kData, evA),
		"no nsp":                 mp(t, kType, "02", kData, evA),
		"nsp number":             mp(t, kType, "02", kNsp, "01", kData, evA),
		"nsp too long":           mp(t, kType, "02", kNsp, long, kData, evA),
		"event without data":     mp(t, kType, "02", kNsp, slash),
		"event data not array":   mp(t, kType, "02", kNsp, slash, kData, "80"),
		"event empty":            mp(t, kType, "02", kNsp, slash, kData, "90"),
		"event reserved name":    mp(t, kType, "02", kNsp, slash, kData, "91a7636f6e6e656374"),
		"event name bool":        mp(t, kType, "02", kNsp, slash, kData, "91c3"),
		"ack data not array":     mp(t, kType, "03", kNsp, slash, kData, "a161", kID, "01"),
		"connect data array":     mp(t, kType, "00", kNsp, slash, kData, "90"),
		"disconnect with data":   mp(t, kType, "01", kNsp, slash, kData, "80"),
		"disconnect with nil":    mp(t, kType, "01", kNsp, slash, kData, "c0"),
		"connect_error no data":  mp(t, kType, "04", kNsp, slash),
		"id string":              mp(t, kType, "02", kNsp, slash, kData, evA, kID, "a131"),
		"id negative":            mp(t, kType, "02", kNsp, slash, kData, evA, kID, "ff"),
		"id fraction":            mp(t, kType, "02", kNsp, slash, kData, evA, kID, "cb3ff8000000000000"),
		"id over 2^53":           mp(t, kType, "02", kNsp, slash, kData, evA, kID, "cf0020000000000001"),
		"trailing bytes":         append(mp(t, kType, "02", kNsp, slash, kData, evA), 0xc0),
		"truncated":              mp(t, kType, "02", kNsp, slash, kData, "92a161"),
		"forged array length":    mp(t, kType, "02", kNsp, slash, kData, "ddffffffff"),
		"forged map length":      mp(t, kType, "02", kNsp, slash, kData, "91dfffffffff"),
		"forged str length":      mp(t, kType, "02", kNsp, slash, kData, "91dbffffffff"),
		"forged bin length":      mp(t, kType, "02", kNsp, slash, kData, "92a161c6ffffffff"),
		"non-string key":         mp(t, kType, "02", kNsp, slash, kData, "92a1618101c0"),
		"unknown fixext":         mp(t, kType, "02", kNsp, slash, kData, "92a161d40100"),
		"unknown ext":            mp(t, kType, "02", kNsp, slash, kData, "92a161c7010503"),
		"unsupported byte 0xc1":  mp(t, kType, "02", kNsp, slash, kData, "92a161c1"),
		"timestamp ext (not JS)": mp(t, kType, "02", kNsp, slash, kData, "92a161d6ff00000000"),
		"undefined data event":   mp(t, kType, "02", kNsp, slash, kData, "d40000"),
		"too deep":               mp(t, kType, "02", kNsp, slash, kData, "92a161"+strings.Repeat("91", MaxMsgpackDepth+1)+"c0"),
	}
	for name, in := range bad {
		p, err := NewDecoder(Limits{}).Msgpack(in)
		if err == nil {
			t.Errorf("%s: decoded as %+v", name, p)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", name, err)
		}
	}
	good := map[string][]byte{
		"connect with auth":         mp(t, kType, "00", kNsp, slash, kData, "81a16101"),
		"connect_error string":      mp(t, kType, "04", kNsp, slash, kData, "a161"),
		"event numeric name":        mp(t, kType, "02", kNsp, slash, kData, "9101"),
		"id 2^53":                   mp(t, kType, "02", kNsp, slash, kData, evA, kID, "cf0020000000000000"),
		"id as float":               mp(t, kType, "03", kNsp, slash, kData, "90", kID, "cb4000000000000000"),
		"extra keys ignored":        mp(t, kType, "02", kNsp, slash, kData, evA, "a16f", "c3"),
		"nsp of 256 bytes":          mp(t, kType, "02", kNsp, "d9ff"+hex.EncodeToString([]byte("/"+strings.Repeat("n", 254))), kData, evA),
		"nesting at the bound":      mp(t, kType, "02", kNsp, slash, kData, "92a161"+strings.Repeat("91", MaxMsgpackDepth-3)+"c0"),
		"invalid UTF-8 is replaced": mp(t, kType, "02", kNsp, slash, kData, "91a2ff61"),
	}
	// NaN and the infinities arrive as null, as JSON.stringify sends them.
	p, err := NewDecoder(Limits{}).Msgpack(mp(t, kType, "02", kNsp, slash, kData, "93a161cb7ff8000000000000ca7f800000"))
	if err != nil || !reflect.DeepEqual(p.Data, []any{"a", nil, nil}) {
		t.Errorf("NaN and Inf: %+v, %v", p, err)
	}
	for name, in := range good {
		if _, err := NewDecoder(Limits{}).Msgpack(in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestMsgpackNotepackForms: notepack.io's extensions are told apart by
// their form as well as their type, as notepack.io's decoder does.
func TestMsgpackNotepackForms(t *testing.T) {
	good := map[string]any{
		"ext 8 of 8 bytes is an ArrayBuffer": []byte{1, 2, 3, 4, 5, 6, 7, 8},
		"fixext 8 is a Date":                 "2023-11-14T22:13:20.000Z",
		"empty ArrayBuffer":                  []byte{},
		"negative Date":                      "1969-12-31T23:59:59.999Z",
	}
	in := map[string]string{
		"ext 8 of 8 bytes is an ArrayBuffer": "c708000102030405060708",
		"fixext 8 is a Date":                 "d700" + "0000018bcfe56800",
		"empty ArrayBuffer":                  "c70000",
		"negative Date":                      "d700" + "ffffffffffffffff",
	}
	for name, want := range good {
		p, err := NewDecoder(Limits{}).Msgpack(mp(t, kType, "02", kNsp, slash, kData, "92a161"+in[name]))
		if err != nil || !reflect.DeepEqual(p.Data, []any{"a", want}) {
			t.Errorf("%s: %+v, %v; want %#v", name, p, err, want)
		}
	}
	for name, ext := range map[string]string{
		"fixext 2 of type 0":  "d5000102",
		"fixext 4 of type 0":  "d60001020304",
		"fixext 16 of type 0": "d800" + strings.Repeat("00", 16),
		"fixext 8 of type 1":  "d701" + strings.Repeat("00", 8),
		"ext 8 of type -1":    "c701ff00",
		"truncated Date":      "d7000102",
	} {
		if p, err := NewDecoder(Limits{}).Msgpack(mp(t, kType, "02", kNsp, slash, kData, "92a161"+ext)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %+v, %v; want ErrInvalid", name, p, err)
		}
	}
	// The id is checked for rounding where it is: at the top only.
	p, err := NewDecoder(Limits{}).Msgpack(mp(t, kType, "02", kNsp, slash, kData, "92a16181a26964cf0020000000000001"))
	if err != nil || !reflect.DeepEqual(p.Data, []any{"a", map[string]any{"id": float64(1<<53 + 1)}}) {
		t.Errorf("an id inside data: %+v, %v", p, err)
	}
}

// TestMsgpackWhileAwaiting: a msgpack packet cannot interleave with a
// JSON binary packet being reconstructed (a client speaks one parser).
func TestMsgpackWhileAwaiting(t *testing.T) {
	d := NewDecoder(Limits{})
	if _, err := d.Text([]byte(`51-["a",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Msgpack(unhex(t, notepackChat)); !errors.Is(err, ErrInvalid) {
		t.Errorf("msgpack while awaiting an attachment: %v", err)
	}
}

// The decoding benchmarks compare, on the chat event of notepackChat, this
// package's decoder (packet checks included) with the two generic decoders
// of the module: internal/msgpack (values only) and vmihailenco/msgpack
// (values only, into any).
func BenchmarkMsgpackDecodeEvent(b *testing.B) {
	msg := unhex(b, notepackChat)
	d := NewDecoder(Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Msgpack(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackDecodeEventInternal(b *testing.B) {
	msg := unhex(b, notepackChat)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := imsgpack.Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackDecodeEventVmihailenco(b *testing.B) {
	msg := unhex(b, notepackChat)
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := vm.Unmarshal(msg, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackEncodeEvent(b *testing.B) {
	data := []any{"chat", map[string]any{"from": "alice", "text": "hello there, how are you?", "ts": 1.7e12}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMsgpack(Event, "/", nil, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgpackEncodeEventVmihailenco(b *testing.B) {
	data := map[string]any{"type": 2, "nsp": "/", "data": []any{"chat", map[string]any{"from": "alice", "text": "hello there, how are you?", "ts": 1.7e12}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vm.Marshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzMsgpack: no input makes the decoder panic, and what it accepts
// encodes back to a packet that decodes the same.
func FuzzMsgpack(f *testing.F) {
	for _, s := range []string{notepackConnect, notepackChat, notepackAck} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := NewDecoder(Limits{}).Msgpack(in)
		if err != nil {
			return
		}
		b, err := EncodeMsgpack(p.Type, p.Nsp, p.ID, p.Data)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", p, err)
		}
		q, err := NewDecoder(Limits{}).Msgpack(b)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v, %v; want %+v", q, err, p)
		}
	})
}
