package cluster

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/redistest"
)

func benchTransports(b *testing.B, flush time.Duration) (*Transport, *sink) {
	s := redistest.StartStandalone(b)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := fastOpts(s.URL())
	o.Logger = quiet
	o.MaxFlushDelay = flush
	o.MaxLen = 1_000_000
	pub := startTransport(b, "pub", o)
	rcv := startTransport(b, "rcv", o)
	waitReady(b, pub, rcv)
	return pub, subscribe(b, rcv, "/", "aaaaaaaaaaaaaaaa")
}

// BenchmarkPublish measures one Publish at a time, waiting for the entry
// id, and the delivery of everything to another node.
func BenchmarkPublish(b *testing.B) {
	pub, snk := benchTransports(b, 0)
	ctx := context.Background()
	msg := broadcast("bbbbbbbbbbbbbbbb", "/", "ev")
	b.ResetTimer()
	for b.Loop() {
		if _, err := pub.Publish(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	snk.waitEvents(b, b.N, time.Minute)
}

// BenchmarkPublishBatch measures PublishBatch of 256 messages (what the
// adapter hands over under load), per message.
func BenchmarkPublishBatch(b *testing.B) {
	pub, snk := benchTransports(b, 0)
	ctx := context.Background()
	batch := make([]*adapter.Message, 256)
	for i := range batch {
		batch[i] = broadcast("bbbbbbbbbbbbbbbb", "/", "ev"+strconv.Itoa(i))
	}
	b.ResetTimer()
	n := 0
	for n < b.N {
		k := min(len(batch), b.N-n)
		for _, r := range pub.PublishBatch(ctx, batch[:k]) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		n += k
	}
	snk.waitEvents(b, b.N, time.Minute)
}
