package adapter_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
)

// exampleNamespace is the smallest adapter.Namespace: it prints what it
// is asked to write. The Socket.IO layer's Namespace writes to its sockets.
type exampleNamespace struct {
	node    string
	written chan string
}

func (n *exampleNamespace) Name() string { return "/" }
func (n *exampleNamespace) Deliver(p *adapter.Packet, ids []string, _ adapter.Flags) {
	n.written <- fmt.Sprintf("%s wrote %v to %v", n.node, p.Data, ids)
}
func (n *exampleNamespace) DeliverWithAck(p *adapter.Packet, ids []string, f adapter.Flags, _ func([]any)) int {
	n.Deliver(p, ids, f)
	return len(ids)
}
func (n *exampleNamespace) Disconnect([]string, bool)              {}
func (n *exampleNamespace) Describe([]string) []adapter.SocketInfo { return nil }
func (n *exampleNamespace) ServerSideEmit([]any, func([]any))      {}
func (n *exampleNamespace) CloseConn(string)                       {}
func (n *exampleNamespace) Flush()                                 {}

// Two nodes sharing one in-process transport hub form a cluster; with
// package cluster's Transport in place of the hub, they would share a
// Redis. The Socket.IO layer calls Builder.New for each namespace, keeps
// the room index up to date (AddAll, Del, DelAll) and broadcasts through
// the adapter.
func ExampleNew() {
	hub := adaptertest.NewHub()
	written := make(chan string, 4)
	var nodes []*adapter.NamespaceAdapter
	for i := range 2 {
		tr := hub.NewTransport()
		defer tr.Close()
		b, err := adapter.New(tr, adapter.Config{Registerer: prometheus.NewRegistry()})
		if err != nil {
			log.Fatal(err)
		}
		a := b.New(&exampleNamespace{node: fmt.Sprint("node ", i), written: written})
		defer a.Close()
		nodes = append(nodes, a)
	}
	// Each namespace adapter subscribes in the background as it starts;
	// give them a moment before counting.
	for deadline := time.Now().Add(5 * time.Second); nodes[0].ServerCount() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("servers in the cluster:", nodes[0].ServerCount())

	nodes[1].AddAll("socket-1", []string{"socket-1", "news"})
	err := nodes[0].Broadcast(&adapter.Packet{Type: 2, Data: []any{"headline", "hello"}}, adapter.Options{Rooms: []string{"news"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-written)
	// Output:
	// servers in the cluster: 2
	// node 1 wrote [headline hello] to [socket-1]
}

// Offsets order numerically, not as strings.
func ExampleParseOffset() {
	a, _ := adapter.ParseOffset("999-5")
	b, _ := adapter.ParseOffset("1000-0")
	fmt.Println(a.Compare(b), a.Next())
	_, err := adapter.ParseOffset("1000")
	fmt.Println(errors.Is(err, adapter.ErrInvalidOffset))
	// Output:
	// -1 999-6
	// true
}
