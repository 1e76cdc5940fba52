package siocodec

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func u64(v uint64) *uint64 { return &v }

func TestEncode(t *testing.T) {
	cases := []struct {
		name   string
		t      Type
		nsp    string
		id     *uint64
		data   any
		header string
		atts   int
	}{
		{"connect", Connect, "/", nil, map[string]any{"sid": "abc"}, `0{"sid":"abc"}`, 0},
		{"connect nsp", Connect, "/admin", nil, map[string]any{"sid": "abc"}, `0/admin,{"sid":"abc"}`, 0},
		{"disconnect", Disconnect, "/admin", nil, nil, `1/admin,`, 0},
		{"event", Event, "/", nil, []any{"hello", 1.0, "<b>"}, `2["hello",1,"<b>"]`, 0},
		{"event id", Event, "/chat", u64(12), []any{"e"}, `2/chat,12["e"]`, 0},
		{"ack", Ack, "/", u64(3), []any{"ok"}, `33["ok"]`, 0},
		{"binary event", Event, "/", nil, []any{"bin", []byte{1, 2}, map[string]any{"b": []byte{3}}},
			`52-["bin",{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]`, 2},
		{"binary in typed slice", Event, "/", nil, []any{"bin", [][]byte{{1}, {2}}},
			`52-["bin",[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]]`, 2},
		{"binary ack", Ack, "/x", u64(1), []any{[]byte{9}}, `61-/x,1[{"_placeholder":true,"num":0}]`, 1},
		{"struct bytes stay json", Event, "/", nil, []any{"s", struct{ B []byte }{[]byte{1}}}, `2["s",{"B":"AQ=="}]`, 0},
		{"connect error", ConnectError, "/", nil, map[string]any{"message": "no"}, `4{"message":"no"}`, 0},
	}
	for _, c := range cases {
		enc, err := Encode(c.t, c.nsp, c.id, c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(enc.Header) != c.header || len(enc.Attachments) != c.atts {
			t.Errorf("%s: got %s with %d attachments, want %s with %d", c.name, enc.Header, len(enc.Attachments), c.header, c.atts)
		}
	}
}

func TestEncodeError(t *testing.T) {
	if _, err := Encode(Event, "/", nil, []any{"e", func() {}}); err == nil {
		t.Fatal("a function encoded without error")
	}
}

func TestRoundTrip(t *testing.T) {
	data := []any{"ev", "x", 2.5, []byte("abc"), map[string]any{"k": []any{[]byte{0, 1}, true}}, nil}
	enc, err := Encode(Event, "/n", u64(7), data)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(Limits{})
	p, err := d.Text(enc.Header)
	if err != nil || p != nil {
		t.Fatalf("header: %v %v", p, err)
	}
	for i, a := range enc.Attachments {
		if d.Awaiting() != len(enc.Attachments)-i {
			t.Fatalf("awaiting %d", d.Awaiting())
		}
		p, err = d.Binary(a)
		if err != nil {
			t.Fatal(err)
		}
	}
	if p == nil || p.Type != Event || p.Nsp != "/n" || p.ID == nil || *p.ID != 7 {
		t.Fatalf("got %+v", p)
	}
	if !reflect.DeepEqual(p.Data, data) {
		t.Fatalf("data %#v, want %#v", p.Data, data)
	}
}

func TestDecode(t *testing.T) {
	d := NewDecoder(Limits{})
	good := map[string]Packet{
		`0`:                   {Type: Connect, Nsp: "/"},
		`0/admin,`:            {Type: Connect, Nsp: "/admin"},
		`0/admin,{"token":1}`: {Type: Connect, Nsp: "/admin", Data: map[string]any{"token": 1.0}},
		`0/admin`:             {Type: Connect, Nsp: "/admin"},
		`1`:                   {Type: Disconnect, Nsp: "/"},
		`2["a"]`:              {Type: Event, Nsp: "/", Data: []any{"a"}},
		`2[1,"a"]`:            {Type: Event, Nsp: "/", Data: []any{1.0, "a"}},
		`212["a"]`:            {Type: Event, Nsp: "/", ID: u64(12), Data: []any{"a"}},
		`3/x,5[]`:             {Type: Ack, Nsp: "/x", ID: u64(5), Data: []any{}},
		`50-["a"]`:            {Type: Event, Nsp: "/", Data: []any{"a"}},
	}
	for in, want := range good {
		p, err := d.Text([]byte(in))
		if err != nil || p == nil {
			t.Errorf("%s: %v %v", in, p, err)
			continue
		}
		if !reflect.DeepEqual(*p, want) {
			t.Errorf("%s: got %+v, want %+v", in, *p, want)
		}
	}
	bad := []string{
		``, `9`, `x`, `2`, `2{}`, `2[]`, `2["connect"]`, `2["disconnect"]`, `2[{}]`, `3{}`,
		`2["rooms"]xyz`, `2["a"`, `1{}`, `0[]`, `0"s"`, `4[]`, `5["a"]`, `5x-["a"]`, `5-1-["a"]`,
		`211-["a"]`, `29007199254740993["a"]`, `299999999999999999999["a"]`,
	}
	for _, in := range bad {
		d := NewDecoder(Limits{})
		p, err := d.Text([]byte(in))
		if err == nil {
			t.Errorf("%q decoded as %+v", in, p)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v does not wrap ErrInvalid", in, err)
		}
	}
}

func TestDecodePlaceholders(t *testing.T) {
	bad := []string{
		`51-["a",{"_placeholder":true,"num":1}]`,
		`51-["a",{"_placeholder":true,"num":-1}]`,
		`51-["a",{"_placeholder":true,"num":"0"}]`,
		`51-["a",{"_placeholder":true,"num":0.5}]`,
		`51-["a",{"_placeholder":true}]`,
	}
	for _, in := range bad {
		d := NewDecoder(Limits{})
		if _, err := d.Text([]byte(in)); err != nil {
			t.Fatalf("%s: header refused: %v", in, err)
		}
		if p, err := d.Binary([]byte{1}); err == nil {
			t.Errorf("%s: reconstructed as %+v", in, p)
		}
	}
}

func TestDecodeSequence(t *testing.T) {
	d := NewDecoder(Limits{MaxAttachments: 2})
	if _, err := d.Text([]byte(`53-["a"]`)); err == nil {
		t.Error("3 attachments accepted with a limit of 2")
	}
	if _, err := d.Binary([]byte{1}); err == nil {
		t.Error("binary without header accepted")
	}
	if _, err := d.Text([]byte(`51-["a",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Text([]byte(`2["b"]`)); err == nil {
		t.Error("text accepted while an attachment is awaited")
	}
	p, err := d.Binary([]byte("xyz"))
	if err != nil || p == nil || !bytes.Equal(p.Data.([]any)[1].([]byte), []byte("xyz")) {
		t.Fatalf("got %+v %v", p, err)
	}
}

// TestDecodeAttachmentBytes: the attachments of one packet are bounded in
// total, as they arrive: the one that passes the bound is refused (the
// packet dropped, nothing kept), and the decoder then takes a new packet.
func TestDecodeAttachmentBytes(t *testing.T) {
	d := NewDecoder(Limits{MaxAttachmentBytes: 10})
	header := []byte(`53-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]`)
	if p, err := d.Text(header); p != nil || err != nil {
		t.Fatalf("header: %v %v", p, err)
	}
	for _, a := range [][]byte{make([]byte, 4), make([]byte, 6)} { // 10 bytes: at the bound
		if p, err := d.Binary(a); p != nil || err != nil {
			t.Fatalf("attachment within the bound: %v %v", p, err)
		}
	}
	_, err := d.Binary([]byte{1}) // 11 bytes
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("attachment past the bound: %v, want ErrTooLarge and ErrInvalid", err)
	}
	if d.Awaiting() != 0 || d.atts != nil || d.size != 0 {
		t.Errorf("after the refusal the decoder still holds %d attachments (%d bytes), awaits %d", len(d.atts), d.size, d.Awaiting())
	}
	// A single attachment over the bound is refused at once.
	if _, err := d.Text([]byte(`51-["a",{"_placeholder":true,"num":0}]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Binary(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one attachment of 11 bytes: %v, want ErrTooLarge", err)
	}
	// The next packet starts from zero.
	if _, err := d.Text(header); err != nil {
		t.Fatal(err)
	}
	var p *Packet
	for _, a := range [][]byte{make([]byte, 3), make([]byte, 3), make([]byte, 4)} {
		if p, err = d.Binary(a); err != nil {
			t.Fatalf("a packet of 10 bytes after a refused one: %v", err)
		}
	}
	if p == nil || len(p.Data.([]any)) != 4 {
		t.Fatalf("packet = %+v", p)
	}
	if got := NewDecoder(Limits{}).limits.MaxAttachmentBytes; got != DefaultMaxAttachmentBytes {
		t.Errorf("default MaxAttachmentBytes = %d, want %d", got, DefaultMaxAttachmentBytes)
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	data := []any{"chat", map[string]any{"from": "alice", "text": "hello there, how are you?", "ts": 1.7e12}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(Event, "/", nil, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	msg := []byte(`2["chat",{"from":"alice","text":"hello there, how are you?","ts":1700000000000}]`)
	d := NewDecoder(Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Text(msg); err != nil {
			b.Fatal(err)
		}
	}
}
