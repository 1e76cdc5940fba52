package cluster

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/recovery"
)

const (
	testPID  = "AbCdEfGhIjKlMnOpQrSt"     // 20 characters, as Node's base64id
	testPID2 = "AbCdEfGhIjKlMnOpQrStUv_-" // 24 characters, as zishang520's
)

type taggedData struct {
	UserID string `json:"userId"`
	Admin  bool   `json:"admin,omitempty"`
	Skip   string `json:"-"`
}

func TestSessionRoundTrip(t *testing.T) {
	at := time.UnixMilli(1700000000123).UTC()
	in := recovery.Session{
		SID:   "sid-1",
		PID:   testPID,
		Rooms: []string{"sid-1", "room ü"},
		Data: map[string]any{
			"s":      "text",
			"i":      42,
			"neg":    int64(-300),
			"big":    uint64(1 << 40),
			"f":      3.25,
			"b":      true,
			"nil":    nil,
			"bin":    []byte{0, 1, 2, 255},
			"at":     at,
			"list":   []any{1, "two", map[string]any{"three": 3}},
			"struct": taggedData{UserID: "u1", Skip: "secret"},
		},
		Nsp: "/chat",
	}
	v, err := encodeSession(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSession(v, testPID)
	if err != nil {
		t.Fatal(err)
	}
	want := recovery.Session{
		SID:   "sid-1",
		PID:   testPID,
		Rooms: []string{"sid-1", "room ü"},
		Data: map[string]any{
			"s":      "text",
			"i":      42.0,
			"neg":    -300.0,
			"big":    float64(1 << 40),
			"f":      3.25,
			"b":      true,
			"nil":    nil,
			"bin":    []byte{0, 1, 2, 255},
			"at":     at,
			"list":   []any{1.0, "two", map[string]any{"three": 3.0}},
			"struct": map[string]any{"userId": "u1"},
		},
		Nsp: "/chat",
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", *got, want)
	}
}

func TestEncodeSessionShape(t *testing.T) {
	// Node's restore calls rooms.forEach: rooms must be an array, never nil;
	// and nsp is only written when set, so a Node-shaped session has
	// exactly Node's four keys, in Node's order.
	v, err := encodeSession(recovery.Session{SID: "s", PID: testPID})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(v)
	want := []byte{0x84, 0xa3, 's', 'i', 'd', 0xa1, 's', 0xa3, 'p', 'i', 'd', 0xb4}
	want = append(want, testPID...)
	want = append(want, 0xa5, 'r', 'o', 'o', 'm', 's', 0x90, 0xa4, 'd', 'a', 't', 'a', 0xc0)
	if !bytes.Equal(raw, want) {
		t.Fatalf("encoding\n got % x\nwant % x", raw, want)
	}
}

func TestEncodeSessionError(t *testing.T) {
	_, err := encodeSession(recovery.Session{SID: "s", PID: testPID, Data: map[string]any{"f": func() {}}})
	if err == nil {
		t.Fatal("a func in Data encoded without error")
	}
}

// mp is base64 of the MessagePack of v, as the stream encoder writes it.
func mp(t testing.TB, v any) string {
	t.Helper()
	var n normalizer
	tree, err := n.value(v, 0)
	if err != nil {
		t.Fatal(err)
	}
	var e mpEncoder
	if err := e.encode(tree, 0); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(e.buf)
}

func b64(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }

// corruptValues are stored values a Take must refuse with recovery.ErrCorrupt
// without panicking, by name.
func corruptValues(t testing.TB) map[string]string {
	deep := bytes.Repeat([]byte{0x91}, 1<<20) // a megabyte of nested one-element arrays
	return map[string]string{
		"empty":               "",
		"not base64":          "this is not base64!",
		"base64 of garbage":   b64(0xc1, 0x00),
		"truncated":           b64(0x84, 0xa3, 's', 'i'),
		"trailing bytes":      mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []string{}}) + "AAAA",
		"deep nesting":        base64.StdEncoding.EncodeToString(deep),
		"huge array header":   b64(0xdd, 0xff, 0xff, 0xff, 0xff),
		"huge map header":     b64(0xdf, 0xff, 0xff, 0xff, 0xff),
		"huge string header":  b64(0xdb, 0xff, 0xff, 0xff, 0xff, 'a'),
		"huge bin header":     b64(0xc6, 0x7f, 0xff, 0xff, 0xff),
		"unknown extension":   b64(0xd4, 0x05, 0x00),
		"bad timestamp":       b64(0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"array":               mp(t, []any{"sid", testPID}),
		"string":              mp(t, "session"),
		"map with array key":  b64(0x81, 0x90, 0xc0),
		"no sid":              mp(t, map[string]any{"pid": testPID, "rooms": []string{}}),
		"empty sid":           mp(t, map[string]any{"sid": "", "pid": testPID, "rooms": []string{}}),
		"numeric sid":         mp(t, map[string]any{"sid": 1, "pid": testPID, "rooms": []string{}}),
		"no pid":              mp(t, map[string]any{"sid": "s", "rooms": []string{}}),
		"other pid":           mp(t, map[string]any{"sid": "s", "pid": testPID2, "rooms": []string{}}),
		"no rooms":            mp(t, map[string]any{"sid": "s", "pid": testPID}),
		"rooms not array":     mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": "r"}),
		"room not string":     mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []any{"s", 1}}),
		"nsp not string":      mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []string{}, "nsp": 1}),
		"deep data in a room": mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []any{[]any{}}}),
	}
}

func TestDecodeSessionCorrupt(t *testing.T) {
	for name, v := range corruptValues(t) {
		t.Run(name, func(t *testing.T) {
			s, err := decodeSession(v, testPID)
			if !errors.Is(err, recovery.ErrCorrupt) {
				t.Fatalf("decodeSession = %+v, %v; want recovery.ErrCorrupt", s, err)
			}
			if strings.Contains(err.Error(), testPID) {
				t.Fatalf("the error reveals the pid: %v", err)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	// What Node's Buffer.from(s, "base64") and @msgpack/msgpack accept and
	// we must accept too: unpadded base64, all number forms, unknown keys
	// (the decoder's own forms are tested in internal/msgpack).
	// {"sid": "s", "pid": testPID, "rooms": ["s"], "extra": 1, "data": [...]}
	// with every number form, float 32 included, which no JavaScript
	// encoder writes by default but @msgpack/msgpack reads.
	raw := []byte{0x85, 0xa3, 's', 'i', 'd', 0xa1, 's', 0xa3, 'p', 'i', 'd', 0xb4}
	raw = append(raw, testPID...)
	raw = append(raw, 0xa5, 'r', 'o', 'o', 'm', 's', 0x91, 0xa1, 's', 0xa5, 'e', 'x', 't', 'r', 'a', 0x01,
		0xa4, 'd', 'a', 't', 'a', 0x99,
		0xfb,             // -5
		0xd1, 0xfe, 0xd4, // -300
		0xd2, 0xff, 0xfe, 0xee, 0x90, // -70000
		0xd3, 0xff, 0xff, 0xff, 0xfe, 0xd5, 0xfa, 0x0e, 0x00, // -5e9
		0xcc, 0xc8, // 200
		0xcd, 0xea, 0x60, // 60000
		0xce, 0xee, 0x6b, 0x28, 0x00, // 4e9
		0xcf, 0x00, 0x00, 0x00, 0x01, 0x2a, 0x05, 0xf2, 0x00, // 5e9
		0xca, 0x3f, 0xc0, 0x00, 0x00, // float 32 1.5
	)
	v := strings.TrimRight(base64.StdEncoding.EncodeToString(raw), "=")
	s, err := decodeSession(v, testPID)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{-5.0, -300.0, -70000.0, -5e9, 200.0, 60000.0, 4e9, 5e9, 1.5}
	if !reflect.DeepEqual(s.Data, want) {
		t.Fatalf("numbers: got %#v want %#v", s.Data, want)
	}

}

// FuzzDecodeSession checks that no stored value panics the decoder. Its
// seeds (the corrupt values and a valid one) run with every go test.
func FuzzDecodeSession(f *testing.F) {
	for _, v := range corruptValues(f) {
		if len(v) < 4096 {
			f.Add(v)
		}
	}
	valid, err := encodeSession(recovery.Session{SID: "s", PID: testPID, Rooms: []string{"s"}, Data: map[string]any{"a": []any{1, "b"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, v string) {
		s, err := decodeSession(v, testPID)
		if err == nil && (s.SID == "" || s.PID != testPID || s.Rooms == nil) {
			t.Fatalf("accepted an invalid session %+v", s)
		}
		if err != nil && !errors.Is(err, recovery.ErrCorrupt) {
			t.Fatalf("error %v does not wrap recovery.ErrCorrupt", err)
		}
	})
}

func TestSessionMarksRoundTrip(t *testing.T) {
	in := recovery.Session{SID: "s", PID: testPID, Rooms: []string{"s"}, Nsp: "/", Origin: "0123456789abcdef",
		Marks: []adapter.DeliveryMark{{Offset: "1-1", Own: "1-1", Others: ""}, {Offset: "2-0", Own: "1-1", Others: "2-0"}}}
	v, err := encodeSession(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeSession(v, testPID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*out, in) {
		t.Errorf("round trip: %+v, want %+v", *out, in)
	}
	for name, delivery := range map[string]any{
		"not a map":     "x",
		"no uid":        map[string]any{"marks": []any{}},
		"marks not arr": map[string]any{"uid": "u", "marks": 1},
		"short mark":    map[string]any{"uid": "u", "marks": []any{[]any{"1-1", "1-1"}}},
		"number in":     map[string]any{"uid": "u", "marks": []any{[]any{"1-1", 2, ""}}},
	} {
		v := mp(t, map[string]any{"sid": "s", "pid": testPID, "rooms": []string{}, "delivery": delivery})
		if _, err := decodeSession(v, testPID); !errors.Is(err, recovery.ErrCorrupt) {
			t.Errorf("%s: err = %v, want recovery.ErrCorrupt", name, err)
		}
	}
}

// benchSession is a session as a chat server persists it: a few rooms,
// small user data and a full set of delivery marks.
func benchSession() recovery.Session {
	marks := make([]adapter.DeliveryMark, 64)
	for i := range marks {
		o := "1700000000123-" + strconv.Itoa(i)
		marks[i] = adapter.DeliveryMark{Offset: o, Own: o, Others: "1700000000100-0"}
	}
	return recovery.Session{
		SID: "Xq3kP0aZbQ1xYw2vUu7T", PID: testPID, Rooms: []string{"Xq3kP0aZbQ1xYw2vUu7T", "lobby", "room-42"},
		Data: map[string]any{"user": "alice", "id": 12345, "admin": false, "joined": time.UnixMilli(1700000000123).UTC(),
			"prefs": map[string]any{"theme": "dark", "lang": "en"}, "tags": []string{"a", "b"}},
		Nsp: "/chat", Origin: "0123456789abcdef", Marks: marks,
	}
}

func BenchmarkEncodeSession(b *testing.B) {
	s := benchSession()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeSession(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSession(b *testing.B) {
	v, err := encodeSession(benchSession())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSession(v, testPID); err != nil {
			b.Fatal(err)
		}
	}
}
