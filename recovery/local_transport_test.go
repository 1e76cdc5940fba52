package recovery

import (
	"context"
	"errors"
	"testing"

	"github.com/sockstream/sockstream/adapter"
)

func TestLocalTransport(t *testing.T) {
	log := NewMemoryLog(MemoryLogOptions{})
	tr := NewLocalTransport(log)
	ctx := context.Background()
	bc := func(volatile bool, id *uint64, reqID string) *adapter.Message {
		return &adapter.Message{UID: "u", Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
			Packet: adapter.Packet{Type: 2, Data: []any{"e"}, ID: id}, RequestID: reqID,
			Opts: adapter.Options{Rooms: []string{"r"}, Except: []string{}, Flags: adapter.Flags{Volatile: volatile}},
		}}
	}
	off, err := tr.Publish(ctx, bc(false, nil, ""))
	if err != nil || off == "" {
		t.Fatalf("Publish = %q, %v", off, err)
	}
	one := uint64(1)
	for name, msg := range map[string]*adapter.Message{
		"volatile":  bc(true, nil, ""),
		"ack id":    bc(false, &one, ""),
		"request":   bc(false, nil, "req"),
		"heartbeat": {UID: "u", Nsp: "/", Type: adapter.Heartbeat},
	} {
		if o, err := tr.Publish(ctx, msg); o != "" || err != nil {
			t.Errorf("%s: Publish = %q, %v; want no offset", name, o, err)
		}
	}
	if log.Len() != 1 {
		t.Errorf("log holds %d packets, want 1", log.Len())
	}
	if n, _ := tr.ServerCount(ctx, "/"); n != 1 || !tr.Ready() {
		t.Error("a single node, ready")
	}
	unsub, err := tr.Subscribe(ctx, "/", "u", func(*adapter.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	unsub()
	if err := tr.PublishResponse(ctx, "x", bc(false, nil, "")); err != nil {
		t.Error(err)
	}
	_ = tr.Close()
	if _, err := tr.Publish(ctx, bc(false, nil, "")); !errors.Is(err, adapter.ErrClosed) || tr.Ready() {
		t.Errorf("after Close: %v", err)
	}
}
