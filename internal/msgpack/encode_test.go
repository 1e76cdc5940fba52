package msgpack

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestAppendForms checks each writer function at the bounds of its forms:
// the smallest form that holds the value, as the specification requires.
func TestAppendForms(t *testing.T) {
	check := func(what string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s: %s, want %s", what, h, want)
		}
	}
	check("nil", AppendNil(nil), "c0")
	check("true", AppendBool(nil, true), "c3")
	check("false", AppendBool(nil, false), "c2")
	for v, want := range map[uint64]string{
		0: "00", 127: "7f", 128: "cc80", 255: "ccff", 256: "cd0100", 65535: "cdffff", 65536: "ce00010000",
		math.MaxUint32: "ceffffffff", 1 << 32: "cf0000000100000000", math.MaxUint64: "cfffffffffffffffff",
	} {
		check(fmt.Sprint("uint ", v), AppendUint(nil, v), want)
	}
	for v, want := range map[int64]string{
		5: "05", 200: "ccc8", math.MaxInt64: "cf7fffffffffffffff", -1: "ff", -32: "e0", -33: "d0df", -128: "d080",
		-129: "d1ff7f", -32768: "d18000", -32769: "d2ffff7fff", math.MinInt32: "d280000000",
		math.MinInt32 - 1: "d3ffffffff7fffffff", math.MinInt64: "d38000000000000000",
	} {
		check(fmt.Sprint("int ", v), AppendInt(nil, v), want)
	}
	check("float32", AppendFloat32(nil, 1.5), "ca3fc00000")
	check("float64", AppendFloat64(nil, 1.5), "cb3ff8000000000000")
	check("integral float64", AppendFloat64(nil, 2), "cb4000000000000000")
	for n, want := range map[int]string{0: "a0", 31: "bf", 32: "d920", 255: "d9ff", 256: "da0100", 65536: "db00010000"} {
		check(fmt.Sprint("str header ", n), AppendStringHeader(nil, n), want)
		s := strings.Repeat("a", n)
		check(fmt.Sprint("str ", n), AppendString(nil, s), want+hex.EncodeToString([]byte(s)))
	}
	for n, want := range map[int]string{0: "c400", 255: "c4ff", 256: "c50100", 65536: "c600010000"} {
		check(fmt.Sprint("bin header ", n), AppendBinaryHeader(nil, n), want)
	}
	check("bin nil", AppendBinary(nil, nil), "c400")
	check("bin", AppendBinary(nil, []byte{1, 2}), "c4020102")
	for n, want := range map[int][2]string{15: {"9f", "8f"}, 16: {"dc0010", "de0010"}, 65535: {"dcffff", "deffff"}, 65536: {"dd00010000", "df00010000"}} {
		check(fmt.Sprint("array ", n), AppendArrayHeader(nil, n), want[0])
		check(fmt.Sprint("map ", n), AppendMapHeader(nil, n), want[1])
	}
	for n, want := range map[int]string{
		1: "d405", 2: "d505", 4: "d605", 8: "d705", 16: "d805",
		0: "c70005", 3: "c70305", 12: "c70c05", 255: "c7ff05", 256: "c8010005", 65536: "c90001000005",
	} {
		check(fmt.Sprint("ext ", n), AppendExtHeader(nil, 5, n), want)
	}
	check("ext of a negative type", AppendExtHeader(nil, -1, 4), "d6ff")
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1, 0), "d6ff00000001"},                       // timestamp 32
		{time.Unix(1<<32-1, 0), "d6ffffffffff"},                 // timestamp 32, the last second
		{time.Unix(1, 5), "d7ff0000001400000001"},               // timestamp 64
		{time.Unix(1<<32, 0), "d7ff0000000100000000"},           // timestamp 64, past 32 bits
		{time.Unix(-1, 0), "c70cff00000000ffffffffffffffff"},    // timestamp 96, before 1970
		{time.Unix(1<<34, 0), "c70cff000000000000000400000000"}, // timestamp 96, past 34 bits
	} {
		check(fmt.Sprint("timestamp ", c.t.Unix()), AppendTimestamp(nil, c.t), c.want)
	}
	// Appending keeps what b holds.
	if got := AppendString([]byte{0x92}, "a"); !bytes.Equal(got, []byte{0x92, 0xa1, 'a'}) {
		t.Errorf("append to a prefix: % x", got)
	}
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMapHeader(buf[:0], 3)
		buf = AppendString(buf, "type")
		buf = AppendUint(buf, 2)
		buf = AppendString(buf, "nsp")
		buf = AppendString(buf, "/")
		buf = AppendString(buf, "data")
		buf = AppendArrayHeader(buf, 3)
		buf = AppendString(buf, "chat")
		buf = AppendInt(buf, -1700000000000)
		buf = AppendFloat64(buf, 0.5)
	}
}
