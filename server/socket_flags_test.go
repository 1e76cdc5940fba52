package server_test

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestSocketVolatile: Socket.Volatile, with the official client. To an
// idle client a volatile event is delivered; to a client whose transport
// is busy (the proxy in front of it stops reading: the server's writes
// back up) it is dropped and counted in sockstream_volatile_dropped_total,
// while the ordinary events sent around it, and after it, are all
// delivered, in order, once the client reads again.
func TestSocketVolatile(t *testing.T) {
	t.Parallel()
	// Room for the backlog: neither the bound nor the write timeout may
	// end the connection while the proxy holds it.
	srv := siotest.StartServer(t, "n0", server.Config{MaxBufferedBytes: 128 << 20, WriteTimeout: time.Minute})
	socks := make(chan *server.Socket, 1)
	var (
		heardMu sync.Mutex
		heard   []int // the "vol" events the outgoing listener heard of
	)
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.OnAnyOutgoing(func(e *server.Event) {
			if e.Name == "vol" {
				heardMu.Lock()
				heard = append(heard, e.Args[0].(int))
				heardMu.Unlock()
			}
		})
		s.On("go", func(e *server.Event) {
			_ = s.Volatile().Emit("hello", e.Args...)
			_ = s.Emit("mark", e.Args...)
		})
		socks <- s
	})
	gate := newGateProxy(t, srv.URL)
	c := siotest.StartClients(t)
	c.Connect(t, "v", gate.URL+"/", nil, nil)
	s := siotest.Recv(t, socks, waitFor, "the socket")

	// An idle client gets a volatile event. The server may be writing
	// something else at that moment (a ping): then it is dropped, and
	// the client asks again.
	for seq := 0; c.Count(siotest.IsEventFor("v", "hello")) == 0; seq++ {
		if seq == 20 {
			t.Fatal("20 volatile events to an idle client, none delivered")
		}
		c.Emit(t, "v", "go", seq)
		c.WaitN(t, "mark", seq+1, waitFor, siotest.IsEventFor("v", "mark"))
	}

	dropped := func() float64 { return gathered(t, srv.Srv.Registry(), "sockstream_volatile_dropped_total", "", "") }
	before := dropped()
	gate.hold(true)
	big := strings.Repeat("x", 64<<10)
	bigs, vols := 0, 0
	for dropped() == before {
		if bigs*len(big) > 96<<20 {
			t.Fatalf("%d MB queued for a client that reads nothing, no volatile event dropped", bigs*len(big)>>20)
		}
		if err := s.Emit("big", bigs, big); err != nil {
			t.Fatal(err)
		}
		bigs++
		if err := s.Volatile().Emit("vol", vols); err != nil {
			t.Fatalf("a volatile emit to a busy client: %v", err)
		}
		vols++
	}
	t.Logf("a volatile event dropped after %d ordinary ones (%d MB) were queued", bigs, bigs*len(big)>>20)
	if d := dropped() - before; d != 1 {
		t.Fatalf("%v volatile events counted dropped, want 1", d)
	}
	if err := s.Emit("after", vols); err != nil {
		t.Fatal(err)
	}
	gate.hold(false)

	c.Wait(t, "after", waitFor, siotest.IsEventFor("v", "after"))
	var got []int
	for _, ev := range c.Filter(siotest.IsEventFor("v", "vol")) {
		got = append(got, int(ev.Args[0].(float64)))
	}
	// The last one was dropped, every one before it delivered.
	want := make([]int, vols-1)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		t.Errorf("volatile events received %v, want %v (the last of %d dropped)", got, want, vols)
	}
	// The outgoing listener heard of every one, the dropped one included,
	// as Node's Socket.emit tells its listeners.
	siotest.Eventually(t, waitFor, "the outgoing listener told of every volatile event", func() bool {
		heardMu.Lock()
		defer heardMu.Unlock()
		return len(heard) == vols
	})
	heardMu.Lock()
	if !slices.IsSorted(heard) || heard[len(heard)-1] != vols-1 {
		t.Errorf("outgoing listener heard %v, want 0..%d", heard, vols-1)
	}
	heardMu.Unlock()
	var gotBig []int
	for _, ev := range c.Filter(siotest.IsEventFor("v", "big")) {
		gotBig = append(gotBig, int(ev.Args[0].(float64)))
		if ev.Args[1] != big {
			t.Fatalf("big #%v damaged", ev.Args[0])
		}
	}
	if len(gotBig) != bigs || !slices.IsSorted(gotBig) {
		t.Errorf("%d ordinary events received (in order: %v), want %d", len(gotBig), slices.IsSorted(gotBig), bigs)
	}
}

// TestSocketCompress: Socket.Compress(false) over per-message deflate, with
// the official client (which negotiates it). Checked on the wire: an
// ordinary large event goes compressed, one sent with Compress(false)
// uncompressed, Compress(false).Compress(true) compressed again; the flag
// chains with Volatile and carries to the socket's broadcasts.
func TestSocketCompress(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{PerMessageDeflate: true})
	big := strings.Repeat("a large and compressible event; ", 2000)
	var mu sync.Mutex
	sockets := map[string]*server.Socket{}
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.On("go", func(e *server.Event) {
			_ = s.Volatile().Compress(false).Emit("vp", big)
			_ = s.Emit("mark", e.Args...)
		})
		mu.Lock()
		sockets[s.Handshake().Query.Get("id")] = s
		mu.Unlock()
	})
	taps := map[string]*wireTap{"a": newWireTap(t, srv.URL), "b": newWireTap(t, srv.URL)}
	c := siotest.StartClients(t)
	for _, id := range []string{"a", "b"} {
		c.Connect(t, id, taps[id].URL+"/", map[string]string{"id": id}, nil)
	}
	siotest.Eventually(t, waitFor, "both sockets", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sockets) == 2
	})
	mu.Lock()
	s := sockets["a"]
	mu.Unlock()

	for _, e := range []struct {
		name string
		emit func(string) error
	}{
		{"z", func(ev string) error { return s.Emit(ev, big) }},
		{"plain", func(ev string) error { return s.Compress(false).Emit(ev, big) }},
		{"again", func(ev string) error { return s.Compress(false).Compress(true).Emit(ev, big) }},
		{"sent", func(string) error { return s.Compress(false).Send(big) }},
		{"bc", func(ev string) error { return s.Compress(false).Broadcast().Emit(ev, big) }},
	} {
		if err := e.emit(e.name); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
	}
	// Volatile: retried in case the server was busy writing (a ping).
	for seq := 0; c.Count(siotest.IsEventFor("a", "vp")) == 0; seq++ {
		if seq == 20 {
			t.Fatal("20 volatile events to an idle client, none delivered")
		}
		c.Emit(t, "a", "go", seq)
		c.WaitN(t, "mark", seq+1, waitFor, siotest.IsEventFor("a", "mark"))
	}
	for id, events := range map[string][]string{"a": {"z", "plain", "again", "message", "vp"}, "b": {"bc"}} {
		for _, ev := range events {
			got := c.Wait(t, ev+" of "+id, waitFor, siotest.IsEventFor(id, ev))
			if len(got.Args) != 1 || got.Args[0] != big {
				t.Errorf("%s: %s with %d args", id, ev, len(got.Args))
			}
		}
	}

	want := map[string]map[string]bool{
		"a": {`42["z"`: true, `42["plain"`: false, `42["again"`: true, `42["message"`: false, `42["vp"`: false},
		"b": {`42["bc"`: false},
	}
	for id, tap := range taps {
		frames, negotiated := tap.frames(t)
		if !negotiated {
			t.Fatalf("%s: permessage-deflate not negotiated", id)
		}
		for prefix, compressed := range want[id] {
			seen := false
			for _, f := range frames {
				if bytes.HasPrefix(f.payload, []byte(prefix)) {
					seen = true
					if f.compressed != compressed {
						t.Errorf("%s: %s sent compressed %v, want %v", id, prefix, f.compressed, compressed)
					}
				}
			}
			if !seen {
				t.Errorf("%s: %s not seen on the wire", id, prefix)
			}
		}
	}
}

// TestSocketFlagsRecovery: with connection state recovery an emit to one
// socket goes through the adapter, as in Node; its flags go with it. An
// ordinary event carries its offset, a volatile one none (it is never
// replayed); Compress(false) still sends it uncompressed.
func TestSocketFlagsRecovery(t *testing.T) {
	t.Parallel()
	srv := siotest.StartServer(t, "n0", server.Config{PerMessageDeflate: true, Recovery: server.RecoveryConfig{Enabled: true}})
	big := strings.Repeat("a large and compressible event; ", 2000)
	srv.Srv.OnConnection(func(s *server.Socket) {
		s.On("go", func(e *server.Event) {
			_ = s.Volatile().Emit("vol", e.Args...)
			_ = s.Emit("mark", e.Args...)
			_ = s.Compress(false).Emit("plain", big)
		})
	})
	tap := newWireTap(t, srv.URL)
	c := siotest.StartClients(t)
	c.Connect(t, "r", tap.URL+"/", nil, nil)
	for seq := 0; c.Count(siotest.IsEventFor("r", "vol")) == 0; seq++ {
		if seq == 20 {
			t.Fatal("20 volatile events to an idle client, none delivered")
		}
		c.Emit(t, "r", "go", seq)
		c.WaitN(t, "plain", seq+1, waitFor, siotest.IsEventFor("r", "plain"))
	}
	vol := c.Wait(t, "vol", waitFor, siotest.IsEventFor("r", "vol"))
	if len(vol.Args) != 1 {
		t.Errorf("volatile event with args %v, want [seq] (no offset)", vol.Args)
	}
	mark := c.Wait(t, "mark", waitFor, siotest.IsEventFor("r", "mark"))
	if len(mark.Args) != 2 {
		t.Errorf("ordinary event with args %v, want [seq, offset]", mark.Args)
	}
	plain := c.Wait(t, "plain", waitFor, siotest.IsEventFor("r", "plain"))
	if len(plain.Args) != 2 || plain.Args[0] != big {
		t.Errorf("plain with %d args, want [big, offset]", len(plain.Args))
	}
	frames, negotiated := tap.frames(t)
	if !negotiated {
		t.Fatal("permessage-deflate not negotiated")
	}
	seen := false
	for _, f := range frames {
		if bytes.HasPrefix(f.payload, []byte(`42["plain"`)) {
			seen = true
			if f.compressed {
				t.Error("Compress(false) sent compressed under recovery")
			}
		}
	}
	if !seen {
		t.Error("plain not seen on the wire")
	}
}

// gathered is the value of the series name of g (a counter or a gauge),
// the one whose label has value when label is set; 0 when absent.
func gathered(t testing.TB, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	v, _ := gatheredOK(t, g, name, label, value)
	return v
}

// gatheredOK is gathered, and whether the series exists.
func gatheredOK(t testing.TB, g prometheus.Gatherer, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// gateProxy is a TCP proxy in front of a server whose server-to-client
// direction can be held: while held it reads nothing from the server,
// whose writes then back up in the kernel's buffers and its own queue.
type gateProxy struct {
	URL string

	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	cond   *sync.Cond
	held   bool
	closed bool
	conns  []net.Conn
}

// newGateProxy proxies to target (http://host:port) until the test ends.
func newGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{URL: "http://" + ln.Addr().String(), ln: ln}
	p.cond = sync.NewCond(&p.mu)
	host := strings.TrimPrefix(target, "http://")
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
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
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				client.Close()
				srv.Close()
				return
			}
			p.conns = append(p.conns, client, srv)
			p.wg.Add(2)
			p.mu.Unlock()
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(srv, client)
				srv.Close()
			}()
			go func() {
				defer p.wg.Done()
				defer client.Close()
				buf := make([]byte, 32<<10)
				for p.wait() {
					n, err := srv.Read(buf)
					if n > 0 {
						if _, err := client.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		p.cond.Broadcast()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// hold stops (true) or resumes (false) reading from the server.
func (p *gateProxy) hold(on bool) {
	p.mu.Lock()
	p.held = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

// wait returns once the proxy may read from the server: false when it is
// closed.
func (p *gateProxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.held && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}
