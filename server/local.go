package server

import (
	"errors"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/eio"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// The adapter's view of a namespace: adapter.Namespace. The adapter calls
// these from its own goroutines; none runs user code on the caller's
// goroutine (handlers are queued on the sockets' and the namespace's
// handler queues) and none calls back into a blocking method of the
// adapter.

// local is a Namespace as its adapter sees it (its methods would clash
// with the public ones of Namespace, such as ServerSideEmit).
type local Namespace

var _ adapter.Namespace = (*local)(nil)

func (l *local) ns() *Namespace { return (*Namespace)(l) }

// Name implements adapter.Namespace.
func (l *local) Name() string { return l.name }

// Deliver implements adapter.Namespace: the packet is encoded once, and
// the same Engine.IO messages (whose frames are built once too) are queued
// for every socket, their writes held until Flush.
func (l *local) Deliver(p *adapter.Packet, ids []string, flags adapter.Flags) {
	if len(ids) == 0 {
		return
	}
	msgs, err := l.encode(p, flags)
	if err != nil {
		l.srv.log.Warn("dropping a broadcast that cannot be encoded", "nsp", l.name, "err", err)
		return
	}
	dropped := 0
	socks := l.ns().socketsOf(ids)
	defer putSockets(socks)
	for _, s := range *socks {
		if flags.Volatile {
			// Node drops a volatile packet for a client whose transport is
			// busy (transport.writable false) rather than queue it.
			if errors.Is(s.client.sess.SendVolatile(&l.batch, msgs...), eio.ErrNotWritable) {
				dropped++
			}
			continue
		}
		_ = s.client.sendBatched(&l.batch, msgs)
	}
	if dropped > 0 {
		l.srv.volatileDropped(l.name, dropped)
	}
}

// DeliverWithAck implements adapter.Namespace.
func (l *local) DeliverWithAck(p *adapter.Packet, ids []string, flags adapter.Flags, ack func(args []any)) int {
	if len(ids) == 0 {
		return 0
	}
	if p.ID == nil {
		// Relayed from another node: ack ids are each node's own.
		id := l.ns().nextAckID()
		q := *p
		q.ID = &id
		p = &q
	}
	msgs, err := l.encode(p, flags)
	if err != nil {
		l.srv.log.Warn("dropping a broadcast that cannot be encoded", "nsp", l.name, "err", err)
		return 0
	}
	var timeout time.Duration
	if flags.TimeoutMs != nil {
		timeout = time.Duration(*flags.TimeoutMs) * time.Millisecond
	}
	count := 0
	socks := l.ns().socketsOf(ids)
	defer putSockets(socks)
	for _, s := range *socks {
		s.addAck(*p.ID, ack, timeout)
		if s.client.sendBatched(&l.batch, msgs) == nil {
			count++
		} else {
			s.dropAck(*p.ID)
		}
	}
	return count
}

// Flush implements adapter.Namespace: the writes Deliver and
// DeliverWithAck held start, one per connection however many packets it
// got since the last Flush.
func (l *local) Flush() { l.batch.Flush() }

// sendBatched is client.send through b (eio.Batch).
func (c *client) sendBatched(b *eio.Batch, msgs []*eio.Message) error {
	err := c.sess.SendBatched(b, msgs...)
	if err != nil && !errors.Is(err, eio.ErrClosed) && !errors.Is(err, eio.ErrSlowConsumer) {
		c.srv.log.Warn("write to a client failed", "sid", c.sess.ID(), "err", err)
	}
	return err
}

// encode encodes a broadcast once, in the server's parser format; with
// the compress flag false (Broadcast.Compress(false), or a Node node's
// compress(false)), its messages go uncompressed even to clients that
// negotiated per-message deflate.
func (l *local) encode(p *adapter.Packet, flags adapter.Flags) ([]*eio.Message, error) {
	msgs, err := l.srv.encode(siocodec.Type(p.Type), l.name, p.ID, p.Data)
	if err == nil && flags.Compress != nil && !*flags.Compress {
		for _, m := range msgs {
			m.DisableCompression()
		}
	}
	return msgs, err
}

// Disconnect implements adapter.Namespace.
func (l *local) Disconnect(ids []string, closeConn bool) {
	for _, id := range ids {
		if s := l.ns().socket(id); s != nil {
			s.Disconnect(closeConn)
		}
	}
}

// Describe implements adapter.Namespace.
func (l *local) Describe(ids []string) []adapter.SocketInfo {
	out := make([]adapter.SocketInfo, 0, len(ids))
	for _, id := range ids {
		s := l.ns().socket(id)
		if s == nil {
			continue
		}
		rooms := l.adapter.SocketRooms(id)
		if rooms == nil {
			rooms = []string{}
		}
		data := s.Data()
		if data == nil {
			// Node's socket.data starts as {}, and Node's code reading
			// another node's answer relies on it (admin-ui's instrument()
			// destructures it).
			data = map[string]any{}
		}
		out = append(out, adapter.SocketInfo{ID: id, Handshake: s.nodeHandshake(), Rooms: rooms, Data: data})
	}
	return out
}

// ServerSideEmit implements adapter.Namespace: the handlers run on the
// namespace's handler queue, in order.
func (l *local) ServerSideEmit(args []any, ack func(args []any)) {
	if len(args) == 0 {
		return
	}
	name, ok := args[0].(string)
	if !ok {
		return
	}
	e := &Event{Name: name, Args: args[1:], ack: ack}
	l.sse.push(func() {
		l.mu.Lock()
		hs := l.serverSide[name]
		l.mu.Unlock()
		for _, h := range hs {
			h(e)
		}
	})
}

// CloseConn implements adapter.Namespace.
func (l *local) CloseConn(id string) {
	if s := l.ns().socket(id); s != nil {
		s.client.sess.Close()
	}
}

// nodeHandshake is the socket's handshake as Node serializes it, for
// FetchSockets answers that Node nodes read too.
func (s *Socket) nodeHandshake() adapter.Handshake {
	eh := s.client.sess.Handshake()
	h := s.handshakeOf(eh)
	headers := make(map[string]any, len(h.Headers)+1)
	for k, v := range h.Headers {
		// Node's http module: lower-case names, repeated values joined,
		// set-cookie kept as an array.
		k = strings.ToLower(k)
		if k == "set-cookie" {
			headers[k] = v
			continue
		}
		headers[k] = strings.Join(v, ", ")
	}
	if _, ok := headers["host"]; !ok && eh.Host != "" {
		// net/http moves Host out of the header map; Node keeps it there.
		headers["host"] = eh.Host
	}
	query := make(map[string]any, len(h.Query))
	for k, v := range h.Query {
		if len(v) == 1 {
			query[k] = v[0]
		} else {
			query[k] = v
		}
	}
	addr := h.Address
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return adapter.Handshake{
		Headers: headers,
		Time:    h.Time.UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)"),
		Address: addr,
		Xdomain: h.Headers.Get("Origin") != "",
		Secure:  h.Secure,
		Issued:  h.Time.UnixMilli(),
		URL:     h.URL,
		Query:   query,
		Auth:    maps.Clone(h.Auth),
	}
}

// socketsOf returns the connected sockets of ids, looked up under one
// lock (a broadcast to a room of thousands took and released the
// namespace's lock once per recipient, against the other worker
// delivering), in a pooled slice to give back with putSockets.
func (n *Namespace) socketsOf(ids []string) *[]*Socket {
	sp := socketSlices.Get().(*[]*Socket)
	out := (*sp)[:0]
	n.mu.Lock()
	for _, id := range ids {
		if s := n.sockets[id]; s != nil {
			out = append(out, s)
		}
	}
	n.mu.Unlock()
	*sp = out
	return sp
}

// putSockets gives back a slice of socketsOf, unless it grew past what is
// worth keeping.
func putSockets(sp *[]*Socket) {
	if cap(*sp) > maxPooledSockets {
		return
	}
	clear(*sp)
	*sp = (*sp)[:0]
	socketSlices.Put(sp)
}

const maxPooledSockets = 16 << 10

var socketSlices = sync.Pool{New: func() any { return new([]*Socket) }}
