package recovery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// fakeClock is a clock tests move by hand, so that expiry is tested without
// sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1700000000000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// readAll reads everything after offset and returns the packets and the end.
func readAll(t *testing.T, l PacketLog, nsp, offset string) ([]Packet, string, error) {
	t.Helper()
	var got []Packet
	end, err := l.ReadAfter(context.Background(), nsp, offset, func(p Packet) error {
		got = append(got, p)
		return nil
	})
	return got, end, err
}

func TestMemoryLogOffsets(t *testing.T) {
	clk := newFakeClock()
	l := newMemoryLog(MemoryLogOptions{}, clk.Now)
	var offs []string
	offs = append(offs, l.Append("/", []any{"a"}, PacketOptions{}))
	offs = append(offs, l.Append("/", []any{"b"}, PacketOptions{})) // same millisecond
	clk.Add(5 * time.Millisecond)
	offs = append(offs, l.Append("/", []any{"c"}, PacketOptions{}))
	clk.Add(-time.Second) // the wall clock steps back
	offs = append(offs, l.Append("/", []any{"d"}, PacketOptions{}))
	want := []string{"1700000000000-0", "1700000000000-1", "1700000000005-0", "1700000000005-1"}
	if !reflect.DeepEqual(offs, want) {
		t.Fatalf("offsets %v, want %v", offs, want)
	}

	zero := newMemoryLog(MemoryLogOptions{}, func() time.Time { return time.UnixMilli(0) })
	if o := zero.Append("/", nil, PacketOptions{}); o != "0-1" {
		t.Fatalf("first offset at time 0 = %s: Redis refuses 0-0", o)
	}
}

func TestMemoryLogReadAfter(t *testing.T) {
	clk := newFakeClock()
	l := newMemoryLog(MemoryLogOptions{}, clk.Now)
	first := l.Append("/", []any{"e", 0}, PacketOptions{})
	var want []Packet
	for i := 1; i <= 1000; i++ { // several read batches
		clk.Add(time.Millisecond)
		nsp := "/"
		if i%3 == 0 {
			nsp = "/other"
		}
		opts := PacketOptions{Rooms: []string{fmt.Sprint("r", i%5)}, Except: []string{"x"}, Volatile: i%7 == 0}
		off := l.Append(nsp, []any{"e", i}, opts)
		if nsp == "/" {
			want = append(want, Packet{Offset: off, Nsp: "/", Data: []any{"e", i}, Opts: opts})
		}
	}
	last := l.Append("/other", []any{"tail"}, PacketOptions{})

	got, end, err := readAll(t, l, "/", first)
	if err != nil {
		t.Fatal(err)
	}
	if end != last {
		t.Fatalf("end %s, want the last entry %s whatever its namespace", end, last)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %d packets, want %d (first diff at %d)", len(got), len(want), firstDiff(got, want))
	}

	// From the last entry: nothing to read, the end is the offset itself.
	got, end, err = readAll(t, l, "/", last)
	if err != nil || len(got) != 0 || end != last {
		t.Fatalf("read after the end: %v %s %v", got, end, err)
	}
}

func firstDiff(a, b []Packet) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestMemoryLogOffsetNotFound(t *testing.T) {
	clk := newFakeClock()
	l := newMemoryLog(MemoryLogOptions{MaxLen: 10}, clk.Now)
	var offs []string
	for i := range 15 {
		clk.Add(2 * time.Millisecond)
		offs = append(offs, l.Append("/", []any{i}, PacketOptions{}))
	}
	if l.Len() != 10 {
		t.Fatalf("Len %d, want the bound 10", l.Len())
	}
	o4, _ := adapter.ParseOffset(offs[4])
	for name, off := range map[string]string{
		"trimmed":         offs[4],
		"between entries": adapter.Offset{Ms: o4.Ms + 1}.String(),
		"past the end":    "9999999999999-0",
		"before all":      "0-0",
	} {
		called := false
		_, err := l.ReadAfter(context.Background(), "/", off, func(Packet) error { called = true; return nil })
		if !errors.Is(err, ErrOffsetNotFound) || called {
			t.Errorf("%s: err %v, visit called %v; want ErrOffsetNotFound before any visit", name, err, called)
		}
	}
	if _, err := l.ReadAfter(context.Background(), "/", "nope", nil); !errors.Is(err, adapter.ErrInvalidOffset) {
		t.Errorf("invalid offset: %v", err)
	}
	// The oldest entry still held is readable.
	got, _, err := readAll(t, l, "/", offs[5])
	if err != nil || len(got) != 9 {
		t.Fatalf("read from the oldest entry: %d packets, %v", len(got), err)
	}
}

func TestMemoryLogMaxAge(t *testing.T) {
	clk := newFakeClock()
	l := newMemoryLog(MemoryLogOptions{MaxAge: time.Minute}, clk.Now)
	old := l.Append("/", []any{"old"}, PacketOptions{})
	clk.Add(30 * time.Second)
	mid := l.Append("/", []any{"mid"}, PacketOptions{})
	clk.Add(31 * time.Second) // old is now 61 s old
	if _, _, err := readAll(t, l, "/", old); !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("read from an expired offset: %v", err)
	}
	if l.Len() != 1 {
		t.Fatalf("Len %d after expiry, want 1", l.Len())
	}
	if _, _, err := readAll(t, l, "/", mid); err != nil {
		t.Fatalf("read from a live offset: %v", err)
	}
}

func TestMemoryLogEndIsFixedAtStart(t *testing.T) {
	// visit runs without the lock, so it can append: entries appended
	// during the read must not be visited, or a restore racing a fast
	// producer would never end.
	l := NewMemoryLog(MemoryLogOptions{MaxLen: 100000})
	start := l.Append("/", []any{"start"}, PacketOptions{})
	var last string
	for i := range 600 {
		last = l.Append("/", []any{i}, PacketOptions{})
	}
	n := 0
	end, err := l.ReadAfter(context.Background(), "/", start, func(p Packet) error {
		n++
		l.Append("/", []any{"during"}, PacketOptions{})
		if p.Data[0] == "during" {
			return errors.New("visited an entry appended during the read")
		}
		return nil
	})
	if err != nil || n != 600 || end != last {
		t.Fatalf("read %d packets, end %s (want %s), err %v", n, end, last, err)
	}
}

func TestMemoryLogTrimmedDuringRead(t *testing.T) {
	// The read must fail, not end early with what it had, when the bound
	// drops entries it has not read yet.
	l := NewMemoryLog(MemoryLogOptions{MaxLen: 1000})
	start := l.Append("/", []any{"start"}, PacketOptions{})
	for i := range 999 {
		l.Append("/", []any{i}, PacketOptions{})
	}
	n := 0
	_, err := l.ReadAfter(context.Background(), "/", start, func(Packet) error {
		n++
		if n == 1 {
			for range 1000 { // push everything not yet read out of the bound
				l.Append("/", []any{"flood"}, PacketOptions{})
			}
		}
		return nil
	})
	if !errors.Is(err, ErrOffsetNotFound) {
		t.Fatalf("err %v after %d packets, want ErrOffsetNotFound", err, n)
	}
}

func TestMemoryLogVisitErrorAndContext(t *testing.T) {
	l := NewMemoryLog(MemoryLogOptions{})
	start := l.Append("/", nil, PacketOptions{})
	for range 1000 {
		l.Append("/", []any{"x"}, PacketOptions{})
	}
	boom := errors.New("boom")
	n := 0
	_, err := l.ReadAfter(context.Background(), "/", start, func(Packet) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 10 {
		t.Fatalf("visit error: %v after %d visits", err, n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	_, err = l.ReadAfter(ctx, "/", start, func(Packet) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > readBatch {
		t.Fatalf("cancelled read: %v after %d visits (batch %d)", err, n, readBatch)
	}
}

func TestMemoryLogCopiesData(t *testing.T) {
	l := NewMemoryLog(MemoryLogOptions{})
	start := l.Append("/", nil, PacketOptions{})
	data := []any{"e", 1}
	rooms := []string{"r"}
	l.Append("/", data, PacketOptions{Rooms: rooms})
	data[1], rooms[0] = 2, "changed"
	got, _, _ := readAll(t, l, "/", start)
	if got[0].Data[1] != 1 || got[0].Opts.Rooms[0] != "r" {
		t.Fatalf("the log shares the caller's slices: %+v", got[0])
	}
}

func TestMemoryLogConcurrent(t *testing.T) {
	// Appenders and readers at once, for the race detector, with the
	// ring wrapping and growing underneath.
	l := NewMemoryLog(MemoryLogOptions{MaxLen: 500})
	start := l.Append("/", nil, PacketOptions{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.Append(fmt.Sprint("/", w), []any{i}, PacketOptions{})
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := start
			for range 50 {
				var prev adapter.Offset
				end, err := l.ReadAfter(context.Background(), "/0", off, func(p Packet) error {
					o, _ := adapter.ParseOffset(p.Offset)
					if o.Compare(prev) <= 0 {
						return fmt.Errorf("offset %s not after %s", p.Offset, prev)
					}
					prev = o
					return nil
				})
				switch {
				case errors.Is(err, ErrOffsetNotFound):
					off = l.Append("/0", []any{"resync"}, PacketOptions{}) // trimmed: start again from now
				case err != nil:
					t.Error(err)
					return
				default:
					off = end
				}
			}
		}()
	}
	wg.Wait()
}
