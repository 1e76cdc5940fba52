package recovery

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

const (
	testPID  = "AbCdEfGhIjKlMnOpQrSt"     // 20 characters, as Node's base64id
	testPID2 = "AbCdEfGhIjKlMnOpQrStUv_-" // 24 characters, as zishang520's
)

func TestValidPID(t *testing.T) {
	for _, pid := range []string{testPID, testPID2, "aaaaaaaaaaaaaaaaaaaa", "-_-_-_-_-_-_-_-_-_-_"} {
		if !ValidPID(pid) {
			t.Errorf("ValidPID(%q) = false", pid)
		}
	}
	for _, pid := range []string{"", "short", testPID + "x", testPID[:19], "AbCdEfGhIjKlMnOpQrS*", "AbCdEfGhIjKlMnOpQrS/",
		"AbCdEfGhIjKlMnOpQrS=", "AbCdEfGhIjKlMnOpQrS ", "AbCdEfGhIjKlMnOpQrSé", strings.Repeat("a", 1000)} {
		if ValidPID(pid) {
			t.Errorf("ValidPID(%q) = true", pid)
		}
	}
}

type taggedData struct {
	UserID string `json:"userId"`
	Admin  bool   `json:"admin,omitempty"`
	Skip   string `json:"-"`
}

func TestSessionRoundTrip(t *testing.T) {
	at := time.UnixMilli(1700000000123).UTC()
	in := Session{
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
	want := Session{
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
	v, err := encodeSession(Session{SID: "s", PID: testPID})
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
	_, err := encodeSession(Session{SID: "s", PID: testPID, Data: map[string]any{"f": func() {}}})
	if err == nil {
		t.Fatal("a func in Data encoded without error")
	}
}

func mp(t testing.TB, v any) string {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func b64(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }

// corruptValues are stored values a Take must refuse with ErrCorrupt
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
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeSession = %+v, %v; want ErrCorrupt", s, err)
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
	raw, _ := msgpack.Marshal(map[string]any{"sid": "s", "pid": testPID, "rooms": []string{"s"}, "extra": 1,
		"data": []any{int8(-5), int16(-300), int32(-70000), int64(-5e9), uint8(200), uint16(60000), uint32(4e9), uint64(5e9), float32(1.5)}})
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
	valid, err := encodeSession(Session{SID: "s", PID: testPID, Rooms: []string{"s"}, Data: map[string]any{"a": []any{1, "b"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, v string) {
		s, err := decodeSession(v, testPID)
		if err == nil && (s.SID == "" || s.PID != testPID || s.Rooms == nil) {
			t.Fatalf("accepted an invalid session %+v", s)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}
