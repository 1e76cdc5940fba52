package cluster

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/recovery"
)

func TestStreamLogReadAfter(t *testing.T) {
	_, c := redisClient(t)
	const key = DefaultStreamName
	start := xadd(t, c, key, logBroadcast("/", nil, nil, false, "before"))
	var want []recovery.Packet
	add := func(msg *adapter.Message, visited bool) {
		id := xadd(t, c, key, msg)
		if visited {
			d := msg.Data.(*adapter.BroadcastData)
			want = append(want, recovery.Packet{Offset: id, Nsp: "/", UID: msg.UID, Data: toAnySlice(d.Packet.Data),
				Opts: recovery.PacketOptions{Rooms: d.Opts.Rooms, Except: d.Opts.Except, Volatile: d.Opts.Flags.Volatile}})
		}
	}
	add(logBroadcast("/", nil, nil, false, "all", 1.0), true)
	add(logBroadcast("/other", nil, nil, false, "elsewhere"), false)
	add(logBroadcast("/", []string{"r1"}, []string{"r2"}, false, "rooms", map[string]any{"k": "v"}), true)
	add(logBroadcast("/", nil, nil, true, "volatile"), true) // flagged, Restore skips it
	add(&adapter.Message{UID: "0123456789abcdef", Nsp: "/", Type: adapter.SocketsJoin,
		Data: &adapter.SocketsJoinLeaveData{Opts: adapter.Options{Rooms: []string{}, Except: []string{}}, Rooms: []string{"x"}}}, false)
	ackID := uint64(3)
	withAck := logBroadcast("/", nil, nil, false, "with ack")
	withAck.Data.(*adapter.BroadcastData).Packet.ID = &ackID
	add(withAck, false)
	add(logBroadcast("/", nil, nil, false, "binary", []byte{1, 2, 3}), true)
	for i := range 7 {
		add(logBroadcast("/", nil, nil, false, "n", float64(i)), true)
	}
	last := xadd(t, c, key, &adapter.Message{UID: "0123456789abcdef", Nsp: "/", Type: adapter.Heartbeat})

	for _, batch := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			l, err := NewStreamLog(c, StreamLogOptions{ReadBatch: batch})
			if err != nil {
				t.Fatal(err)
			}
			got, end, err := readAll(t, l, "/", start)
			if err != nil {
				t.Fatal(err)
			}
			if end != last {
				t.Errorf("end = %s, want the last entry %s", end, last)
			}
			if !reflect.DeepEqual(got, want) {
				i := firstDiff(got, want)
				t.Fatalf("got %d packets, want %d; first difference at %d:\n got %#v\nwant %#v", len(got), len(want), i, at(got, i), at(want, i))
			}
		})
	}

	l, _ := NewStreamLog(c, StreamLogOptions{})
	got, end, err := readAll(t, l, "/", last)
	if err != nil || end != last || len(got) != 0 {
		t.Errorf("read after the last entry: %d packets, end %s, err %v; want none, %s, nil", len(got), end, err, last)
	}
}

func at(p []recovery.Packet, i int) any {
	if i < len(p) {
		return p[i]
	}
	return nil
}

// toAnySlice is what a decoded packet holds: numbers as float64, binary as
// []byte.
func toAnySlice(in []any) []any {
	out := make([]any, len(in))
	for i, v := range in {
		switch v := v.(type) {
		case int:
			out[i] = float64(v)
		default:
			out[i] = v
		}
	}
	return out
}

func TestStreamLogOffsetNotFound(t *testing.T) {
	srv, c := redisClient(t)
	l, err := NewStreamLog(c, StreamLogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	visit := func(recovery.Packet) error { t.Error("visit called"); return nil }

	if _, err := l.ReadAfter(context.Background(), "/", "1-0", visit); !errors.Is(err, recovery.ErrOffsetNotFound) {
		t.Errorf("empty stream: err = %v, want recovery.ErrOffsetNotFound", err)
	}
	// Explicit ids, so that one lies between two entries.
	for _, id := range []string{"1000-1", "1000-5"} {
		e, err := Codec{}.EncodeEntry(logBroadcast("/", nil, nil, false, "a"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Do("XADD", "socket.io", id, "uid", e.UID, "nsp", e.Nsp, "type", "3", "data", e.Data); err != nil {
			t.Fatal(err)
		}
	}
	first := "1000-1"
	for name, off := range map[string]string{
		"between entries": "1000-3",
		"past the end":    "99999999999999-0",
		"before the head": "1-0",
	} {
		if _, err := l.ReadAfter(context.Background(), "/", off, visit); !errors.Is(err, recovery.ErrOffsetNotFound) {
			t.Errorf("%s (%s): err = %v, want recovery.ErrOffsetNotFound", name, off, err)
		}
	}
	if _, err := l.ReadAfter(context.Background(), "/", "12x-0", visit); !errors.Is(err, adapter.ErrInvalidOffset) {
		t.Errorf("malformed offset: err = %v, want adapter.ErrInvalidOffset", err)
	}

	// Trimmed by MAXLEN, as the transport does.
	for range 5 {
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "c"))
	}
	if _, err := srv.Do("XTRIM", "socket.io", "MAXLEN", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadAfter(context.Background(), "/", first, visit); !errors.Is(err, recovery.ErrOffsetNotFound) {
		t.Errorf("trimmed offset: err = %v, want recovery.ErrOffsetNotFound", err)
	}
}

func TestStreamLogEndIsFixedAtStart(t *testing.T) {
	_, c := redisClient(t)
	start := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "start"))
	var ids []string
	for i := range 10 {
		ids = append(ids, xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "n", i)))
	}
	l, _ := NewStreamLog(c, StreamLogOptions{ReadBatch: 2})
	var seen []string
	end, err := l.ReadAfter(context.Background(), "/", start, func(p recovery.Packet) error {
		seen = append(seen, p.Offset)
		// The log grows faster than it is read: the read still ends.
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "late"))
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "late"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if end != ids[len(ids)-1] || !reflect.DeepEqual(seen, ids) {
		t.Errorf("end %s, seen %v; want %s, %v", end, seen, ids[len(ids)-1], ids)
	}
}

func TestStreamLogTrimmedDuringRead(t *testing.T) {
	srv, c := redisClient(t)
	start := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "start"))
	for i := range 10 {
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "n", i))
	}
	l, _ := NewStreamLog(c, StreamLogOptions{ReadBatch: 3})
	visited := 0
	_, err := l.ReadAfter(context.Background(), "/", start, func(p recovery.Packet) error {
		visited++
		if visited == 1 {
			for range 20 {
				xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "push"))
			}
			if _, err := srv.Do("XTRIM", "socket.io", "MAXLEN", "5"); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if !errors.Is(err, recovery.ErrOffsetNotFound) {
		t.Fatalf("err = %v after %d packets, want recovery.ErrOffsetNotFound", err, visited)
	}
}

func TestStreamLogCostFollowsMissedPackets(t *testing.T) {
	srv, c := redisClient(t)
	for i := range 5000 {
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "old", i))
	}
	start := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "start"))
	for i := range 25 {
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "missed", i))
	}
	l, _ := NewStreamLog(c, StreamLogOptions{ReadBatch: 10})
	before := commandCalls(t, srv, "xrange")
	got, _, err := readAll(t, l, "/", start)
	if err != nil || len(got) != 25 {
		t.Fatalf("%d packets, err %v; want 25", len(got), err)
	}
	// 25 missed packets in batches of 10 (plus the entry read from): 3
	// XRANGE calls, whatever lies before the offset.
	if calls := commandCalls(t, srv, "xrange") - before; calls != 3 {
		t.Errorf("%d XRANGE calls, want 3", calls)
	}
}

func TestStreamLogMalformedEntries(t *testing.T) {
	_, c := redisClient(t)
	start := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "start"))
	ctx := context.Background()
	for _, data := range []string{"{not json", `{"packet":"nope"}`} {
		if err := c.Do(ctx, c.B().Xadd().Key("socket.io").Id("*").FieldValue().FieldValue("uid", "x").
			FieldValue("nsp", "/").FieldValue("type", "3").FieldValue("data", data).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	good := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "good"))
	reg := prometheus.NewRegistry()
	m, _ := recovery.NewMetrics(reg)
	l, _ := NewStreamLog(c, StreamLogOptions{Metrics: m})
	got, end, err := readAll(t, l, "/", start)
	if err != nil || end != good || len(got) != 1 || got[0].Offset != good {
		t.Fatalf("got %+v, end %s, err %v; want only %s", got, end, err, good)
	}
	if n := gatheredValue(t, reg, "sockstream_recovery_malformed_entries_total"); n != 2 {
		t.Errorf("malformed counter = %v, want 2", n)
	}
}

func TestStreamLogStreamCount(t *testing.T) {
	_, c := redisClient(t)
	key := StreamKey("app", 4, "/chat")
	start := xadd(t, c, key, logBroadcast("/chat", nil, nil, false, "start"))
	want := xadd(t, c, key, logBroadcast("/chat", nil, nil, false, "x"))
	l, _ := NewStreamLog(c, StreamLogOptions{StreamName: "app", StreamCount: 4})
	got, _, err := readAll(t, l, "/chat", start)
	if err != nil || len(got) != 1 || got[0].Offset != want {
		t.Fatalf("got %+v, err %v", got, err)
	}
}

func TestStreamLogContextAndVisitError(t *testing.T) {
	_, c := redisClient(t)
	start := xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, "start"))
	for i := range 5 {
		xadd(t, c, "socket.io", logBroadcast("/", nil, nil, false, strconv.Itoa(i)))
	}
	l, _ := NewStreamLog(c, StreamLogOptions{ReadBatch: 2})
	boom := errors.New("boom")
	n := 0
	if _, err := l.ReadAfter(context.Background(), "/", start, func(recovery.Packet) error { n++; return boom }); !errors.Is(err, boom) || n != 1 {
		t.Errorf("visit error: err %v after %d visits", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := l.ReadAfter(ctx, "/", start, func(recovery.Packet) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, err := NewStreamLog(nil, StreamLogOptions{}); err == nil {
		t.Error("NewStreamLog(nil) succeeded")
	}
}

// TestRedisClusterSessionStoreAndStreamLog: sessions and streams spread over the shards
// of a real Redis Cluster (one key per command, so no cross-slot errors).
func TestRedisClusterSessionStoreAndStreamLog(t *testing.T) {
	rc := redistest.StartCluster(t, 3)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: rc.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()

	store := NewSessionStore(c, SessionStoreOptions{})
	for _, pid := range []string{testPID, testPID2, "zzzzzzzzzzzzzzzzzzzz"} {
		if err := store.Persist(ctx, recovery.Session{SID: "s-" + pid, PID: pid, Rooms: []string{"r"}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range []string{testPID, testPID2, "zzzzzzzzzzzzzzzzzzzz"} {
		s, err := store.Take(ctx, pid)
		if err != nil || s.SID != "s-"+pid {
			t.Errorf("Take(%s) = %+v, %v", pid, s, err)
		}
	}

	// Namespaces spread over 4 streams, hence over the shards.
	l, err := NewStreamLog(c, StreamLogOptions{StreamName: "app", StreamCount: 4, ReadBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, nsp := range []string{"/", "/chat", "/admin", "/x"} {
		key := StreamKey("app", 4, nsp)
		start := xadd(t, c, key, logBroadcast(nsp, nil, nil, false, "start"))
		var want []string
		for i := range 5 {
			want = append(want, xadd(t, c, key, logBroadcast(nsp, nil, nil, false, "n", i)))
		}
		got, end, err := readAll(t, l, nsp, start)
		if err != nil || end != want[len(want)-1] || len(got) != 5 {
			t.Fatalf("%s (%s): %d packets, end %s, err %v", nsp, key, len(got), end, err)
		}
		for i, p := range got {
			if p.Offset != want[i] {
				t.Errorf("%s: packet %d at %s, want %s", nsp, i, p.Offset, want[i])
			}
		}
	}
}

// redisClient starts a real redis-server and returns a client to it.
func redisClient(t *testing.T) (*redistest.Server, rueidis.Client) {
	t.Helper()
	srv := redistest.StartStandalone(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatalf("rueidis: %v", err)
	}
	t.Cleanup(c.Close)
	return srv, c
}

// xadd publishes msg to stream key as the cluster transport does and
// returns the entry id.
func xadd(t testing.TB, c rueidis.Client, key string, msg *adapter.Message) string {
	t.Helper()
	e, err := Codec{}.EncodeEntry(msg)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := c.Do(ctx, c.B().Xadd().Key(key).Id("*").FieldValue().FieldValue("uid", e.UID).
		FieldValue("nsp", e.Nsp).FieldValue("type", strconv.Itoa(int(e.Type))).FieldValue("data", e.Data).Build()).ToString()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	return id
}

// logBroadcast is a BROADCAST message of nsp with packet data args.
func logBroadcast(nsp string, rooms, except []string, volatile bool, args ...any) *adapter.Message {
	if rooms == nil {
		rooms = []string{}
	}
	if except == nil {
		except = []string{}
	}
	return &adapter.Message{UID: "0123456789abcdef", Nsp: nsp, Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: args},
		Opts:   adapter.Options{Rooms: rooms, Except: except, Flags: adapter.Flags{Volatile: volatile}},
	}}
}

func commandCalls(t *testing.T, srv *redistest.Server, cmd string) int {
	t.Helper()
	v, err := srv.Do("INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(v.(string), "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// gatheredValue is the value of the counter name (without labels) in reg.
func gatheredValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// readAll reads everything after offset and returns the packets and the end.
func readAll(t *testing.T, l recovery.PacketLog, nsp, offset string) ([]recovery.Packet, string, error) {
	t.Helper()
	var got []recovery.Packet
	end, err := l.ReadAfter(context.Background(), nsp, offset, func(p recovery.Packet) error {
		got = append(got, p)
		return nil
	})
	return got, end, err
}

func firstDiff(a, b []recovery.Packet) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}
