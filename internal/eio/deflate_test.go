package eio

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestNegotiateDeflate: the offers RFC 7692 lets the server accept are
// accepted, with server_max_window_bits echoed when offered as 15; an
// offer the server cannot honor is declined and the next one tried.
func TestNegotiateDeflate(t *testing.T) {
	const ok = deflateResponse
	for _, tc := range []struct {
		offers []string
		want   string
	}{
		{nil, ""},
		{[]string{"permessage-deflate"}, ok},
		{[]string{"permessage-deflate; client_max_window_bits"}, ok}, // browsers, Node's ws
		{[]string{"permessage-deflate; client_max_window_bits=10"}, ok},
		{[]string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, ok}, // gorilla
		{[]string{"Permessage-Deflate; Client_Max_Window_Bits"}, ok},
		{[]string{"permessage-deflate; server_max_window_bits=15"}, ok + "; server_max_window_bits=15"},
		{[]string{`permessage-deflate; server_max_window_bits="15"`}, ok + "; server_max_window_bits=15"},
		{[]string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{[]string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits"}, ok},
		{[]string{"permessage-deflate; server_max_window_bits"}, ""},
		{[]string{"permessage-deflate; server_max_window_bits=015"}, ""},
		{[]string{"permessage-deflate; client_max_window_bits=16"}, ""},
		{[]string{"permessage-deflate; client_max_window_bits=7"}, ""},
		{[]string{"permessage-deflate; client_max_window_bits=x"}, ""},
		{[]string{"permessage-deflate; unknown_param"}, ""},
		{[]string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, ""},
		{[]string{"permessage-deflate; client_no_context_takeover=1"}, ""},
		{[]string{"x-webkit-deflate-frame, permessage-deflate"}, ok},
		{[]string{"x-webkit-deflate-frame", "permessage-deflate"}, ok},
		{[]string{"permessage-deflate; =", "permessage-deflate"}, ok}, // a line that does not parse is skipped
		{[]string{"permessage-deflate; client_max_window_bits=\"1"}, ""},
		{[]string{"foo"}, ""},
		{[]string{","}, ""},
	} {
		h := http.Header{}
		for _, o := range tc.offers {
			h.Add("Sec-WebSocket-Extensions", o)
		}
		if got := negotiateDeflate(h); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.offers, got, tc.want)
		}
	}
}

// TestDeflateGorilla: gorilla's client with compression negotiates it, and
// its compressed messages (it compresses every one) arrive intact, as do
// the server's, large and small, text and binary.
func TestDeflateGorilla(t *testing.T) {
	h := newHarness(t, Options{PerMessageDeflate: true}, true)
	d := websocket.Dialer{EnableCompression: true}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, resp, err := d.DialContext(ctx, h.wsURL("EIO=4&transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
		t.Fatalf("extensions %q", got)
	}
	parseOpen(t, readText(t, c))
	r := h.next()
	big := strings.Repeat("a compressible message, ", 4000)
	bin := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 20000)
	for _, m := range []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("4" + big)},
		{websocket.TextMessage, []byte("4small")},
		{websocket.BinaryMessage, bin},
	} {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		got := r.wait(t)
		want := string(m.data)
		if m.typ == websocket.TextMessage {
			want = want[1:]
		}
		if got.data != want || got.binary != (m.typ == websocket.BinaryMessage) {
			t.Fatalf("server got %d bytes (binary %v), want %d", len(got.data), got.binary, len(want))
		}
		typ, echo := readFrame(t, c)
		if typ != m.typ || string(echo) != string(m.data) {
			t.Fatalf("echo: %d bytes of type %d, want %d of type %d", len(echo), typ, len(m.data), m.typ)
		}
	}
}

// rawWS is a WebSocket client writing and reading raw frames.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// dialRaw opens a WebSocket session with the Sec-WebSocket-Extensions
// offer ext ("" for none) and reads its open packet.
func dialRaw(t *testing.T, h *harness, ext string) *rawWS {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	c := &rawWS{t: t, conn: conn, br: bufio.NewReader(conn)}
	c.resp, err = http.ReadResponse(c.br, nil)
	if err != nil || c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", c.resp, err)
	}
	b0, p := c.read()
	if b0 == 0xC1 && ext != "" {
		p = inflateForTest(t, p) // a threshold below its size
		b0 = 0x81
	}
	if b0 != 0x81 || p[0] != '0' {
		t.Fatalf("open packet: %#x %q", b0, p)
	}
	return c
}

// write writes one masked frame with first byte b0.
func (c *rawWS) write(b0 byte, payload []byte) {
	c.t.Helper()
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	f = append(f, key[:]...)
	start := len(f)
	f = append(f, payload...)
	mask(f[start:], key, 0)
	if _, err := c.conn.Write(f); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one unmasked frame: its first byte and payload.
func (c *rawWS) read() (byte, []byte) {
	c.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(c.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(c.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return h[0], p
}

// readClose reads frames until a close frame and returns its code.
func (c *rawWS) readClose() uint16 {
	c.t.Helper()
	for {
		b0, p := c.read()
		if b0&0x0F == opClose {
			if len(p) < 2 {
				return 0
			}
			return binary.BigEndian.Uint16(p)
		}
	}
}

// deflateForTest is what a client sends: a deflate stream with a sync flush, its
// final 00 00 ff ff removed.
func deflateForTest(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = fw.Write(p)
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("no sync marker")
	}
	return out[:len(out)-4]
}

func inflateForTest(t *testing.T, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader(inflateTail))))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// TestDeflateWrite: a connection that negotiated deflate gets messages of
// at least the threshold compressed (RSV1, inflating to the packet), the
// others plain: smaller ones, DisableCompression'd ones, incompressible
// ones; a connection that did not gets everything plain. A message is
// compressed once for all its recipients.
func TestDeflateWrite(t *testing.T) {
	h := newHarness(t, Options{PerMessageDeflate: true, PerMessageDeflateThreshold: 100}, false)
	z := dialRaw(t, h, "permessage-deflate; client_max_window_bits")
	if got := z.resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
		t.Fatalf("extensions %q", got)
	}
	rz := h.next()
	plain := dialRaw(t, h, "")
	if got := plain.resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Fatalf("extensions %q without an offer", got)
	}
	rp := h.next()

	random := make([]byte, 5000)
	_, _ = rand.Read(random)
	for _, tc := range []struct {
		name       string
		m          *Message
		compressed bool
	}{
		{"text at the threshold", TextMessage([]byte(strings.Repeat("y", 99))), true},
		{"text below the threshold", TextMessage([]byte(strings.Repeat("y", 98))), false},
		{"large text", TextMessage([]byte(strings.Repeat("x", 1000))), true},
		{"binary", BinaryMessage(bytes.Repeat([]byte{0, 1, 2}, 1000)), true},
		{"compression off", TextMessage([]byte(strings.Repeat("z", 1000))).DisableCompression(), false},
		{"incompressible", BinaryMessage(random), false},
	} {
		want := tc.m.wsFrame()[len(tc.m.wsFrame())-tc.m.size():] // the plain payload
		for _, c := range []struct {
			name       string
			ws         *rawWS
			r          *recorder
			compressed bool
		}{{"deflate", z, rz, tc.compressed}, {"plain", plain, rp, false}} {
			if err := c.r.s.Send(tc.m); err != nil {
				t.Fatal(err)
			}
			b0, p := c.ws.read()
			if b0&0x0F != tc.m.op || b0&0x80 == 0 || b0&0x30 != 0 {
				t.Fatalf("%s, %s: first byte %#x", tc.name, c.name, b0)
			}
			if got := b0&0x40 != 0; got != c.compressed {
				t.Fatalf("%s, %s: RSV1 %v, want %v", tc.name, c.name, got, c.compressed)
			}
			if c.compressed {
				if len(p) >= len(want) {
					t.Errorf("%s: %d bytes compressed from %d", tc.name, len(p), len(want))
				}
				p = inflateForTest(t, p)
			}
			if !bytes.Equal(p, want) {
				t.Fatalf("%s, %s: payload of %d bytes, want %d", tc.name, c.name, len(p), len(want))
			}
		}
	}

	// Shared: the second recipient gets the frame built for the first.
	m := TextMessage([]byte(strings.Repeat("shared ", 100)))
	if err := rz.s.Send(m); err != nil {
		t.Fatal(err)
	}
	_, p1 := z.read()
	f := m.wsz.Load()
	if f == nil {
		t.Fatal("no compressed frame kept")
	}
	z2 := dialRaw(t, h, "permessage-deflate")
	rz2 := h.next()
	if err := rz2.s.Send(m); err != nil {
		t.Fatal(err)
	}
	_, p2 := z2.read()
	if m.wsz.Load() != f || !bytes.Equal(p1, p2) {
		t.Fatal("the compressed frame was built again")
	}
}

// TestDeflateBroadcast: a batched broadcast to connections with and without
// deflate, written inline (flushHeld) and by the flushers (a large one),
// reaches each in its form.
func TestDeflateBroadcast(t *testing.T) {
	h := newHarness(t, Options{PerMessageDeflate: true}, false)
	var clients []*rawWS
	var recs []*recorder
	for i := range 4 {
		ext := ""
		if i%2 == 0 {
			ext = "permessage-deflate"
		}
		clients = append(clients, dialRaw(t, h, ext))
		recs = append(recs, h.next())
	}
	for _, size := range []int{2000, maxInline + 1000} {
		m := TextMessage(bytes.Repeat([]byte("b"), size))
		var b Batch
		for _, r := range recs {
			if err := r.s.SendBatched(&b, m); err != nil {
				t.Fatal(err)
			}
		}
		b.Flush()
		for i, c := range clients {
			b0, p := c.read()
			if b0&0x40 != 0 {
				p = inflateForTest(t, p)
			}
			if (b0&0x40 != 0) != (i%2 == 0) || len(p) != size+1 || p[0] != '4' {
				t.Fatalf("size %d, client %d: %#x, %d bytes", size, i, b0, len(p))
			}
		}
	}
}

// TestDeflateRead: compressed client messages are inflated, whole or in
// fragments (RSV1 on the first only), up to MaxPayload exactly.
func TestDeflateRead(t *testing.T) {
	const maxPayload = 10000
	h := newHarness(t, Options{PerMessageDeflate: true, MaxPayload: maxPayload}, false)
	c := dialRaw(t, h, "permessage-deflate")
	r := h.next()

	text := "4" + strings.Repeat("é", (maxPayload-1)/2)
	c.write(0x80|0x40|opText, deflateForTest(t, []byte(text)))
	if got := r.wait(t); got.data != text[1:] || got.binary {
		t.Fatalf("got %d bytes, want %d", len(got.data), len(text)-1)
	}
	bin := bytes.Repeat([]byte{9}, maxPayload)
	c.write(0x80|0x40|opBinary, deflateForTest(t, bin))
	if got := r.wait(t); got.data != string(bin) || !got.binary {
		t.Fatalf("got %d bytes, want %d", len(got.data), len(bin))
	}
	// In three fragments, a ping between two of them.
	z := deflateForTest(t, []byte(text))
	c.write(0x40|opText, z[:10])
	c.write(0x80|opPing, []byte("p"))
	c.write(opContinuation, z[10:20])
	c.write(0x80|opContinuation, z[20:])
	if b0, p := c.read(); b0 != 0x80|opPong || string(p) != "p" {
		t.Fatalf("pong: %#x %q", b0, p)
	}
	if got := r.wait(t); got.data != text[1:] {
		t.Fatalf("fragmented: got %d bytes, want %d", len(got.data), len(text)-1)
	}
	// Uncompressed messages still go as they are.
	c.write(0x80|opText, []byte("4plain"))
	if got := r.wait(t); got.data != "plain" {
		t.Fatalf("got %q", got.data)
	}
	// The empty compressed message.
	c.write(0x80|0x40|opBinary, []byte{0})
	if got := r.wait(t); got.data != "" || !got.binary {
		t.Fatalf("got %q", got.data)
	}
}

// TestDeflateReadErrors: what the reader refuses, and the close code.
func TestDeflateReadErrors(t *testing.T) {
	const maxPayload = 10000
	bomb := deflateForTest(t, append([]byte("4"), make([]byte, 100*maxPayload)...))
	var numbers strings.Builder
	numbers.WriteString("4")
	for i := range 1000 {
		fmt.Fprintf(&numbers, "%d ", i*7919%1000)
	}
	truncated := deflateForTest(t, []byte(numbers.String()))
	truncated = truncated[:len(truncated)/2]
	for _, tc := range []struct {
		name   string
		on     bool   // Options.PerMessageDeflate
		offer  string // the client's offer
		frames [][]byte
		code   uint16
	}{
		{"RSV1 without deflate", false, "permessage-deflate", [][]byte{{0x80 | 0x40 | opText}, compressedFour}, 1002},
		{"RSV1 not negotiated", true, "", [][]byte{{0x80 | 0x40 | opText}, compressedFour}, 1002},
		{"inflates past MaxPayload", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opText}, bomb}, 1009},
		{"one byte past MaxPayload", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opBinary}, deflateForTest(t, make([]byte, maxPayload+1))}, 1009},
		{"RSV1 on a continuation", true, "permessage-deflate", [][]byte{{0x40 | opText}, compressedFour[:1], {0x80 | 0x40 | opContinuation}, compressedFour[1:]}, 1002},
		{"RSV1 on a ping", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opPing}, nil}, 1002},
		{"RSV2", true, "permessage-deflate", [][]byte{{0x80 | 0x20 | opText}, []byte("4")}, 1002},
		{"not deflate", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opText}, {0xff, 0xff, 0xff, 0xff}}, 1007},
		{"truncated", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opText}, truncated}, 1007},
		{"invalid UTF-8 inflated", true, "permessage-deflate", [][]byte{{0x80 | 0x40 | opText}, deflateForTest(t, []byte{'4', 0xff})}, 1007},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{PerMessageDeflate: tc.on, MaxPayload: maxPayload}, false)
			c := dialRaw(t, h, tc.offer)
			r := h.next()
			for i := 0; i < len(tc.frames); i += 2 {
				c.write(tc.frames[i][0], tc.frames[i+1])
			}
			if code := c.readClose(); code != tc.code {
				t.Errorf("close code %d, want %d", code, tc.code)
			}
			if reason := r.waitClose(t); reason != ReasonTransportError {
				t.Errorf("reason %q", reason)
			}
			select {
			case m := <-r.msgs:
				t.Errorf("delivered %d bytes", len(m.data))
			default:
			}
		})
	}
}

// compressedFour is "4" compressed.
var compressedFour = func() []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = fw.Write([]byte("4"))
	_ = fw.Flush()
	return b.Bytes()[:b.Len()-4]
}()

// TestDeflateUpgrade: a polling session upgrading to a WebSocket that
// negotiates deflate gets its large messages compressed after the upgrade.
func TestDeflateUpgrade(t *testing.T) {
	h := newHarness(t, Options{PerMessageDeflate: true}, false)
	sid := h.openPolling()
	r := h.next()
	d := websocket.Dialer{EnableCompression: true}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, resp, err := d.DialContext(ctx, h.wsURL("EIO=4&transport=websocket&sid="+sid), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
		t.Fatalf("extensions %q", got)
	}
	send(t, c, "2probe")
	if got := readText(t, c); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	send(t, c, "5")
	eventually(t, "upgrade", func() bool { return r.s.Transport() == WebSocket })
	big := strings.Repeat("upgraded ", 1000)
	m := TextMessage([]byte(big))
	if err := r.s.Send(m); err != nil {
		t.Fatal(err)
	}
	for {
		got := readText(t, c)
		if got == "6" {
			continue // the noop ending the polling GET, if any
		}
		if got != "4"+big {
			t.Fatalf("got %d bytes", len(got))
		}
		break
	}
	if m.wsz.Load() == nil {
		t.Fatal("not sent compressed")
	}
	send(t, c, "4"+big) // gorilla compresses it
	if got := r.wait(t); got.data != big {
		t.Fatalf("server got %d bytes", len(got.data))
	}
}

// TestDeflateThresholdOption: a negative threshold is refused.
func TestDeflateThresholdOption(t *testing.T) {
	if _, err := NewServer(Options{PerMessageDeflateThreshold: -1}, nil); err == nil {
		t.Fatal("negative threshold accepted")
	}
}
