package recovery

import (
	"context"
	"errors"
	"testing"
	"time"

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

// Without a log (a single node without recovery): every publication
// succeeds, with no offset, until Close.
func TestLocalTransportNilLog(t *testing.T) {
	tr := NewLocalTransport(nil)
	ctx := context.Background()
	msg := &adapter.Message{UID: "u", Nsp: "/", Type: adapter.Broadcast, Data: &adapter.BroadcastData{
		Packet: adapter.Packet{Type: 2, Data: []any{"e"}},
		Opts:   adapter.Options{Rooms: []string{}, Except: []string{}},
	}}
	for _, m := range []*adapter.Message{msg, {UID: "u", Nsp: "/", Type: adapter.Heartbeat}} {
		if off, err := tr.Publish(ctx, m); off != "" || err != nil {
			t.Errorf("Publish(%s) = %q, %v; want no offset, no error", m.Type, off, err)
		}
	}
	if n, err := tr.ServerCount(ctx, "/"); n != 1 || err != nil || !tr.Ready() {
		t.Errorf("ServerCount = %d, %v; Ready %v", n, err, tr.Ready())
	}
	unsub, err := tr.Subscribe(ctx, "/", "u", func(*adapter.Message) {})
	if err != nil {
		t.Fatal(err)
	}
	unsub()
	_ = tr.Close()
	if _, err := tr.Publish(ctx, msg); !errors.Is(err, adapter.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// The adapter over a LocalTransport without log: a single node's
// broadcasts reach its sockets, without offsets.
func TestLocalTransportNilLogAdapter(t *testing.T) {
	b, err := adapter.New(NewLocalTransport(nil), adapter.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ns := &localNS{got: make(chan []any, 1)}
	a := b.New(ns)
	defer a.Close()
	a.AddAll("s1", []string{"s1"})
	if err := a.Broadcast(&adapter.Packet{Type: 2, Data: []any{"hi", 1.0}}, adapter.Options{}); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-ns.got:
		if len(data) != 2 || data[0] != "hi" {
			t.Errorf("delivered %v, want [hi 1] without offset", data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	if n := a.ServerCount(); n != 1 {
		t.Errorf("ServerCount %d", n)
	}
}

// localNS is a minimal adapter.Namespace: it reports what Deliver gets.
type localNS struct{ got chan []any }

func (n *localNS) Name() string { return "/" }
func (n *localNS) Deliver(p *adapter.Packet, ids []string, _ adapter.Flags) {
	if len(ids) == 1 && ids[0] == "s1" {
		n.got <- append([]any(nil), p.Data...)
	}
}
func (n *localNS) DeliverWithAck(*adapter.Packet, []string, adapter.Flags, func([]any)) int {
	return 0
}
func (n *localNS) Disconnect([]string, bool)              {}
func (n *localNS) Describe([]string) []adapter.SocketInfo { return nil }
func (n *localNS) ServerSideEmit([]any, func([]any))      {}
func (n *localNS) CloseConn(string)                       {}
func (n *localNS) Flush()                                 {}
