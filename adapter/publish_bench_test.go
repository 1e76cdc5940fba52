package adapter_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
)

// benchNode is a namespace adapter over the Redis Streams transport, with
// one local socket, for the publication benchmarks.
func benchNode(b *testing.B) *adapter.NamespaceAdapter {
	b.Helper()
	srv := redistest.StartStandalone(b)
	tr, err := cluster.New(cluster.Options{
		URL:        srv.URL(),
		Logger:     slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	bl, err := adapter.New(tr, adapter.Config{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ns := newTestNS("/", "bench")
	a := bl.New(ns)
	b.Cleanup(func() { _ = a.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for !tr.Ready() {
		if time.Now().After(deadline) {
			b.Fatal("transport never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

// drain waits until the outbound worker has handed every queued
// broadcast to the transport: a FetchSockets on a node alone is answered
// in order after them. With the adapter of before the broadcasts returned
// once queued; this makes the figures comparable (hence b.N, not b.Loop, whose
// timer would stop before drain).
func drain(b *testing.B, a *adapter.NamespaceAdapter) {
	if _, err := a.FetchSockets(context.Background(), adapter.Options{}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBroadcastRedis: one goroutine broadcasting, each Broadcast
// returning once the transport answered (the entry id from Redis).
func BenchmarkBroadcastRedis(b *testing.B) {
	a := benchNode(b)
	o := adapter.Options{Rooms: []string{"nobody"}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := a.Broadcast(ev("m", "payload"), o); err != nil {
			b.Fatal(err)
		}
	}
	drain(b, a)
}

// BenchmarkBroadcastRedisParallel: 64 goroutines per CPU broadcasting at
// once, as many sockets' handlers do; the outbound worker batches them.
func BenchmarkBroadcastRedisParallel(b *testing.B) {
	a := benchNode(b)
	o := adapter.Options{Rooms: []string{"nobody"}}
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.Broadcast(ev("m", "payload"), o); err != nil {
				failed.Add(1)
			}
		}
	})
	drain(b, a)
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d broadcasts failed", n)
	}
}
