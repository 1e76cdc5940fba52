package eio

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestIdleMemory opens many raw WebSocket sessions from a child process (so
// that the clients' memory is not counted) and logs what an idle session
// costs the server: live heap, goroutine stacks, and RSS, per session. It
// logs; it does not assert. EIO_IDLE_CLIENTS sets the number (default
// 2,000; 200 under -race, whose figures mean little).
//
//	go test -run TestIdleMemory -v ./internal/eio/
func TestIdleMemory(t *testing.T) {
	if os.Getenv("EIO_IDLE_CHILD") != "" {
		t.Skip("child")
	}
	if testing.Short() {
		t.Skip("short")
	}
	n := 2000
	if raceEnabled {
		n = 200
	}
	if v, err := strconv.Atoi(os.Getenv("EIO_IDLE_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	srv, err := NewServer(Options{PingInterval: time.Hour, PingTimeout: time.Hour}, func(s *Session) Handler { return idleHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_ = srv.Close(ctx)
	}()
	measureIdle(t, "eio (own frame reader)", srv, n, srv.Count)
}

// measureIdle serves h, has the child process open n WebSocket sessions,
// and logs the cost per session once count reports n.
func measureIdle(t *testing.T, name string, h http.Handler, n int, count func() int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	// Warm up (pools, the first connection's allocations), then measure.
	before := measure()
	g0 := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIdleMemoryChild$", "-test.v")
	cmd.Env = append(os.Environ(), "EIO_IDLE_CHILD="+ln.Addr().String(), "EIO_IDLE_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "READY") {
			ready = true
			break
		}
		if strings.HasPrefix(line, "FAIL") {
			t.Fatal(line)
		}
	}
	if !ready {
		t.Fatal("the client process did not connect")
	}
	eventually(t, "every session open", func() bool { return count() == n })
	// Let the handshake garbage go and the stacks shrink.
	after := measure()
	after = measure()
	g1 := runtime.NumGoroutine()

	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) / 1024 }
	t.Logf("%s: %d idle WebSocket sessions (race detector: %v)", name, n, raceEnabled)
	t.Logf("goroutines: %d more (%.2f per session)", g1-g0, float64(g1-g0)/float64(n))
	t.Logf("live heap: %.2f KiB per session (HeapAlloc after GC)", per(after.heap, before.heap))
	t.Logf("goroutine stacks: %.2f KiB per session (StackInuse)", per(after.stack, before.stack))
	t.Logf("heap+stack: %.2f KiB per session", per(after.heap+after.stack, before.heap+before.stack))
	t.Logf("RSS: %.2f KiB per session (VmRSS, GOGC=%s)", per(after.rss, before.rss), os.Getenv("GOGC"))
}

type idleHandler struct{}

func (idleHandler) OnMessage([]byte, bool) {}
func (idleHandler) OnClose(string)         {}

type memFigures struct{ heap, stack, rss uint64 }

func measure() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: ms.HeapAlloc, stack: ms.StackInuse, rss: vmRSS()}
}

func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v * 1024
		}
	}
	return 0
}

// TestIdleMemoryChild is the client process of TestIdleMemory: it opens
// EIO_IDLE_N raw WebSocket sessions to EIO_IDLE_CHILD, reads each open
// packet, prints READY and holds them until its stdin closes.
func TestIdleMemoryChild(t *testing.T) {
	addr := os.Getenv("EIO_IDLE_CHILD")
	if addr == "" {
		t.Skip("run by TestIdleMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("EIO_IDLE_N"))
	conns := make([]net.Conn, 0, n)
	req := []byte("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("FAIL dial:", err)
			return
		}
		if _, err := c.Write(req); err != nil {
			fmt.Println("FAIL write:", err)
			return
		}
		// The 101 response and the open frame come in one write.
		got := 0
		for !bytes.Contains(buf[:got], []byte(`"maxPayload"`)) {
			_ = c.SetReadDeadline(time.Now().Add(testTimeout))
			k, err := c.Read(buf[got:])
			if err != nil {
				fmt.Println("FAIL read:", err)
				return
			}
			got += k
		}
		conns = append(conns, c)
	}
	fmt.Println("READY")
	_, _ = os.Stdin.Read(make([]byte, 1))
	for _, c := range conns {
		c.Close()
	}
}

// A message whose handling grows the reader goroutine's stack (as a
// Socket.IO CONNECT does) makes the reader hand the connection over to a
// fresh goroutine instead of idling on the grown stack. Nothing else
// changes: the messages keep their order, the session goes on, and ends as
// any other, leaving no goroutine behind.
func TestReaderHandover(t *testing.T) {
	h := newHarness(t, Options{}, true)
	before := goroutines()
	h.onMsg = func(r *recorder, data []byte, binary bool) {
		if strings.HasPrefix(string(data), "deep") {
			deepStack(64) // some 40 KiB of stack
		}
	}
	c, _ := h.dialWS()
	rec := h.next()
	handovers := readerHandovers.Load()
	var want []string
	for i := range 10 {
		for _, m := range []string{"deep", "flat"} {
			m += strconv.Itoa(i)
			want = append(want, m)
			send(t, c, "4"+m)
		}
	}
	for i, w := range want {
		if got := readText(t, c); got != "4"+w {
			t.Fatalf("echo %d: %q, want %q", i, got, "4"+w)
		}
		if got := rec.wait(t); got.data != w {
			t.Fatalf("message %d: %q, want %q", i, got.data, w)
		}
	}
	// The handover comes after the message is handled (the echo may be
	// read first): waited for, not read at once.
	eventually(t, "a reader handover after the deep messages", func() bool { return readerHandovers.Load() != handovers })
	send(t, c, "1")
	if reason := rec.waitClose(t); reason != ReasonTransportClose {
		t.Errorf("close reason %q", reason)
	}
	if code := readClose(t, c); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	c.Close()
	noLeak(t, before)
}

// deepStack uses some 600 bytes of stack per level.
//
//go:noinline
func deepStack(n int) byte {
	var b [512]byte
	b[n%len(b)] = byte(n)
	if n == 0 {
		return b[0]
	}
	return deepStack(n-1) + b[(n+1)%len(b)]
}
