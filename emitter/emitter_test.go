package emitter_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/emitter"
	"github.com/sockstream/sockstream/internal/redistest"
)

func TestNewOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		opts  emitter.Options
		field string
	}{
		{"no-redis", emitter.Options{}, "Client"},
		{"bad-url", emitter.Options{URL: "http://x"}, "URL"},
		{"stream-count", emitter.Options{URL: "redis://127.0.0.1:1", StreamCount: -1}, "StreamCount"},
		{"stream-count-max", emitter.Options{URL: "redis://127.0.0.1:1", StreamCount: 1025}, "StreamCount"},
		{"max-len", emitter.Options{URL: "redis://127.0.0.1:1", MaxLen: -1}, "MaxLen"},
		{"max-data-size", emitter.Options{URL: "redis://127.0.0.1:1", MaxDataSize: -1}, "MaxDataSize"},
		{"request-timeout", emitter.Options{URL: "redis://127.0.0.1:1", RequestTimeout: time.Microsecond}, "RequestTimeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := emitter.New(c.opts)
			var oe *emitter.OptionsError
			if !errors.Is(err, emitter.ErrInvalidOptions) || !errors.As(err, &oe) || oe.Field != c.field {
				t.Errorf("New = %v, want an OptionsError on %s", err, c.field)
			}
		})
	}
	t.Run("redis-down", func(t *testing.T) {
		rs := redistest.StartStandalone(t)
		rs.Stop()
		_, err := emitter.New(emitter.Options{URL: rs.URL(), RequestTimeout: time.Second})
		if err == nil || errors.Is(err, emitter.ErrInvalidOptions) {
			t.Errorf("New with Redis down = %v, want a connection error", err)
		}
	})
}

// xrange returns the entries of stream key as field maps, with their ids.
func xrange(t *testing.T, rs *redistest.Server, key string) (ids []string, entries []map[string]string) {
	t.Helper()
	v, err := rs.Do("XRANGE", key, "-", "+")
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	for _, e := range v.([]any) {
		e := e.([]any)
		ids = append(ids, e[0].(string))
		fv := e[1].([]any)
		m := map[string]string{}
		for i := 0; i+1 < len(fv); i += 2 {
			m[fv[i].(string)] = fv[i+1].(string)
		}
		entries = append(entries, m)
	}
	return ids, entries
}

func xlen(t *testing.T, rs *redistest.Server, key string) int64 {
	t.Helper()
	v, err := rs.Do("XLEN", key)
	if err != nil {
		t.Fatalf("XLEN %s: %v", key, err)
	}
	return v.(int64)
}

// TestEntries: the entries are those Node writes (docs/wire-format.md):
// uid "emitter", the namespace, the type as a decimal string, and JSON
// data with rooms and except always present and only the flags set; binary
// makes the data base64 MessagePack, which decodes back to the arguments.
func TestEntries(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	e := newEmitter(t, emitter.Options{URL: rs.URL()})
	c := ctx(t)
	steps := []struct {
		do   func() error
		nsp  string
		typ  string
		data string
	}{
		{func() error { return e.Emit(c, "plain", "hello", map[string]any{"n": 1}) }, "/", "3",
			`{"packet":{"type":2,"data":["plain","hello",{"n":1}]},"opts":{"rooms":[],"except":[],"flags":{}}}`},
		{func() error { return e.Of("chat").To("r1", "r2", "r1").Except("x").Emit(c, "e") }, "/chat", "3",
			`{"packet":{"type":2,"data":["e"]},"opts":{"rooms":["r1","r2"],"except":["x"],"flags":{}}}`},
		{func() error { return e.To("r").Volatile().Compress(false).Emit(c, "v", "<&>\u2028") }, "/", "3",
			`{"packet":{"type":2,"data":["v","<&>` + "\u2028" + `"]},"opts":{"rooms":["r"],"except":[],"flags":{"volatile":true,"compress":false}}}`},
		{func() error { return e.In("r").Except("y").SocketsJoin(c, "j1", "j2") }, "/", "4",
			`{"opts":{"rooms":["r"],"except":["y"],"flags":{}},"rooms":["j1","j2"]}`},
		{func() error { return e.Of("/").SocketsLeave(c, "j1") }, "/", "5",
			`{"opts":{"rooms":[],"except":[],"flags":{}},"rooms":["j1"]}`},
		{func() error { return e.In("r").DisconnectSockets(c, false) }, "/", "6",
			`{"opts":{"rooms":["r"],"except":[],"flags":{}},"close":false}`},
		{func() error { return e.Except("r").DisconnectSockets(c, true) }, "/", "6",
			`{"opts":{"rooms":[],"except":["r"],"flags":{}},"close":true}`},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing to do, nothing written.
	if err := e.In("r").SocketsJoin(c); err != nil {
		t.Fatal(err)
	}
	_, entries := xrange(t, rs, "socket.io")
	if len(entries) != len(steps) {
		t.Fatalf("%d entries, want %d: %v", len(entries), len(steps), entries)
	}
	for i, s := range steps {
		want := map[string]string{"uid": "emitter", "nsp": s.nsp, "type": s.typ, "data": s.data}
		if !reflect.DeepEqual(entries[i], want) {
			t.Errorf("entry %d:\n got %v\nwant %v", i, entries[i], want)
		}
	}

	t.Run("binary", func(t *testing.T) {
		rs := startRedis(t)
		e := newEmitter(t, emitter.Options{URL: rs.URL()})
		if err := e.To("r").Emit(ctx(t), "bin", []byte{1, 2, 3}, map[string]any{"b": []byte("hi")}); err != nil {
			t.Fatal(err)
		}
		ids, entries := xrange(t, rs, "socket.io")
		if len(entries) != 1 || strings.HasPrefix(entries[0]["data"], "{") {
			t.Fatalf("entries %v: want one base64 MessagePack entry", entries)
		}
		msg, err := cluster.Codec{}.DecodeEntry(ids[0], entries[0])
		if err != nil {
			t.Fatal(err)
		}
		d := msg.Data.(*adapter.BroadcastData)
		want := []any{"bin", []byte{1, 2, 3}, map[string]any{"b": []byte("hi")}}
		if msg.UID != adapter.EmitterUID || !reflect.DeepEqual(d.Packet.Data, want) || !reflect.DeepEqual(d.Opts.Rooms, []string{"r"}) {
			t.Errorf("decoded %+v %+v", msg, d)
		}

		// OnlyPlaintext: JSON, the bytes as JSON.stringify writes a Buffer.
		p := newEmitter(t, emitter.Options{URL: rs.URL(), OnlyPlaintext: true})
		if err := p.Emit(ctx(t), "bin", []byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		_, entries = xrange(t, rs, "socket.io")
		if got, want := entries[1]["data"], `{"packet":{"type":2,"data":["bin",{"type":"Buffer","data":[1,2]}]},"opts":{"rooms":[],"except":[],"flags":{}}}`; got != want {
			t.Errorf("plaintext data %s, want %s", got, want)
		}
	})

	t.Run("server-side-emit", func(t *testing.T) {
		rs := startRedis(t)
		e := newEmitter(t, emitter.Options{URL: rs.URL(), ChannelPrefix: "app"})
		conn, err := rs.Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Do("SUBSCRIBE", "app#/chat#"); err != nil {
			t.Fatal(err)
		}
		if err := e.Of("/chat").ServerSideEmit(ctx(t), "sse", 1, []byte{9}); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetDeadline(time.Now().Add(waitLong)); err != nil {
			t.Fatal(err)
		}
		v, err := conn.Receive()
		if err != nil {
			t.Fatal(err)
		}
		push := v.([]any) // message, channel, payload
		msg, err := cluster.Codec{}.DecodePubSub([]byte(push[2].(string)))
		if err != nil {
			t.Fatal(err)
		}
		d := msg.Data.(*adapter.ServerSideEmitData)
		if msg.UID != "emitter" || msg.Nsp != "/chat" || msg.Type != adapter.ServerSideEmit || d.RequestID != "" ||
			!reflect.DeepEqual(d.Packet, []any{"sse", float64(1), []byte{9}}) {
			t.Errorf("published %+v %+v", msg, d)
		}
		if n := xlen(t, rs, "socket.io"); n != 0 {
			t.Errorf("a server-side emit wrote %d stream entries", n)
		}
	})

	t.Run("max-len", func(t *testing.T) {
		// XADD MAXLEN ~ trims whole nodes of the stream (100 entries by
		// default), so the length stays near MaxLen, not at it.
		rs := startRedis(t)
		e := newEmitter(t, emitter.Options{URL: rs.URL(), MaxLen: 10})
		for i := range 500 {
			if err := e.Emit(ctx(t), "n", i); err != nil {
				t.Fatal(err)
			}
		}
		if n := xlen(t, rs, "socket.io"); n < 10 || n > 200 {
			t.Errorf("XLEN %d after 500 entries with MaxLen 10", n)
		}
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	e := newEmitter(t, emitter.Options{URL: rs.URL(), MaxDataSize: 1000})
	c := ctx(t)

	for _, ev := range []string{"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"} {
		if err := e.Emit(c, ev); !errors.Is(err, emitter.ErrReservedEvent) {
			t.Errorf("Emit(%q) = %v, want ErrReservedEvent", ev, err)
		}
		if err := e.Of("/").ServerSideEmit(c, ev); !errors.Is(err, emitter.ErrReservedEvent) {
			t.Errorf("ServerSideEmit(%q) = %v, want ErrReservedEvent", ev, err)
		}
	}
	if err := e.Emit(c, "ack", func() {}); !errors.Is(err, cluster.ErrInvalidMessage) {
		t.Errorf("Emit with a func = %v, want cluster.ErrInvalidMessage", err)
	}
	if err := e.Emit(c, "ch", make(chan int)); !errors.Is(err, cluster.ErrInvalidMessage) {
		t.Errorf("Emit with a channel = %v, want cluster.ErrInvalidMessage", err)
	}
	if err := e.Emit(c, "big", strings.Repeat("x", 1000)); !errors.Is(err, emitter.ErrTooLarge) {
		t.Errorf("Emit of 1000 bytes with MaxDataSize 1000 = %v, want ErrTooLarge", err)
	}
	if n := xlen(t, rs, "socket.io"); n != 0 {
		t.Fatalf("refused emits wrote %d entries", n)
	}

	// An error reply: not written, and said so.
	if _, err := rs.Do("SET", "other", "x"); err != nil {
		t.Fatal(err)
	}
	o := newEmitter(t, emitter.Options{URL: rs.URL(), StreamName: "other"})
	err := o.Emit(c, "e")
	if err == nil || errors.Is(err, emitter.ErrUnknownOutcome) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Emit to a string key = %v, want the WRONGTYPE reply", err)
	}
	var re *rueidis.RedisError
	if !errors.As(err, &re) {
		t.Errorf("the Redis error is not reachable with errors.As: %v", err)
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Emit(c, "late"); !errors.Is(err, emitter.ErrClosed) {
		t.Errorf("Emit after Close = %v, want ErrClosed", err)
	}
	if err := e.In("r").DisconnectSockets(c, false); !errors.Is(err, emitter.ErrClosed) {
		t.Errorf("DisconnectSockets after Close = %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestUnknownOutcome: when Redis does not answer, the call ends at
// RequestTimeout with ErrUnknownOutcome: the XADD may have been applied.
func TestUnknownOutcome(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	proxy := redistest.NewProxy(t, rs.Addr())
	e := newEmitter(t, emitter.Options{URL: "redis://" + proxy.Addr(), RequestTimeout: 300 * time.Millisecond})
	if err := e.Emit(ctx(t), "before"); err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole()
	err := e.Emit(ctx(t), "lost")
	if !errors.Is(err, emitter.ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Emit with Redis silent = %v, want ErrUnknownOutcome and the deadline", err)
	}
	// A context that ends first is the caller's: same outcome.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Emit(cctx, "cancelled"); !errors.Is(err, emitter.ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Errorf("Emit with a cancelled context = %v", err)
	}
}

// TestGivenClient: an emitter on the caller's client leaves it open.
func TestGivenClient(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{rs.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	e, err := emitter.New(emitter.Options{Client: client, StreamName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Emit(ctx(t), "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Do(ctx(t), client.B().Ping().Build()).Error(); err != nil {
		t.Errorf("the client was closed with the emitter: %v", err)
	}
	if n := xlen(t, rs, "s"); n != 1 {
		t.Errorf("XLEN s = %d", n)
	}
}

// TestZeroValues: an Emitter or Broadcast not made by New fails with an
// error, never a panic.
func TestZeroValues(t *testing.T) {
	t.Parallel()
	c := ctx(t)
	var nilEmitter *emitter.Emitter
	var nilBroadcast *emitter.Broadcast
	for name, b := range map[string]*emitter.Broadcast{
		"zero Emitter": (&emitter.Emitter{}).To("r"),
		"nil Emitter":  nilEmitter.Of("/x"),
		"zero":         (&emitter.Broadcast{}).Except("r"),
		"nil":          nilBroadcast,
	} {
		for op, err := range map[string]error{
			"Emit":              b.Emit(c, "e", 1),
			"SocketsJoin":       b.SocketsJoin(c, "j"),
			"SocketsLeave":      b.SocketsLeave(c, "j"),
			"DisconnectSockets": b.DisconnectSockets(c, true),
			"ServerSideEmit":    b.ServerSideEmit(c, "e"),
		} {
			if err == nil {
				t.Errorf("%s: %s = nil, want an error", name, op)
			}
		}
	}
	if err := nilEmitter.Close(); err != nil {
		t.Errorf("Close of a nil Emitter = %v", err)
	}
	if err := (&emitter.Emitter{}).Close(); err != nil {
		t.Errorf("Close of a zero Emitter = %v", err)
	}
}
