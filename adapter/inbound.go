package adapter

import (
	"context"
	"fmt"
	"sync"
)

// onMessage is the Transport handler (called on the transport's reader
// goroutine). It validates the message, keeps the peer table and the
// requests up to date, and queues the rest for the inbound tasks, so it
// never calls the Socket.IO layer. It blocks only to apply backpressure:
// see queueInbound.
func (a *NamespaceAdapter) onMessage(msg *Message) {
	if msg == nil {
		a.malformed(nil, "nil_message")
		return
	}
	if msg.UID == a.uid || msg.Nsp != a.name {
		return
	}
	if msg.UID == "" {
		a.malformed(msg, "missing_uid")
		return
	}
	if reason := validate(msg); reason != "" {
		a.malformed(msg, reason)
		return
	}
	a.touch(msg.UID, msg.Type)
	switch msg.Type {
	case InitialHeartbeat:
		// Let the newcomer learn about us without waiting a full interval.
		a.push(&outItem{msg: a.message(Heartbeat, nil)})
	case Heartbeat:
	case AdapterClose:
		a.peerGone(msg.UID, "close")
	case Broadcast, SocketsJoin, SocketsLeave, DisconnectSockets, FetchSockets:
		a.queueInbound(msg)
	case ServerSideEmit:
		a.sse.push(msg)
	case FetchSocketsResponse, ServerSideEmitResponse, BroadcastClientCount, BroadcastAck:
		a.onResponse(msg)
	}
}

// validate returns why msg cannot be used, or "".
func validate(msg *Message) string {
	switch msg.Type {
	case InitialHeartbeat, Heartbeat, AdapterClose:
		return ""
	case Broadcast:
		if d, ok := msg.Data.(*BroadcastData); !ok || d == nil {
			return "bad_data"
		}
	case SocketsJoin, SocketsLeave:
		if d, ok := msg.Data.(*SocketsJoinLeaveData); !ok || d == nil {
			return "bad_data"
		}
	case DisconnectSockets:
		if d, ok := msg.Data.(*DisconnectSocketsData); !ok || d == nil {
			return "bad_data"
		}
	case FetchSockets:
		d, ok := msg.Data.(*FetchSocketsData)
		if !ok || d == nil {
			return "bad_data"
		}
		if d.RequestID == "" {
			return "missing_request_id"
		}
	case ServerSideEmit:
		d, ok := msg.Data.(*ServerSideEmitData)
		if !ok || d == nil {
			return "bad_data"
		}
		if len(d.Packet) == 0 {
			return "empty_packet"
		}
		if _, ok := d.Packet[0].(string); !ok {
			return "bad_event_name"
		}
	case FetchSocketsResponse:
		d, ok := msg.Data.(*FetchSocketsResponseData)
		if !ok || d == nil {
			return "bad_data"
		}
		if d.RequestID == "" {
			return "missing_request_id"
		}
	case ServerSideEmitResponse, BroadcastAck:
		d, ok := msg.Data.(*ResponsePacketData)
		if !ok || d == nil {
			return "bad_data"
		}
		if d.RequestID == "" {
			return "missing_request_id"
		}
	case BroadcastClientCount:
		d, ok := msg.Data.(*BroadcastClientCountData)
		if !ok || d == nil {
			return "bad_data"
		}
		if d.RequestID == "" {
			return "missing_request_id"
		}
		if d.ClientCount < 0 {
			return "negative_client_count"
		}
	default:
		return "unknown_type"
	}
	return ""
}

func (a *NamespaceAdapter) malformed(msg *Message, reason string) {
	a.m.malformed.WithLabelValues(reason).Inc()
	if msg == nil {
		a.warnLimited("dropping malformed cluster message", "reason", reason)
		return
	}
	a.warnLimited("dropping malformed cluster message", "reason", reason,
		"type", msg.Type.String(), "from", msg.UID, "data_type", typeName(msg.Data))
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// queueInbound queues msg for the inbound task, within Config.InboundQueueSize
// (the messages queued plus the one being applied), per route:
//
//   - A message read from the stream (durable: it has an offset and is not
//     ephemeral: broadcasts without ack, socketsJoin/Leave,
//     disconnectSockets) waits for room, blocking the transport's handler
//     and so its stream reader: a node whose sockets cannot take the
//     traffic leaves the backlog in the stream, where the transport's lag
//     metrics see it, instead of in memory. The wait ends when the adapter
//     closes (the message is then dropped with everything still queued).
//   - A message that came over pub/sub (fetchSockets, broadcasts with
//     acks) never waits, so that the transport's pub/sub handling
//     (heartbeats, responses) is never held behind a slow namespace: it
//     may use as much room again beyond the bound, past which it is
//     dropped, counted and logged (its sender's request then times out
//     with this node's answer missing).
func (a *NamespaceAdapter) queueInbound(msg *Message) {
	limit := a.opts.InboundQueueSize
	if msg.Offset != "" && !msg.Ephemeral() {
		a.inbound.pushWait(a.ctx, msg, limit)
		return
	}
	if a.inbound.pushUnder(msg, 2*limit) {
		return
	}
	if a.ctx.Err() != nil {
		return // closing: nothing is applied any more
	}
	a.m.inboundDropped.WithLabelValues(msg.Type.String()).Inc()
	a.warnLimited("inbound queue full: dropping a request from a peer", "type", msg.Type.String(), "from", msg.UID,
		"queued", a.inbound.held(), "limit", 2*limit)
}

// drainStep is a run of the inbound or server-side-event task: it hands
// one take of q (at most maxBatch messages) to handle, in order, each
// message staying counted against q's bound until handled, then runs
// after, if not nil: for the inbound queue, Namespace.Flush, so that the
// broadcasts of one take are written together (a node with a backlog
// writes each connection once per take, not once per broadcast). Once the
// adapter closes, it handles nothing more (Close discards the rest).
func (a *NamespaceAdapter) drainStep(q *fifo[*Message], handle func(*Message), after func()) bool {
	msgs := q.takeHeld(maxBatch)
	if len(msgs) == 0 {
		return false
	}
	for i, msg := range msgs {
		if a.ctx.Err() != nil {
			break
		}
		handle(msg)
		msgs[i] = nil
		q.release()
	}
	if after != nil {
		after()
	}
	return a.ctx.Err() == nil && q.len() > 0
}

func (a *NamespaceAdapter) apply(msg *Message) {
	defer a.recoverPanic("applying " + msg.Type.String())
	switch msg.Type {
	case Broadcast:
		d := msg.Data.(*BroadcastData)
		packet := localPacket(d.Packet, a.name)
		// Counted first: whoever sees the delivery sees the count.
		a.m.broadcastsRecv.Inc()
		if d.RequestID == "" {
			a.deliver(packet, d.Opts, msg.Offset, pathIn)
			return
		}
		// The sender's ack id, if any, is its own: DeliverWithAck takes one
		// of this namespace's.
		packet.ID = nil
		from, id := msg.UID, d.RequestID
		n := a.nsp.DeliverWithAck(packet, a.index.selectIDs(d.Opts), d.Opts.Flags, func(args []any) {
			a.respond(from, BroadcastAck, &ResponsePacketData{RequestID: id, Packet: firstArg(args)})
		})
		a.respond(from, BroadcastClientCount, &BroadcastClientCountData{RequestID: id, ClientCount: n})
	case SocketsJoin:
		d := msg.Data.(*SocketsJoinLeaveData)
		for _, id := range a.index.selectIDs(d.Opts) {
			a.index.addAll(id, d.Rooms)
		}
	case SocketsLeave:
		d := msg.Data.(*SocketsJoinLeaveData)
		a.delSockets(d.Opts, d.Rooms)
	case DisconnectSockets:
		d := msg.Data.(*DisconnectSocketsData)
		a.disconnect(d.Opts, d.Close)
	case FetchSockets:
		d := msg.Data.(*FetchSocketsData)
		a.respond(msg.UID, FetchSocketsResponse, &FetchSocketsResponseData{RequestID: d.RequestID, Sockets: a.describe(d.Opts)})
	}
}

// The other nodes' server-side events are handed to the namespace in
// order by a task of their own (sseTask): a slow Namespace.ServerSideEmit
// delays other server-side events, not broadcasts.

func (a *NamespaceAdapter) serverSideEmit(msg *Message) {
	defer a.recoverPanic("server-side emit")
	d := msg.Data.(*ServerSideEmitData)
	args := append([]any(nil), d.Packet...)
	if d.RequestID == "" {
		a.nsp.ServerSideEmit(args, nil)
		return
	}
	from, id := msg.UID, d.RequestID
	var once sync.Once
	a.nsp.ServerSideEmit(args, func(reply []any) {
		// Only one answer per node, as in Node.
		once.Do(func() {
			a.respond(from, ServerSideEmitResponse, &ResponsePacketData{RequestID: id, Packet: firstArg(reply)})
		})
	})
}

// respond publishes a response to the node whose adapter has uid to, on a
// goroutine of its own (responses need no order).
func (a *NamespaceAdapter) respond(to string, t MessageType, data any) {
	msg := a.message(t, data)
	a.spawn(func() {
		ctx, cancel := context.WithTimeout(a.ctx, a.opts.RequestTimeout)
		defer cancel()
		if err := a.transport.PublishResponse(ctx, to, msg); err != nil {
			a.m.publishErrors.WithLabelValues(t.String()).Inc()
			a.warnLimited("publishing a response failed", "type", t.String(), "to", to, "err", err)
		}
	})
}
