package server_test

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestPerMessageDeflate: with PerMessageDeflate, the official Node client
// (which offers permessage-deflate by default) negotiates it; a large
// event, a large broadcast and binary attachments arrive intact, sent
// compressed (checked on the wire); the client's own compressed messages
// are read; Broadcast.Compress(false) goes uncompressed.
func TestPerMessageDeflate(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{PerMessageDeflate: true})
	big := strings.Repeat("a large and compressible event; ", 2000)
	bin := bytes.Repeat([]byte("binary attachment "), 2000)
	var mu sync.Mutex
	sockets := map[string]*server.Socket{}
	srv.Srv.OnConnection(func(s *server.Socket) {
		q := s.Handshake().Query
		s.Join(q.Get("room"))
		mu.Lock()
		sockets[q.Get("id")] = s
		mu.Unlock()
		s.On("echo", func(e *server.Event) { _ = s.Emit("echo", e.Args...) })
		_ = s.Emit("hello", big)
	})
	taps := map[string]*wireTap{}
	c := siotest.StartClients(t)
	for _, cl := range []struct {
		id, room   string
		transports []string
	}{
		{"a", "all", []string{"websocket"}},
		{"b", "all", []string{"polling", "websocket"}}, // upgrades
		{"p", "plain", []string{"websocket"}},
	} {
		taps[cl.id] = newWireTap(t, srv.URL)
		c.Connect(t, cl.id, taps[cl.id].URL+"/", map[string]string{"id": cl.id, "room": cl.room},
			map[string]any{"transports": cl.transports})
	}
	for _, id := range []string{"a", "b", "p"} {
		ev := c.Wait(t, "hello of "+id, apiWait, siotest.IsEventFor(id, "hello"))
		if len(ev.Args) != 1 || ev.Args[0] != big {
			t.Fatalf("%s: hello of %d args", id, len(ev.Args))
		}
	}
	siotest.Eventually(t, apiWait, "b's upgrade", func() bool {
		mu.Lock()
		s := sockets["b"]
		mu.Unlock()
		return s != nil && s.Transport() == server.WebSocket
	})

	// The client compresses what it sends (its threshold is 1024 bytes).
	c.Emit(t, "a", "echo", big, map[string]any{"$bin": base64.StdEncoding.EncodeToString(bin)})
	ev := c.Wait(t, "echo", apiWait, siotest.IsEventFor("a", "echo"))
	if len(ev.Args) != 2 || ev.Args[0] != big || !bytes.Equal(siotest.Bin(t, ev.Args[1]), bin) {
		t.Fatalf("echo of %d args", len(ev.Args))
	}

	if err := srv.Srv.To("all").Emit("news", big, bin); err != nil {
		t.Fatal(err)
	}
	if err := srv.Srv.To("plain").Compress(false).Emit("plain", big); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		ev := c.Wait(t, "news of "+id, apiWait, siotest.IsEventFor(id, "news"))
		if len(ev.Args) != 2 || ev.Args[0] != big || !bytes.Equal(siotest.Bin(t, ev.Args[1]), bin) {
			t.Fatalf("%s: news of %d args", id, len(ev.Args))
		}
	}
	ev = c.Wait(t, "plain", apiWait, siotest.IsEventFor("p", "plain"))
	if len(ev.Args) != 1 || ev.Args[0] != big {
		t.Fatalf("plain of %d args", len(ev.Args))
	}

	// The client compressed its large messages.
	var fromClient []string
	for _, f := range taps["a"].clientFrames(t) {
		if f.compressed {
			fromClient = append(fromClient, string(f.payload[:min(len(f.payload), 10)]))
		}
	}
	if len(fromClient) != 2 || !strings.HasPrefix(fromClient[0], `451-["echo"`[:10]) {
		t.Errorf("the client's compressed frames: %q", fromClient)
	}

	// On the wire: every WebSocket negotiated the extension; each large
	// message went compressed, but the one sent with Compress(false).
	for id, tap := range taps {
		frames, negotiated := tap.frames(t)
		if !negotiated {
			t.Fatalf("%s: permessage-deflate not negotiated", id)
		}
		compressed := map[string]bool{}
		for _, f := range frames {
			for _, event := range []string{`42["hello"`, `42["echo"`, `451-["news"`, `451-["echo"`, `42["plain"`} {
				if bytes.HasPrefix(f.payload, []byte(event)) {
					compressed[event] = f.compressed
				}
			}
			if bytes.Equal(f.payload, bin) && !f.compressed {
				t.Errorf("%s: a binary attachment went uncompressed", id)
			}
		}
		want := map[string]map[string]bool{
			"a": {`42["hello"`: true, `451-["echo"`: true, `451-["news"`: true},
			"b": {`451-["news"`: true}, // its hello went over polling
			"p": {`42["hello"`: true, `42["plain"`: false},
		}[id]
		for event, z := range want {
			got, ok := compressed[event]
			if !ok || got != z {
				t.Errorf("%s: %s seen %v, compressed %v; want compressed %v", id, event, ok, got, z)
			}
		}
	}
}

// wireTap is a TCP proxy in front of a server that keeps what the server
// sent on each connection.
type wireTap struct {
	URL string

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
	down   []*syncBuffer // what the server sent, per connection
	up     []*syncBuffer // what the client sent
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

// newWireTap proxies to target (http://host:port) until the test ends.
func newWireTap(t *testing.T, target string) *wireTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &wireTap{URL: "http://" + ln.Addr().String(), ln: ln}
	host := strings.TrimPrefix(target, "http://")
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			srv, err := net.Dial("tcp", host)
			if err != nil {
				client.Close()
				continue
			}
			buf, up := &syncBuffer{}, &syncBuffer{}
			w.mu.Lock()
			if w.closed {
				w.mu.Unlock()
				client.Close()
				srv.Close()
				return
			}
			w.conns = append(w.conns, client, srv)
			w.down = append(w.down, buf)
			w.up = append(w.up, up)
			w.wg.Add(2)
			w.mu.Unlock()
			go func() {
				defer w.wg.Done()
				_, _ = io.Copy(io.MultiWriter(up, srv), client)
				srv.Close()
			}()
			go func() {
				defer w.wg.Done()
				// Kept before it is passed on: once the client has seen
				// something, the tap has it.
				_, _ = io.Copy(io.MultiWriter(buf, client), srv)
				client.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		w.mu.Lock()
		w.closed = true
		for _, c := range w.conns {
			c.Close()
		}
		w.mu.Unlock()
		w.wg.Wait()
	})
	return w
}

// wireFrame is a frame the server sent, its payload inflated if it was
// compressed.
type wireFrame struct {
	compressed bool
	payload    []byte
}

// frames parses what the server sent on the tap's WebSocket connections
// (polling ones are skipped): the frames, and whether every WebSocket
// negotiated permessage-deflate.
func (w *wireTap) frames(t *testing.T) ([]wireFrame, bool) {
	t.Helper()
	w.mu.Lock()
	down := append([]*syncBuffer(nil), w.down...)
	w.mu.Unlock()
	var out []wireFrame
	negotiated, sockets := true, 0
	for _, d := range down {
		b := d.bytes()
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 101 ")) {
			continue
		}
		sockets++
		head, rest, ok := bytes.Cut(b, []byte("\r\n\r\n"))
		if !ok {
			t.Fatal("incomplete 101 response")
		}
		if !bytes.Contains(head, []byte("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover")) {
			negotiated = false
		}
		out = append(out, parseFrames(t, rest)...)
	}
	return out, negotiated && sockets > 0
}

// clientFrames parses what the client sent on the tap's WebSocket
// connections.
func (w *wireTap) clientFrames(t *testing.T) []wireFrame {
	t.Helper()
	w.mu.Lock()
	up := append([]*syncBuffer(nil), w.up...)
	w.mu.Unlock()
	var out []wireFrame
	for _, u := range up {
		b := u.bytes()
		if !bytes.HasPrefix(b, []byte("GET ")) || !bytes.Contains(b, []byte("transport=websocket")) {
			continue
		}
		if _, rest, ok := bytes.Cut(b, []byte("\r\n\r\n")); ok {
			out = append(out, parseFrames(t, rest)...)
		}
	}
	return out
}

// parseFrames parses WebSocket frames, masked or not, inflating the
// compressed ones; an incomplete last frame is left out.
func parseFrames(t *testing.T, rest []byte) []wireFrame {
	t.Helper()
	var out []wireFrame
frames:
	for len(rest) >= 2 {
		b0, n, h := rest[0], uint64(rest[1]&0x7F), 2
		switch n {
		case 126:
			if len(rest) < 4 {
				break frames
			}
			n, h = uint64(binary.BigEndian.Uint16(rest[2:])), 4
		case 127:
			if len(rest) < 10 {
				break frames
			}
			n, h = binary.BigEndian.Uint64(rest[2:]), 10
		}
		masked := rest[1]&0x80 != 0
		if masked {
			h += 4
		}
		if len(rest) < h || uint64(len(rest)-h) < n {
			break frames // cut by the end of the test
		}
		f := wireFrame{compressed: b0&0x40 != 0, payload: bytes.Clone(rest[h : h+int(n)])}
		if masked {
			key := rest[h-4 : h]
			for i := range f.payload {
				f.payload[i] ^= key[i%4]
			}
		}
		rest = rest[h+int(n):]
		if f.compressed {
			p, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(f.payload),
				strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff"))))
			if err != nil {
				t.Fatalf("inflating a frame: %v", err)
			}
			f.payload = p
		}
		out = append(out, f)
	}
	return out
}
