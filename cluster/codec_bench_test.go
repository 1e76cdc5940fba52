package cluster_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// benchBroadcast is the message a node writes for io.to(room).emit("m",
// payload): the hot path of every cluster-wide broadcast.
func benchBroadcast(size int) *adapter.Message {
	return &adapter.Message{
		UID:  "0123456789abcdef",
		Nsp:  "/",
		Type: adapter.Broadcast,
		Data: &adapter.BroadcastData{
			Packet: adapter.Packet{Type: 2, Data: []any{"m", strings.Repeat("x", size)}},
			Opts:   adapter.Options{Rooms: []string{"bench0"}, Except: []string{}},
		},
	}
}

func BenchmarkCodecEncodeEntry(b *testing.B) {
	var c cluster.Codec
	msg := benchBroadcast(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeEntry(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecDecodeEntry(b *testing.B) {
	var c cluster.Codec
	e, err := c.EncodeEntry(benchBroadcast(100))
	if err != nil {
		b.Fatal(err)
	}
	fv := e.FieldValues()
	fields := make(map[string]string, len(fv)/2)
	for i := 0; i+1 < len(fv); i += 2 {
		fields[fv[i]] = fv[i+1]
	}
	b.ReportAllocs()
	for b.Loop() {
		msg, err := c.DecodeEntry("1700000000000-0", fields)
		if err != nil {
			b.Fatal(err)
		}
		if msg.Type != adapter.Broadcast {
			b.Fatalf("decoded type %v", msg.Type)
		}
	}
}

func BenchmarkCodecEncodeEntryBinary(b *testing.B) {
	var c cluster.Codec
	msg := benchBroadcast(0)
	msg.Data.(*adapter.BroadcastData).Packet.Data = []any{"m", make([]byte, 100)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeEntry(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecPubSubRoundTrip(b *testing.B) {
	var c cluster.Codec
	msg := benchBroadcast(100)
	b.ReportAllocs()
	for b.Loop() {
		p, err := c.EncodePubSub(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.DecodePubSub(p); err != nil {
			b.Fatal(err)
		}
	}
}

// startBenchTransport starts a Redis and a transport on it, ready.
func startBenchTransport(b *testing.B) *cluster.Transport {
	b.Helper()
	srv := redistest.StartStandalone(b)
	tr, err := cluster.New(cluster.Options{URL: srv.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := tr.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !tr.Ready() {
		if time.Now().After(deadline) {
			b.Fatal("transport not ready after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tr
}

// BenchmarkTransportPublish is the XADD path of a broadcast: one Publish
// at a time, each waiting for its entry id (a round trip per message).
func BenchmarkTransportPublish(b *testing.B) {
	tr := startBenchTransport(b)
	msg := benchBroadcast(100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		off, err := tr.Publish(ctx, msg)
		if err != nil || off == "" {
			b.Fatalf("Publish = %q, %v", off, err)
		}
	}
}

// BenchmarkTransportPublishParallel is the XADD path under concurrent
// broadcasts, where the outbox pipelines the XADDs of many publishers.
func BenchmarkTransportPublishParallel(b *testing.B) {
	tr := startBenchTransport(b)
	ctx := context.Background()
	var failed atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		msg := benchBroadcast(100)
		for pb.Next() {
			if off, err := tr.Publish(ctx, msg); err != nil || off == "" {
				failed.Add(1)
			}
		}
	})
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d publications failed", n)
	}
}

// BenchmarkTransportPublishBatch hands batches of 64 broadcasts over at
// once, as the adapter does under load; the figure is per message.
func BenchmarkTransportPublishBatch(b *testing.B) {
	tr := startBenchTransport(b)
	ctx := context.Background()
	const batch = 64
	msgs := make([]*adapter.Message, batch)
	for i := range msgs {
		msgs[i] = benchBroadcast(100)
		msgs[i].Data.(*adapter.BroadcastData).Packet.Data[0] = "m" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, r := range tr.PublishBatch(ctx, msgs) {
			if r.Err != nil || r.Offset == "" {
				b.Fatalf("PublishBatch: %q, %v", r.Offset, r.Err)
			}
		}
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/msg")
	}
}
