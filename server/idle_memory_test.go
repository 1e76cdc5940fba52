package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// TestIdleMemoryServer opens many idle Socket.IO clients from a child
// process (so that the clients' memory is not counted) and logs what an idle
// client costs the server, as the bench's idle phase does it: a raw
// WebSocket, a CONNECT to "/", the socket joining the room named in its
// handshake query (as cmd/benchapp does), an "echo" event acknowledged. It
// logs per client: goroutines, live heap, goroutine stacks (StackInuse) and
// RSS, without a forced GC (what the bench reads) and after forced GCs. It
// logs; it does not assert.
//
//	go test -run TestIdleMemoryServer -v ./server/
//
// SERVER_IDLE_CLIENTS sets the number (default 2,000; 200 under -race, whose
// figures mean little). SERVER_IDLE_SETTLE (a duration) waits that long,
// idle, before the figures without GC (the bench waits 5s).
// SERVER_IDLE_PROFILE=1 records every allocation (runtime.MemProfileRate =
// 1, which inflates the other figures) and logs the live heap per client by
// allocation site.
func TestIdleMemoryServer(t *testing.T) {
	if os.Getenv("SERVER_IDLE_CHILD") != "" {
		t.Skip("child")
	}
	if testing.Short() {
		t.Skip("short")
	}
	n := 2000
	if idleRace {
		n = 200
	}
	if v, err := strconv.Atoi(os.Getenv("SERVER_IDLE_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	var settle time.Duration
	if v, err := time.ParseDuration(os.Getenv("SERVER_IDLE_SETTLE")); err == nil {
		settle = v
	}
	profile := os.Getenv("SERVER_IDLE_PROFILE") != ""
	if profile {
		old := runtime.MemProfileRate
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = old }()
	}

	var connected atomic.Int64
	ts := startServer(t, server.Config{PingInterval: time.Hour, PingTimeout: time.Hour}, func(srv *server.Server) {
		// cmd/benchapp's handlers.
		srv.OnConnection(func(s *server.Socket) {
			room := s.Handshake().Query.Get("room")
			if room == "" {
				room = "bench"
			}
			s.Join(room)
			s.On("bcast", func(e *server.Event) {
				_ = srv.To(room).Emit("m", e.Args...)
			})
			s.On("echo", func(e *server.Event) {
				e.Ack(e.Args...)
			})
			connected.Add(1)
		})
	})

	// Warm up: one client through the whole path (pools, the first
	// connection's allocations), then the baseline.
	runIdleChild(t, ts.addr, 1, func() {})
	idleWait(t, "the warm-up client gone", func() bool { return ts.Of("/").LocalSocketCount() == 0 })
	before := idleGCFigures(2)
	beforeProf := idleHeapSites(profile)
	g0 := runtime.NumGoroutine()

	runIdleChild(t, ts.addr, n, func() {
		idleWait(t, "every socket connected", func() bool { return ts.Of("/").LocalSocketCount() == n })
		// The handler goroutines (OnConnection, echo) return; the child
		// process's context watcher (os/exec) is one more.
		idleWait(t, "one goroutine per client", func() bool { return runtime.NumGoroutine() <= g0+n+1 })
		if settle > 0 {
			time.Sleep(settle) // a measurement's settle, as the bench's; nothing waits on it
		}
		noGC := idleReadFigures()
		g1 := runtime.NumGoroutine()
		gc2 := idleGCFigures(2)
		gc8 := idleGCFigures(6)

		per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) / 1024 }
		t.Logf("server: %d idle Socket.IO clients over WebSocket, each in a room (race detector: %v, GOGC=%s, settle %v)", n, idleRace, os.Getenv("GOGC"), settle)
		t.Logf("goroutines: %d more (%.2f per client)", g1-g0, float64(g1-g0)/float64(n))
		t.Logf("%-28s %10s %10s %10s", "KiB per client", "no GC", "GC×2", "GC×8")
		row := func(name string, f func(idleFigures) uint64) {
			t.Logf("%-28s %10.2f %10.2f %10.2f", name, per(f(noGC), f(before)), per(f(gc2), f(before)), per(f(gc8), f(before)))
		}
		row("heap allocated (HeapAlloc)", func(m idleFigures) uint64 { return m.heapAlloc })
		row("heap in use (HeapInuse)", func(m idleFigures) uint64 { return m.heapInuse })
		row("heap retained (not released)", func(m idleFigures) uint64 { return m.heapRetained })
		row("stacks (StackInuse)", func(m idleFigures) uint64 { return m.stack })
		row("runtime other (Sys-Heap-Stk)", func(m idleFigures) uint64 { return m.other })
		row("RSS (VmRSS)", func(m idleFigures) uint64 { return m.rss })
		t.Logf("allocated while connecting: %.2f KiB per client (garbage included); GC cycles: %d; heap goal now %.1f MiB",
			per(noGC.totalAlloc, before.totalAlloc), noGC.numGC-before.numGC, float64(noGC.nextGC)/(1<<20))
		if profile {
			idleLogHeapSites(t, beforeProf, idleHeapSites(true), n)
		}
	})
}

type idleFigures struct {
	heapAlloc, heapInuse, heapRetained, stack, other, rss, nextGC, totalAlloc uint64
	numGC                                                                     uint32
}

func idleReadFigures() idleFigures {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return idleFigures{
		heapAlloc:    ms.HeapAlloc,
		heapInuse:    ms.HeapInuse,
		heapRetained: ms.HeapSys - ms.HeapReleased,
		stack:        ms.StackInuse,
		other:        ms.Sys - ms.HeapSys - ms.StackSys,
		rss:          idleRSS(),
		nextGC:       ms.NextGC,
		totalAlloc:   ms.TotalAlloc,
		numGC:        ms.NumGC,
	}
}

func idleGCFigures(cycles int) idleFigures {
	for range cycles {
		runtime.GC()
	}
	return idleReadFigures()
}

func idleRSS() uint64 {
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

func idleWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idleHeapSites returns the live heap by allocation stack, as of the last
// GC (two cycles make it current).
func idleHeapSites(on bool) map[string]*idleHeapSite {
	if !on {
		return nil
	}
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		k, _ := runtime.MemProfile(nil, true)
		recs = make([]runtime.MemProfileRecord, k+64)
		k, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:k]
			break
		}
	}
	out := map[string]*idleHeapSite{}
	for i := range recs {
		r := &recs[i]
		site, via := idleAllocSite(r.Stack())
		key := site + " ← " + via
		s := out[key]
		if s == nil {
			s = &idleHeapSite{site: site, via: via}
			out[key] = s
		}
		s.bytes += r.InUseBytes()
		s.objects += r.InUseObjects()
		s.allocated += r.AllocBytes
	}
	return out
}

type idleHeapSite struct {
	site, via                 string
	bytes, objects, allocated int64
}

// idleAllocSite names an allocation: the innermost frame outside the runtime
// (the runtime's own when there is none), and the innermost sockstream
// frame calling it.
func idleAllocSite(stk []uintptr) (site, via string) {
	frames := runtime.CallersFrames(stk)
	var first string
	for {
		f, more := frames.Next()
		fn := f.Function
		if first == "" {
			first = fn
		}
		switch {
		case site == "" && !strings.HasPrefix(fn, "runtime."):
			site = fn
			if strings.Contains(fn, "sockstream/") {
				via = "(self)"
			}
		case site != "" && via == "" && strings.Contains(fn, "sockstream/"):
			via = fn
		}
		if !more || (site != "" && via != "") {
			break
		}
	}
	if site == "" {
		site = first
	}
	trim := func(s string) string { return strings.TrimPrefix(s, "github.com/sockstream/sockstream/") }
	return trim(site), trim(via)
}

func idleLogHeapSites(t *testing.T, before, after map[string]*idleHeapSite, n int) {
	var rows []*idleHeapSite
	var live, allocated int64
	for k, a := range after {
		d := *a
		if b := before[k]; b != nil {
			d.bytes -= b.bytes
			d.objects -= b.objects
			d.allocated -= b.allocated
		}
		if d.bytes <= 0 && d.allocated <= 0 {
			continue
		}
		live += max(d.bytes, 0)
		allocated += d.allocated
		rows = append(rows, &d)
	}
	perClient := func(b int64) float64 { return float64(b) / float64(n) }
	top := func(what string, total int64, by func(*idleHeapSite) int64) {
		slices.SortFunc(rows, func(a, b *idleHeapSite) int { return cmp.Compare(by(b), by(a)) })
		t.Logf("%s by allocation site (MemProfileRate=1): %.2f KiB per client", what, perClient(total)/1024)
		for i, r := range rows {
			if i == 25 || perClient(by(r)) < 8 {
				break
			}
			t.Logf("  %8.0f B %6.2f obj  %s ← %s", perClient(by(r)), perClient(r.objects), r.site, r.via)
		}
	}
	top("live heap", live, func(r *idleHeapSite) int64 { return r.bytes })
	top("allocated while connecting (live and garbage)", allocated, func(r *idleHeapSite) int64 { return r.allocated })
}

// runIdleChild has the child process open n clients to addr, runs measure
// once they are all connected (their echo acknowledged), then ends them.
func runIdleChild(t *testing.T, addr string, n int, measure func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIdleMemoryServerChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SERVER_IDLE_CHILD="+addr, "SERVER_IDLE_N="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "READY") {
			measure()
			return
		}
		if strings.HasPrefix(line, "FAIL") {
			t.Fatal(line)
		}
	}
	t.Fatal("the client process did not connect")
}

// TestIdleMemoryServerChild is the client process of TestIdleMemoryServer:
// SERVER_IDLE_N raw WebSocket clients to SERVER_IDLE_CHILD, 64 dialing at a
// time as the bench does, each: the handshake with room=idle<i%100>, the
// open packet, CONNECT "40", its answer, an "echo" with ack id 1 and its
// ack. It prints READY and holds them until its stdin closes.
func TestIdleMemoryServerChild(t *testing.T) {
	addr := os.Getenv("SERVER_IDLE_CHILD")
	if addr == "" {
		t.Skip("run by TestIdleMemoryServer")
	}
	n, _ := strconv.Atoi(os.Getenv("SERVER_IDLE_N"))
	conns := make([]net.Conn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := idleClient(addr, "idle"+strconv.Itoa(i%100))
			if err != nil {
				failed.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if f := failed.Load(); f != nil {
		fmt.Println("FAIL", f)
		return
	}
	fmt.Println("READY")
	_, _ = os.Stdin.Read(make([]byte, 1))
	for _, c := range conns {
		c.Close()
	}
}

func idleClient(addr, room string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	req := "GET /socket.io/?EIO=4&transport=websocket&room=" + room + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("101: %w", err)
		}
		if line == "\r\n" {
			break
		}
	}
	expect := func(prefix, send string) error {
		if send != "" {
			if _, err := c.Write(idleMaskedText(send)); err != nil {
				return err
			}
		}
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return fmt.Errorf("waiting for %q: %w", prefix, err)
			}
			l := int(h[1] & 0x7f)
			switch l {
			case 126:
				var x [2]byte
				if _, err := io.ReadFull(br, x[:]); err != nil {
					return err
				}
				l = int(binary.BigEndian.Uint16(x[:]))
			case 127:
				return fmt.Errorf("unexpected large frame")
			}
			p := make([]byte, l)
			if _, err := io.ReadFull(br, p); err != nil {
				return err
			}
			if bytes.HasPrefix(p, []byte(prefix)) {
				return nil
			}
		}
	}
	for _, step := range [][2]string{{"0{", ""}, {"40{", "40"}, {"431[", `421["echo","ready"]`}} {
		if err := expect(step[0], step[1]); err != nil {
			c.Close()
			return nil, err
		}
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, fmt.Errorf("unexpected data after the ack")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// idleMaskedText is a client's text frame (masked with a zero key: the payload
// as is).
func idleMaskedText(s string) []byte {
	f := []byte{0x81, 0x80 | byte(len(s)), 0, 0, 0, 0}
	return append(f, s...)
}
