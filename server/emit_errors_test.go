package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/server"
)

// With Redis cut off and the publish buffer full, Broadcast.Emit returns an
// error wrapping adapter.ErrBufferFull instead of nil; the emits over
// pub/sub (with acks, server-side) fail with adapter.ErrUnavailable at
// once; local emits never fail.
func TestEmitReportsClusterRefusal(t *testing.T) {
	t.Parallel()
	const buffer = 5
	rs := redistest.StartStandalone(t)
	p := redistest.NewProxy(t, rs.Addr())
	tr, err := cluster.New(cluster.Options{
		URL:               "redis://" + p.Addr(),
		RequestTimeout:    2 * time.Second,
		PublishBufferSize: buffer,
		Logger:            quiet(),
		Registerer:        prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := adapter.New(tr, adapter.Config{Logger: quiet(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Logger: quiet()}, server.WithAdapter(b, tr.Ready, tr.Close))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	nsp := srv.Of("/")
	eventually(t, "transport ready", tr.Ready)
	if err := nsp.To("r").Emit("up"); err != nil {
		t.Fatalf("Emit with Redis up: %v", err)
	}

	p.Cut()
	eventually(t, "transport not ready", func() bool { return !tr.Ready() })
	accepted, refused := 0, 0
	for range 3 * buffer {
		err := nsp.To("r").Emit("m", "x")
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, adapter.ErrBufferFull):
			refused++
		default:
			t.Fatalf("Emit: %v, want nil or an error wrapping adapter.ErrBufferFull", err)
		}
	}
	if accepted > buffer || refused == 0 {
		t.Errorf("accepted %d, refused %d, with a buffer of %d", accepted, refused, buffer)
	}
	if err := nsp.Local().To("r").Emit("m"); err != nil {
		t.Errorf("local Emit: %v", err)
	}
	if err := nsp.Volatile().Emit("m"); err != nil {
		t.Errorf("volatile Emit: %v (dropped and counted, not an error)", err)
	}
	if err := nsp.ServerSideEmit("sse"); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("ServerSideEmit: %v, want an error wrapping adapter.ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := nsp.To("r").EmitWithAck(ctx, "ack"); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("EmitWithAck: %v, want an error wrapping adapter.ErrUnavailable", err)
	}
	if _, err := nsp.FetchSockets(ctx); !errors.Is(err, adapter.ErrUnavailable) {
		t.Errorf("FetchSockets: %v, want an error wrapping adapter.ErrUnavailable", err)
	}
}
