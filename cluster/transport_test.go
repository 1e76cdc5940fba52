package cluster

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

func TestNewRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	cases := map[string]Options{
		"no address":    {},
		"both":          {URL: "redis://127.0.0.1:1", InitAddress: []string{"127.0.0.1:1"}},
		"bad address":   {InitAddress: []string{"nohostport"}},
		"bad URL":       {URL: "http://127.0.0.1:1"},
		"stream count":  {URL: "redis://127.0.0.1:1", StreamCount: -1},
		"max len":       {URL: "redis://127.0.0.1:1", MaxLen: -5},
		"block time":    {URL: "redis://127.0.0.1:1", BlockTime: time.Microsecond},
		"buffer":        {URL: "redis://127.0.0.1:1", PublishBufferSize: -1},
		"heartbeat":     {URL: "redis://127.0.0.1:1", HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 5 * time.Second},
		"request":       {URL: "redis://127.0.0.1:1", RequestTimeout: -time.Second},
		"read count":    {URL: "redis://127.0.0.1:1", ReadCount: -1},
		"flush delay":   {URL: "redis://127.0.0.1:1", MaxFlushDelay: -time.Second},
		"max data size": {URL: "redis://127.0.0.1:1", MaxDataSize: -1},
		"tiny interval": {URL: "redis://127.0.0.1:1", HeartbeatInterval: time.Microsecond},
		"tiny request":  {URL: "redis://127.0.0.1:1", RequestTimeout: time.Microsecond},
		"no host":       {URL: "redis://"},
		"bad db":        {URL: "redis://u:secret@127.0.0.1:1/x"},
		"bad escape":    {URL: "redis://u:secret@127.0.0.1:1/%zz"},
	}
	for name, o := range cases {
		tr, err := New(o)
		if err == nil {
			_ = tr.Close()
			t.Errorf("%s: New accepted %+v", name, o)
			continue
		}
		var oe *OptionsError
		if !errors.Is(err, ErrInvalidOptions) || !errors.As(err, &oe) {
			t.Errorf("%s: error %v does not wrap ErrInvalidOptions / *OptionsError", name, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error %q shows the password", name, err)
		}
		// Validate says the same, but for the missing address, which only
		// New needs.
		if verr := o.Validate(); name != "no address" && (verr == nil || verr.Error() != err.Error()) {
			t.Errorf("%s: Validate = %v, New = %v", name, verr, err)
		}
	}
	if err := (Options{StreamCount: 3}).Validate(); err != nil {
		t.Errorf("Validate without an address: %v", err)
	}
	if d := (Options{}).Defaults(); d.StreamName != DefaultStreamName || d.StreamCount != DefaultStreamCount ||
		d.MaxLen != DefaultMaxLen || d.HeartbeatTimeout != DefaultHeartbeatTimeout || d.SessionKeyPrefix != DefaultSessionKeyPrefix ||
		d.RequestTimeout != DefaultRequestTimeout || d.Logger == nil {
		t.Errorf("Defaults = %+v", d)
	}

	// Two transports cannot share a registry.
	reg := prometheus.NewRegistry()
	s := redistest.StartStandalone(t)
	o := fastOpts(s.URL())
	o.Registerer = reg
	a := startTransport(t, "a", o)
	_, err := New(o)
	if !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("second transport on one registry: %v", err)
	}
	// After Close the registry is free again.
	_ = a.Close()
	b, err := New(o)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	_ = b.Close()

	// Defaults are filled in.
	if got := a.Options(); got.StreamName != DefaultStreamName || got.MaxLen != DefaultMaxLen || got.PublishBufferSize != DefaultPublishBufferSize {
		t.Errorf("Options() = %+v", got)
	}
}

func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	a := startTransport(t, "a", fastOpts(s.URL()))
	b := startTransport(t, "b", fastOpts(s.URL()))
	waitReady(t, a, b)
	sa := subscribe(t, a, "/", "aaaaaaaaaaaaaaaa")
	sb := subscribe(t, b, "/", "bbbbbbbbbbbbbbbb")
	other := subscribe(t, a, "/other", "cccccccccccccccc")

	ctx := context.Background()
	if n, err := a.ServerCount(ctx, "/"); err != nil || n != 2 {
		t.Errorf("ServerCount(/) = %d, %v; want 2", n, err)
	}
	if n, err := a.ServerCount(ctx, "/nobody"); err != nil || n != 0 {
		t.Errorf("ServerCount(/nobody) = %d, %v; want 0", n, err)
	}

	// One at a time, then in batches: one order.
	const n = 300
	var want []string
	var offsets []string
	for i := 0; i < n; {
		if i%3 == 0 {
			off, err := b.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "m"+strconv.Itoa(i)))
			if err != nil || off == "" {
				t.Fatalf("Publish: %q %v", off, err)
			}
			offsets = append(offsets, off)
			want = append(want, "m"+strconv.Itoa(i))
			i++
			continue
		}
		var batch []*adapter.Message
		for k := 0; k < 17 && i < n; k++ {
			batch = append(batch, broadcast("bbbbbbbbbbbbbbbb", "/", "m"+strconv.Itoa(i)))
			want = append(want, "m"+strconv.Itoa(i))
			i++
		}
		for _, r := range b.PublishBatch(ctx, batch) {
			if r.Err != nil || r.Offset == "" {
				t.Fatalf("PublishBatch: %+v", r)
			}
			offsets = append(offsets, r.Offset)
		}
	}
	if !slices.IsSortedFunc(offsets, func(x, y string) int {
		if idLess(x, y) {
			return -1
		}
		if x == y {
			return 0
		}
		return 1
	}) {
		t.Errorf("offsets not increasing")
	}
	checkSequence(t, sa.waitEvents(t, n, 10*time.Second), want)
	for i, m := range sa.all() {
		if m.Offset != offsets[i] || m.UID != "bbbbbbbbbbbbbbbb" || m.Nsp != "/" {
			t.Fatalf("message %d: offset %q uid %q nsp %q, want offset %q", i, m.Offset, m.UID, m.Nsp, offsets[i])
		}
	}

	// Ephemeral messages go over pub/sub, responses to one adapter only.
	off, err := a.Publish(ctx, &adapter.Message{UID: "aaaaaaaaaaaaaaaa", Nsp: "/", Type: adapter.ServerSideEmit,
		Data: &adapter.ServerSideEmitData{RequestID: "r1", Packet: []any{"hello", 1.0}}})
	if err != nil || off != "" {
		t.Fatalf("ephemeral Publish: %q %v", off, err)
	}
	waitFor(t, 5*time.Second, "server side emit on b", func() bool {
		for _, m := range sb.all() {
			if m.Type == adapter.ServerSideEmit && m.Offset == "" {
				return true
			}
		}
		return false
	})
	err = b.PublishResponse(ctx, "aaaaaaaaaaaaaaaa", &adapter.Message{UID: "bbbbbbbbbbbbbbbb", Nsp: "/", Type: adapter.ServerSideEmitResponse,
		Data: &adapter.ResponsePacketData{RequestID: "r1", Packet: "pong"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "response on a", func() bool {
		for _, m := range sa.all() {
			if m.Type == adapter.ServerSideEmitResponse {
				d := m.Data.(*adapter.ResponsePacketData)
				return d.RequestID == "r1" && d.Packet == "pong"
			}
		}
		return false
	})

	// Nobody receives its own messages, nor other namespaces'.
	for _, m := range sb.all() {
		if m.UID == "bbbbbbbbbbbbbbbb" {
			t.Fatalf("b received its own %s", m.Type)
		}
	}
	if len(other.all()) != 0 {
		t.Errorf("/other received %d messages", len(other.all()))
	}
	for _, m := range sa.all() {
		if m.Type == adapter.ServerSideEmit {
			t.Errorf("a received its own server side emit")
		}
	}
	if got := value(a.metrics.published.WithLabelValues("pubsub")); got != 1 {
		t.Errorf("published pubsub = %v", got)
	}
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	a := startTransport(t, "a", fastOpts(s.URL()))
	waitReady(t, a)
	snk := newSink()
	unsub, err := a.Subscribe(context.Background(), "/", "aaaaaaaaaaaaaaaa", snk.handle)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := a.ServerCount(context.Background(), "/"); n != 1 {
		t.Fatalf("ServerCount = %d", n)
	}
	unsub()
	unsub() // idempotent
	waitFor(t, 5*time.Second, "NUMSUB back to 0", func() bool {
		n, _ := a.ServerCount(context.Background(), "/")
		return n == 0
	})
}

// TestReaderCutResumes cuts the reading node off Redis while another one
// publishes: when it is back, it gets every entry written meanwhile, once,
// in order.
func TestReaderCutResumes(t *testing.T) {
	t.Parallel()
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		testReaderCutResumes(t, (*redistest.Proxy).Cut)
	})
	t.Run("blackhole", func(t *testing.T) {
		// The connection hangs instead of failing: the blocked XREAD is
		// abandoned after BlockTime + RequestTimeout.
		t.Parallel()
		testReaderCutResumes(t, (*redistest.Proxy).Blackhole)
	})
}

func testReaderCutResumes(t *testing.T, fault func(*redistest.Proxy)) {
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	reader := startTransport(t, "reader", fastOpts("redis://"+p.Addr()))
	writer := startTransport(t, "writer", fastOpts(s.URL()))
	waitReady(t, reader, writer)
	sr := subscribe(t, reader, "/", "aaaaaaaaaaaaaaaa")
	ctx := context.Background()
	const before, during, after = 20, 100, 20
	for i := range before {
		if _, err := writer.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "n"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	sr.waitEvents(t, before, 5*time.Second)
	fault(p)
	waitFor(t, 10*time.Second, "reader not ready", func() bool { return !reader.Ready() })
	for i := before; i < before+during; i++ {
		if _, err := writer.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "n"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if i%25 == 0 {
			time.Sleep(200 * time.Millisecond) // spread over the cut
		}
	}
	p.Restore()
	for i := before + during; i < before+during+after; i++ {
		if _, err := writer.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "n"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	total := before + during + after
	checkSequence(t, sr.waitEvents(t, total, 20*time.Second), seqNames("n", 0, total))
	waitReady(t, reader)
	if value(reader.metrics.readerErrors.WithLabelValues("socket.io")) == 0 {
		t.Errorf("no read error counted")
	}
	if v := value(reader.metrics.entriesLost.WithLabelValues("socket.io")); v != 0 {
		t.Errorf("entries lost = %v", v)
	}
}

// TestPublisherCut publishes a numbered sequence without pause while the
// publisher is cut off Redis and back: the messages wait in the outbox and
// are written in order, each once, including those whose XADD was in flight
// at the cut.
func TestPublisherCut(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	pub := startTransport(t, "publisher", fastOpts("redis://"+p.Addr()))
	rcv := startTransport(t, "receiver", fastOpts(s.URL()))
	waitReady(t, pub, rcv)
	sr := subscribe(t, rcv, "/", "aaaaaaaaaaaaaaaa")

	const total = 600
	ctx := context.Background()
	var pubErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if _, err := pub.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "p"+strconv.Itoa(i))); err != nil {
				pubErr = err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	sr.waitEvents(t, 50, 10*time.Second)
	p.Cut()
	waitFor(t, 10*time.Second, "publisher not ready", func() bool { return !pub.Ready() })
	waitFor(t, 10*time.Second, "messages buffered", func() bool { return value(pub.metrics.outboxMessages) >= 20 })
	p.Restore()
	wg.Wait()
	if pubErr != nil {
		t.Fatalf("Publish: %v", pubErr)
	}
	checkSequence(t, sr.waitEvents(t, total, 30*time.Second), seqNames("p", 0, total))
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	if got := len(sr.events()); got != total {
		t.Errorf("%d messages received, want %d", got, total)
	}
	if v := value(pub.metrics.outboxMessages); v != 0 {
		t.Errorf("outbox not empty: %v", v)
	}
}

func TestBufferFull(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	o := fastOpts("redis://" + p.Addr())
	o.PublishBufferSize = 5
	pub := startTransport(t, "publisher", o)
	rcv := startTransport(t, "receiver", fastOpts(s.URL()))
	waitReady(t, pub, rcv)
	sr := subscribe(t, rcv, "/", "aaaaaaaaaaaaaaaa")
	p.Cut()
	waitFor(t, 10*time.Second, "publisher not ready", func() bool { return !pub.Ready() })
	ctx := context.Background()
	for i := range 5 {
		off, err := pub.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "f"+strconv.Itoa(i)))
		if err != nil || off != "" {
			t.Fatalf("Publish %d while cut: %q %v", i, off, err)
		}
	}
	_, err := pub.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "f5"))
	if !errors.Is(err, adapter.ErrBufferFull) {
		t.Fatalf("Publish with a full buffer: %v", err)
	}
	res := pub.PublishBatch(ctx, []*adapter.Message{broadcast("bbbbbbbbbbbbbbbb", "/", "f6"), broadcast("bbbbbbbbbbbbbbbb", "/", "f7")})
	for _, r := range res {
		if !errors.Is(r.Err, adapter.ErrBufferFull) {
			t.Fatalf("PublishBatch with a full buffer: %+v", r)
		}
	}
	if v := value(pub.metrics.outboxFull); v != 3 {
		t.Errorf("outbox_full_total = %v, want 3", v)
	}
	p.Restore()
	checkSequence(t, sr.waitEvents(t, 5, 15*time.Second), seqNames("f", 0, 5))
}

// TestRedisPaused stops the Redis process (SIGSTOP): nothing hangs, the
// transport reports it, and recovers when it continues.
func TestRedisPaused(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	a := startTransport(t, "a", fastOpts(s.URL()))
	b := startTransport(t, "b", fastOpts(s.URL()))
	waitReady(t, a, b)
	sa := subscribe(t, a, "/", "aaaaaaaaaaaaaaaa")
	ctx := context.Background()
	if _, err := b.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "z0")); err != nil {
		t.Fatal(err)
	}
	sa.waitEvents(t, 1, 5*time.Second)
	s.Pause()
	resumed := false
	defer func() {
		if !resumed {
			s.Resume()
		}
	}()
	// Every call returns (bounded by RequestTimeout), none hangs.
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 1; i < 6 && err == nil; i++ {
			_, err = b.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "z"+strconv.Itoa(i)))
		}
		if err == nil {
			_, err = b.ServerCount(ctx, "/")
			if err == nil {
				err = errors.New("ServerCount succeeded on a paused Redis")
			} else {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("calls hang while Redis is paused")
	}
	waitFor(t, 10*time.Second, "not ready while paused", func() bool { return !a.Ready() && !b.Ready() })
	s.Resume()
	resumed = true
	waitReady(t, a, b)
	for i := 6; i < 10; i++ {
		if _, err := b.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "z"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	checkSequence(t, sa.waitEvents(t, 10, 20*time.Second), seqNames("z", 0, 10))
	// An XADD sent into the paused server may have been applied when it
	// resumed, though its reply was lost: it must not come twice.
	time.Sleep(200 * time.Millisecond)
	checkSequence(t, sa.events(), seqNames("z", 0, 10))
}

// TestForeignEntries writes entries the Node package would not write: they
// are skipped with a log line and a counter, and what follows still flows.
func TestForeignEntries(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	a := startTransport(t, "a", fastOpts(s.URL()))
	waitReady(t, a)
	sa := subscribe(t, a, "/", "aaaaaaaaaaaaaaaa")
	garbage := [][]string{
		{"foo", "bar"}, // no nsp
		{"uid", "x", "nsp", "/", "type", "three"}, // bad type
		{"uid", "x", "nsp", "/", "type", "99"},    // unknown type
		{"uid", "x", "nsp", "/", "type", "3", "data", "{not json"},
		{"uid", "x", "nsp", "/", "type", "3", "data", "!!!"},  // bad base64
		{"uid", "x", "nsp", "/", "type", "3", "data", "AAAA"}, // bad msgpack
		{"uid", "x", "nsp", "/", "type", "3", "data", `{"packet":5}`},
	}
	for _, g := range garbage {
		if _, err := s.Do(append([]string{"XADD", "socket.io", "*"}, g...)...); err != nil {
			t.Fatal(err)
		}
	}
	good := `{"packet":{"type":2,"data":["after"]},"opts":{"rooms":[],"except":[],"flags":{}}}`
	if _, err := s.Do("XADD", "socket.io", "*", "uid", "x", "nsp", "/", "type", "3", "data", good); err != nil {
		t.Fatal(err)
	}
	ev := sa.waitEvents(t, 1, 5*time.Second)
	if !slices.Equal(ev, []string{"after"}) {
		t.Errorf("received %v", ev)
	}
	total := 0.0
	for _, reason := range []string{"missing_nsp", "bad_type", "unknown_type", "bad_json", "bad_base64", "bad_msgpack", "bad_payload"} {
		v := value(a.metrics.malformed.WithLabelValues("socket.io", reason))
		if v != 1 {
			t.Errorf("malformed{%s} = %v, want 1", reason, v)
		}
		total += v
	}
	// Garbage on the pub/sub channel too.
	if _, err := s.Do("PUBLISH", "socket.io#/#", "\xc1garbage"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "pub/sub garbage counted", func() bool {
		return value(a.metrics.malformed.WithLabelValues("pubsub", "bad_msgpack")) == 1
	})
}

// TestTrimmedGap lets MAXLEN trim entries a cut-off reader had not read:
// the loss is detected, logged and counted, and reading goes on.
func TestTrimmedGap(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t, redistest.WithArgs("--stream-node-max-entries", "10"))
	p := redistest.NewProxy(t, s.Addr())
	reader := startTransport(t, "reader", fastOpts("redis://"+p.Addr()))
	wo := fastOpts(s.URL())
	wo.MaxLen = 20
	writer := startTransport(t, "writer", wo)
	waitReady(t, reader, writer)
	sr := subscribe(t, reader, "/", "aaaaaaaaaaaaaaaa")
	ctx := context.Background()
	if _, err := writer.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "g0")); err != nil {
		t.Fatal(err)
	}
	sr.waitEvents(t, 1, 5*time.Second)
	p.Cut()
	waitFor(t, 10*time.Second, "reader not ready", func() bool { return !reader.Ready() })
	const n = 200
	for i := 1; i <= n; i++ {
		if _, err := writer.Publish(ctx, broadcast("bbbbbbbbbbbbbbbb", "/", "g"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	p.Restore()
	waitFor(t, 15*time.Second, "gap detected", func() bool {
		return value(reader.metrics.entriesLost.WithLabelValues("socket.io")) > 0
	})
	xlen, err := s.Do("XLEN", "socket.io")
	if err != nil {
		t.Fatal(err)
	}
	kept := int(xlen.(int64))
	lost := int(value(reader.metrics.entriesLost.WithLabelValues("socket.io")))
	if lost != n-kept {
		t.Errorf("lost %d entries, want %d (XLEN %d)", lost, n-kept, kept)
	}
	// What was still in the stream arrives, in order.
	got := sr.waitEvents(t, 1+kept, 10*time.Second)
	checkSequence(t, got, append([]string{"g0"}, seqNames("g", n-kept+1, n+1)...))
}

// TestStartWithoutRedis starts a transport while Redis is unreachable.
func TestStartWithoutRedis(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	p.Cut()
	a := startTransport(t, "a", fastOpts("redis://"+p.Addr()))
	b := startTransport(t, "b", fastOpts(s.URL()))
	waitReady(t, b)
	sb := subscribe(t, b, "/", "bbbbbbbbbbbbbbbb")
	if a.Ready() {
		t.Fatal("ready without Redis")
	}
	// The client fails fast, it does not hang.
	c := a.Client()
	if err := c.Do(context.Background(), c.B().Ping().Build()).Error(); err == nil {
		t.Fatal("PING succeeded without Redis")
	}
	ctx := context.Background()
	if _, err := a.Subscribe(ctx, "/", "aaaaaaaaaaaaaaaa", func(*adapter.Message) {}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		off, err := a.Publish(ctx, broadcast("aaaaaaaaaaaaaaaa", "/", "s"+strconv.Itoa(i)))
		if err != nil || off != "" {
			t.Fatalf("Publish without Redis: %q %v", off, err)
		}
	}
	p.Restore()
	waitReady(t, a)
	checkSequence(t, sb.waitEvents(t, 3, 15*time.Second), seqNames("s", 0, 3))
	if err := c.Do(context.Background(), c.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("PING through Client() once connected: %v", err)
	}
	waitFor(t, 5*time.Second, "both subscribed", func() bool {
		n, _ := b.ServerCount(ctx, "/")
		return n == 2
	})
}

func TestAuthURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  redistest.Option
	}{
		{"password", redistest.WithPassword("s3cret")},
		{"acl", redistest.WithACLUser("sock", "pa55")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := redistest.StartStandalone(t, tc.opt)
			a := startTransport(t, "a", fastOpts(s.URL()))
			b := startTransport(t, "b", fastOpts(s.URL()))
			waitReady(t, a, b)
			sa := subscribe(t, a, "/", "aaaaaaaaaaaaaaaa")
			subscribe(t, b, "/", "bbbbbbbbbbbbbbbb")
			if _, err := b.Publish(context.Background(), broadcast("bbbbbbbbbbbbbbbb", "/", "x")); err != nil {
				t.Fatal(err)
			}
			sa.waitEvents(t, 1, 5*time.Second)
			if n, err := a.ServerCount(context.Background(), "/"); err != nil || n != 2 {
				t.Errorf("ServerCount = %d, %v", n, err)
			}
			// Wrong credentials: never ready, no panic, Close returns.
			bad := fastOpts("redis://wrong:creds@" + s.Addr())
			c := startTransport(t, "bad", bad)
			time.Sleep(300 * time.Millisecond)
			if c.Ready() {
				t.Error("ready with wrong credentials")
			}
			_ = c.Close()
		})
	}
}

// TestRedisCluster runs two transports on a 3-master Redis Cluster with 3
// streams: namespaces spread over the shards, pub/sub and NUMSUB work
// cluster-wide.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	o := fastOpts(c.URL())
	o.StreamCount = 3
	a := startTransport(t, "a", o)
	b := startTransport(t, "b", o)
	waitReady(t, a, b)
	nsps := []string{"/", "/chat", "/orders-namespace", "/admin", "/x"}
	shards := map[string]bool{}
	sinks := map[string]*sink{}
	for i, nsp := range nsps {
		sinks[nsp] = subscribe(t, a, nsp, fmt.Sprintf("a%015d", i))
		subscribe(t, b, nsp, fmt.Sprintf("b%015d", i))
		shards[c.NodeForKey(StreamKey("socket.io", 3, nsp)).Addr()] = true
	}
	if len(shards) < 2 {
		t.Fatalf("the namespaces all went to one shard")
	}
	ctx := context.Background()
	for i, nsp := range nsps {
		var batch []*adapter.Message
		for k := range 20 {
			batch = append(batch, broadcast(fmt.Sprintf("b%015d", i), nsp, fmt.Sprintf("%s-%d", nsp, k)))
		}
		for _, r := range b.PublishBatch(ctx, batch) {
			if r.Err != nil || r.Offset == "" {
				t.Fatalf("PublishBatch on %s: %+v", nsp, r)
			}
		}
	}
	for _, nsp := range nsps {
		var want []string
		for k := range 20 {
			want = append(want, fmt.Sprintf("%s-%d", nsp, k))
		}
		checkSequence(t, sinks[nsp].waitEvents(t, 20, 10*time.Second), want)
		if n, err := a.ServerCount(ctx, nsp); err != nil || n != 2 {
			t.Errorf("ServerCount(%s) = %d, %v", nsp, n, err)
		}
	}
	// The entries are where Node writes them (a negative index included).
	if v, err := c.Do("XLEN", StreamKey("socket.io", 3, "/orders-namespace")); err != nil || v.(int64) != 20 {
		t.Errorf("XLEN %s = %v, %v", StreamKey("socket.io", 3, "/orders-namespace"), v, err)
	}
	err := b.PublishResponse(ctx, "a000000000000001", &adapter.Message{UID: "b000000000000001", Nsp: "/chat", Type: adapter.BroadcastClientCount,
		Data: &adapter.BroadcastClientCountData{RequestID: "q", ClientCount: 3}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "response over cluster pub/sub", func() bool {
		for _, m := range sinks["/chat"].all() {
			if m.Type == adapter.BroadcastClientCount {
				return true
			}
		}
		return false
	})
}

func TestRedisClusterShardedPubSub(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	o := fastOpts(c.URL())
	o.UseShardedPubSub = true
	a := startTransport(t, "a", o)
	b := startTransport(t, "b", o)
	waitReady(t, a, b)
	sa := subscribe(t, a, "/", "aaaaaaaaaaaaaaaa")
	subscribe(t, b, "/", "bbbbbbbbbbbbbbbb")
	ctx := context.Background()
	waitFor(t, 5*time.Second, "SHARDNUMSUB = 2", func() bool {
		n, _ := a.ServerCount(ctx, "/")
		return n == 2
	})
	if _, err := b.Publish(ctx, &adapter.Message{UID: "bbbbbbbbbbbbbbbb", Nsp: "/", Type: adapter.FetchSockets,
		Data: &adapter.FetchSocketsData{RequestID: "f", Opts: adapter.Options{Rooms: []string{}, Except: []string{}}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishResponse(ctx, "aaaaaaaaaaaaaaaa", &adapter.Message{UID: "bbbbbbbbbbbbbbbb", Nsp: "/", Type: adapter.FetchSocketsResponse,
		Data: &adapter.FetchSocketsResponseData{RequestID: "g", Sockets: []adapter.SocketInfo{}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both over sharded pub/sub", func() bool {
		var req, resp bool
		for _, m := range sa.all() {
			req = req || m.Type == adapter.FetchSockets
			resp = resp || m.Type == adapter.FetchSocketsResponse
		}
		return req && resp
	})
}

// TestCloseLeaksNothing closes transports in every state and checks that
// no goroutine of the package survives, and that the process goes back to
// its goroutine count (rueidis closes its connections asynchronously,
// hence the retry loop).
func TestCloseLeaksNothing(t *testing.T) {
	// Not parallel: it counts the goroutines of the whole process.
	s := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, s.Addr())
	before := runtime.NumGoroutine()
	for round := range 3 {
		a := startTransport(t, "a", fastOpts(s.URL()))
		b := startTransport(t, "b", fastOpts("redis://"+p.Addr()))
		waitReady(t, a, b)
		unsub, err := a.Subscribe(context.Background(), "/", "aaaaaaaaaaaaaaaa", func(*adapter.Message) {})
		if err != nil {
			t.Fatal(err)
		}
		subscribe(t, b, "/", "bbbbbbbbbbbbbbbb")
		if round == 1 {
			unsub()
		}
		if round == 2 {
			p.Cut() // closed while cut off, with a message waiting
			waitFor(t, 10*time.Second, "b not ready", func() bool { return !b.Ready() })
			_, _ = b.Publish(context.Background(), broadcast("bbbbbbbbbbbbbbbb", "/", "late"))
		}
		if _, err := a.Publish(context.Background(), broadcast("aaaaaaaaaaaaaaaa", "/", "x")); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		_ = a.Close() // idempotent
		if _, err := a.Publish(context.Background(), broadcast("aaaaaaaaaaaaaaaa", "/", "y")); !errors.Is(err, adapter.ErrClosed) {
			t.Errorf("Publish after Close: %v", err)
		}
		if _, err := a.Subscribe(context.Background(), "/", "cccccccccccccccc", func(*adapter.Message) {}); !errors.Is(err, adapter.ErrClosed) {
			t.Errorf("Subscribe after Close: %v", err)
		}
		p.Restore()
	}
	// A goroutine Close waited for may still be returning (its deferred
	// close is what Close waited on): both checks allow it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, sample := clusterGoroutines()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of package cluster after Close:\n%s", n, sample)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		now := runtime.NumGoroutine()
		if now <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, now, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReconcileLostReply simulates XADDs whose reply was lost: one that
// Redis applied is found in the stream and not written again, one that it
// did not apply is written.
func TestReconcileLostReply(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t)
	a := startTransport(t, "a", fastOpts(s.URL()))
	waitReady(t, a)
	for round, known := range []bool{false, true} {
		key := fmt.Sprintf("stream-%d", round)
		if known {
			// The writer knows its last id on this stream.
			e, _ := a.codec.EncodeEntry(broadcast("aaaaaaaaaaaaaaaa", "/", "first"))
			it := newOutItem(key, e)
			a.out.push([]*outItem{it})
			<-it.done
		}
		applied, _ := a.codec.EncodeEntry(broadcast("aaaaaaaaaaaaaaaa", "/", "applied"))
		notApplied, _ := a.codec.EncodeEntry(broadcast("aaaaaaaaaaaaaaaa", "/", "not-applied"))
		// Someone else's entry in between, same contents, other uid.
		other, _ := a.codec.EncodeEntry(broadcast("bbbbbbbbbbbbbbbb", "/", "applied"))
		if _, err := s.Do(append([]string{"XADD", key, "*"}, other.FieldValues()...)...); err != nil {
			t.Fatal(err)
		}
		id, err := s.Do(append([]string{"XADD", key, "*"}, applied.FieldValues()...)...)
		if err != nil {
			t.Fatal(err)
		}
		before := value(a.metrics.xaddReconciled)
		i1, i2 := newOutItem(key, applied), newOutItem(key, notApplied)
		i1.unknown, i2.unknown = true, true
		if errs := a.out.push([]*outItem{i1, i2}); errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		for _, it := range []*outItem{i1, i2} {
			select {
			case <-it.done:
			case <-time.After(5 * time.Second):
				t.Fatal("not written")
			}
		}
		if i1.offset != id || i1.err != nil {
			t.Errorf("round %d: applied XADD completed with %q %v, want %q", round, i1.offset, i1.err, id)
		}
		if i2.offset == "" || !idLess(id.(string), i2.offset) {
			t.Errorf("round %d: the other XADD completed with %q %v", round, i2.offset, i2.err)
		}
		if got := value(a.metrics.xaddReconciled) - before; got != 1 {
			t.Errorf("round %d: reconciled %v, want 1", round, got)
		}
		n, _ := s.Do("XLEN", key)
		want := int64(3)
		if known {
			want = 4
		}
		if n != want {
			t.Errorf("round %d: XLEN %v, want %d (written twice?)", round, n, want)
		}
	}
}
