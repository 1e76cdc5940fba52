//go:build unix

package eio

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Several messages queued for a session through one Batch go out in one
// write at Flush, in order, for every session of the batch.
func TestBatchOneWritePerSession(t *testing.T) {
	h := newHarness(t, Options{}, false)
	var conns []*websocket.Conn
	var recs []*recorder
	for range 3 {
		c, _ := h.dialWS()
		conns = append(conns, c)
		recs = append(recs, h.next())
	}
	var mu sync.Mutex
	var writes []int
	setWriteHook(t, func(n int) {
		mu.Lock()
		writes = append(writes, n)
		mu.Unlock()
	})
	var b Batch
	msgs := make([]*Message, 5)
	for i := range msgs {
		msgs[i] = TextMessage(fmt.Appendf(nil, "m%d", i)) // shared by the sessions
	}
	for _, m := range msgs {
		for _, r := range recs {
			if err := r.s.SendBatched(&b, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.Flush()
	for i, c := range conns {
		for j := range msgs {
			if got, want := readText(t, c), fmt.Sprintf("4m%d", j); got != want {
				t.Fatalf("client %d: %q, want %q", i, got, want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 3 {
		t.Fatalf("%d writes %v, want one per session", len(writes), writes)
	}
	for _, n := range writes {
		if n != 5*(2+3) {
			t.Errorf("write of %d bytes, want %d (five frames)", n, 5*(2+3))
		}
	}
}

// A client that does not read fills its socket: the inline write of a
// Flush stops without waiting and the session's flusher writes the rest,
// in order, once the client reads again; a Send in between keeps its place.
func TestBatchSlowReaderHandsOver(t *testing.T) {
	before := goroutines()
	h := newHarness(t, Options{}, false)
	// A small receive buffer (no autotuning) so that the server's socket
	// fills well before the 8 MB are queued.
	// (Set before connecting, so that the window is sized from the start.)
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	d := websocket.Dialer{NetDialContext: nd.DialContext}
	c, _, err := d.Dial(h.wsURL("EIO=4&transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := parseOpen(t, readText(t, c))
	rec := h.next()
	const n, size = 2000, 4 << 10 // 8 MB in 40 KB flushes: more than the sockets' buffers
	var b Batch
	payload := func(i int) []byte {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(p, fmt.Sprintf("%05d", i))
		return p
	}
	for i := 0; i < n; i++ {
		m := TextMessage(payload(i))
		if i == n-5 {
			err = rec.s.Send(m) // not batched: queued behind the rest
		} else {
			err = rec.s.SendBatched(&b, m)
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if i%10 == 9 {
			b.Flush()
		}
	}
	b.Flush()
	for i := 0; i < n; i++ {
		got := readText(t, c)
		if want := "4" + string(payload(i)); got != want {
			t.Fatalf("message %d: got %.10q…, want %.10q…", i, got, want)
		}
	}
	eventually(t, "the queue accounted to zero", func() bool {
		s := h.session(open.SID)
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.queued == 0 && !s.flushing && len(s.queue) == 0
	})
	c.Close()
	rec.waitClose(t)
	h.hs.Close()
	noLeak(t, before)
}

// A connection whose write deadline has passed since its last flusher
// write (idle for longer than WriteTimeout) still gets a batch's inline
// write: the deadline is moved first, not tripped over.
func TestBatchAfterDeadlinePassed(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, open := h.dialWS()
	rec := h.next()
	s := h.session(open.SID)
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	// As if the last flusher write was WriteTimeout ago and more: the
	// deadline it set is in the past. (The session's writers are idle: no
	// one else touches the deadline now.)
	ws.setWriteDeadline(-time.Second)
	var b Batch
	if err := rec.s.SendBatched(&b, TextMessage([]byte("late"))); err != nil {
		t.Fatal(err)
	}
	b.Flush()
	if got := readText(t, c); got != "4late" {
		t.Fatalf("got %q, want 4late", got)
	}
}

// SendVolatile queues only when the transport would take the message at
// once, as Node drops volatile packets for a busy transport: over
// WebSocket, not while something is queued; over polling, not without a
// GET waiting.
func TestSendVolatile(t *testing.T) {
	h := newHarness(t, Options{}, false)
	c, _ := h.dialWS()
	rec := h.next()
	var b Batch
	if err := rec.s.SendBatched(&b, TextMessage([]byte("held"))); err != nil {
		t.Fatal(err)
	}
	// "held" waits in the queue for the batch's Flush: busy.
	if err := rec.s.SendVolatile(&b, TextMessage([]byte("dropped"))); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("SendVolatile while a message is queued: %v, want ErrNotWritable", err)
	}
	b.Flush()
	if got := readText(t, c); got != "4held" {
		t.Fatalf("got %q, want 4held", got)
	}
	eventually(t, "the session idle again", func() bool {
		rec.s.mu.Lock()
		defer rec.s.mu.Unlock()
		return rec.s.writableLocked()
	})
	if err := rec.s.SendVolatile(nil, TextMessage([]byte("volatile"))); err != nil {
		t.Fatalf("SendVolatile on an idle connection: %v", err)
	}
	if got := readText(t, c); got != "4volatile" {
		t.Fatalf("got %q, want 4volatile", got)
	}

	// Polling, no GET waiting: dropped.
	sid := h.openPolling()
	s := h.session(sid)
	if err := s.SendVolatile(nil, TextMessage([]byte("x"))); !errors.Is(err, ErrNotWritable) {
		t.Errorf("SendVolatile over polling without a GET: %v, want ErrNotWritable", err)
	}
}

// A Flush called while another one writes waits for that pass to end and
// then writes, in one pass, what was held meanwhile: a session the first
// pass had already written, given two messages by two deliverers during
// that pass, gets them in one write, not one write per deliverer.
func TestBatchFlushWaitsForThePass(t *testing.T) {
	h := newHarness(t, Options{}, false)
	ca, _ := h.dialWS()
	a := h.next()
	cb, _ := h.dialWS()
	b := h.next()

	var mu sync.Mutex
	var writes []int
	entered, release := make(chan struct{}), make(chan struct{})
	setWriteHook(t, func(n int) {
		mu.Lock()
		writes = append(writes, n)
		mu.Unlock()
		if n == 2+len("bbbbbbbb") { // the first pass reaches b: hold it there
			close(entered)
			<-release
		}
	})
	var batch Batch
	mustSend := func(s *Session, text string) {
		t.Helper()
		if err := s.SendBatched(&batch, TextMessage([]byte(text))); err != nil {
			t.Fatal(err)
		}
	}
	mustSend(a.s, "a") // frame: 2 + 2 bytes
	mustSend(b.s, "bbbbbbb")
	first := make(chan struct{})
	go func() { defer close(first); batch.Flush() }()
	<-entered // a is written, b is being written

	// Two deliverers, each with its own message for a and its own Flush,
	// called while the first pass writes b: each waits for that pass.
	waiting := make(chan struct{}, 2)
	onWait := func() { waiting <- struct{}{} }
	testHookFlushWait.Store(&onWait)
	t.Cleanup(func() { testHookFlushWait.Store(nil) })
	flush := func() chan struct{} {
		done := make(chan struct{})
		go func() { defer close(done); batch.Flush() }()
		select {
		case <-waiting:
		case <-done: // it did not wait: the assertion on writes says so
		case <-time.After(10 * time.Second):
			t.Fatal("Flush neither waited nor returned")
		}
		return done
	}
	mustSend(a.s, "x")
	second := flush()
	mustSend(a.s, "y")
	third := flush()
	close(release)
	<-first
	<-second
	<-third

	for _, want := range []string{"4a", "4x", "4y"} {
		if got := readText(t, ca); got != want {
			t.Fatalf("a: %q, want %q", got, want)
		}
	}
	if got := readText(t, cb); got != "4bbbbbbb" {
		t.Fatalf("b: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []int{4, 10, 8} // a, b, then a's two frames together
	if fmt.Sprint(writes) != fmt.Sprint(want) {
		t.Fatalf("writes %v, want %v", writes, want)
	}
}
