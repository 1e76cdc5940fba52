package server

import (
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// observed is a namespace as its adapter sees it (local), with each
// delivery told to the OnAnyOutgoing handlers of its recipients, as Node's
// adapter calls notifyOutgoingListeners for each socket a broadcast
// reaches. Like local's methods, it never runs user code on the adapter's
// goroutine: the handlers are queued on the sockets' handler goroutines.
type observed struct{ *local }

var _ adapter.Namespace = observed{}

// Deliver implements adapter.Namespace.
func (o observed) Deliver(p *adapter.Packet, ids []string, flags adapter.Flags) {
	o.local.Deliver(p, ids, flags)
	o.ns().notifyDelivered(p, ids)
}

// DeliverWithAck implements adapter.Namespace.
func (o observed) DeliverWithAck(p *adapter.Packet, ids []string, flags adapter.Flags, ack func(args []any)) int {
	n := o.local.DeliverWithAck(p, ids, flags, ack)
	o.ns().notifyDelivered(p, ids)
	return n
}

// notifyDelivered queues the outgoing handlers of the sockets ids for the
// event p; nothing to do, and no lookup, when no socket of the namespace
// has any.
func (n *Namespace) notifyDelivered(p *adapter.Packet, ids []string) {
	if n.outgoing.Load() <= 0 {
		return
	}
	if t := siocodec.Type(p.Type); t != siocodec.Event && t != siocodec.BinaryEvent {
		return
	}
	data := p.Data
	for _, id := range ids {
		if s := n.socket(id); s != nil {
			s.notifyOutgoing(data)
		}
	}
}
