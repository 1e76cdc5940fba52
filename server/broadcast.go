package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// Broadcast selects sockets of a namespace, cluster-wide, and acts on them.
// Each method returns a new Broadcast, so a partial selection can be reused;
// a Broadcast is safe for concurrent use.
type Broadcast struct {
	nsp *Namespace
	sel adapter.Selection
}

func (b *Broadcast) clone() *Broadcast {
	c := *b
	return &c
}

// To narrows the selection to sockets in any of rooms (added to the rooms of
// earlier To calls).
func (b *Broadcast) To(rooms ...string) *Broadcast {
	c := b.clone()
	c.sel = c.sel.To(rooms...)
	return c
}

// In is To.
func (b *Broadcast) In(rooms ...string) *Broadcast { return b.To(rooms...) }

// Except leaves out the sockets in any of rooms.
func (b *Broadcast) Except(rooms ...string) *Broadcast {
	c := b.clone()
	c.sel = c.sel.Except(rooms...)
	return c
}

// Local restricts the selection to this node.
func (b *Broadcast) Local() *Broadcast {
	c := b.clone()
	c.sel = c.sel.WithFlags(func(f *adapter.Flags) { f.Local = true })
	return c
}

// Volatile sends without buffering: clients not ready to receive miss it,
// and it is never replayed by connection state recovery.
func (b *Broadcast) Volatile() *Broadcast {
	c := b.clone()
	c.sel = c.sel.WithFlags(func(f *adapter.Flags) { f.Volatile = true })
	return c
}

// Compress sets whether the packets may be compressed: with false, they
// go uncompressed even to clients that negotiated WebSocket per-message
// deflate (Config.PerMessageDeflate), as Node's compress(false). true, the
// default, compresses those of at least
// Config.PerMessageDeflateThreshold bytes when the client negotiated it.
// The flag travels with the broadcast to the other nodes.
func (b *Broadcast) Compress(on bool) *Broadcast {
	c := b.clone()
	c.sel = c.sel.WithFlags(func(f *adapter.Flags) { f.Compress = &on })
	return c
}

// opts is the selection as the adapter takes it.
func (b *Broadcast) opts() adapter.Options { return b.sel.Options() }

// Emit sends an event to the selected sockets.
//
// It returns once the cluster took the event. nil means the other servers
// will get it: Redis wrote it to the stream, or, while Redis is
// unreachable, it waits in the transport's bounded publish buffer and is
// written when Redis is back (unless the server shuts down first). An
// error means the other servers will not get it; it wraps the adapter's
// reason, for errors.Is: adapter.ErrBufferFull (Redis unreachable and the
// buffer full), adapter.ErrClosed (the server is shutting down, or the
// namespace was removed as empty: Config.CleanupEmptyChildNamespaces). The
// sockets of this server get the event either way, as in Node. A Local or
// Volatile emit does not wait for the cluster and returns nil (a volatile
// event the cluster cannot take is dropped and counted); a single server
// without Redis never fails but after Shutdown.
func (b *Broadcast) Emit(event string, args ...any) error {
	if err := checkEventName(event); err != nil {
		return err
	}
	data := append([]any{event}, args...)
	var errs []error
	for _, n := range b.nsp.targets() {
		p := &adapter.Packet{Type: int(siocodec.Event), Data: data}
		if err := b.nsp.gone(n, n.adapter.Broadcast(p, b.opts())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("broadcast %q: %w", event, err)
	}
	return nil
}

// EmitWithAck sends an event to the selected sockets and returns their
// responses: the arguments of every client's ack, one after the other (one
// value per client when each acks with one value, as in Node). ctx must have
// a deadline: it is the ack timeout. When some clients do not answer in time
// it returns the responses it got and an error wrapping ErrAckTimeout. When
// the cluster cannot take the event (Redis unreachable:
// adapter.ErrUnavailable; adapter.ErrClosed after Shutdown or on a
// namespace removed as empty) it returns at
// once with that error.
func (b *Broadcast) EmitWithAck(ctx context.Context, event string, args ...any) ([]any, error) {
	if err := checkEventName(event); err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, fmt.Errorf("broadcast %q with ack: ctx has no deadline", event)
	}
	timeoutMs := max(time.Until(dl), time.Millisecond).Milliseconds()
	c := &ackCollector{done: make(chan struct{}), expectedServers: -1}
	data := append([]any{event}, args...)
	servers := 0
	for _, n := range b.nsp.targets() {
		id := n.nextAckID()
		opts := b.opts()
		opts.Flags.TimeoutMs = &timeoutMs
		p := &adapter.Packet{Type: int(siocodec.Event), Data: data, ID: &id}
		if err := n.adapter.BroadcastWithAck(p, opts, c.clientCount, c.response); err != nil {
			if b.nsp.gone(n, err) == nil {
				continue // removed meanwhile: none of its sockets to wait for
			}
			return nil, fmt.Errorf("broadcast %q with ack: %w", event, err)
		}
		if b.sel.Flags().Local {
			servers++
		} else {
			servers += n.adapter.ServerCount()
		}
	}
	c.setExpectedServers(servers)

	var err error
	select {
	case <-c.done:
	case <-ctx.Done():
		err = ackContextError("broadcast", event, ctx.Err())
	}
	all, complete := c.result()
	if !complete {
		return all, err
	}
	return all, nil
}

// ackCollector gathers the answers of a broadcast with ack: it is complete
// when every server has said how many clients it reached and that many
// clients answered.
type ackCollector struct {
	mu              sync.Mutex
	responses       []any
	answered        int
	expectedClients int
	servers         int
	expectedServers int // -1 until known
	closed          bool
	done            chan struct{}
}

func (c *ackCollector) clientCount(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expectedClients += n
	c.servers++
	c.check()
}

func (c *ackCollector) response(args []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.responses = append(c.responses, args...)
	c.answered++
	c.check()
}

func (c *ackCollector) setExpectedServers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expectedServers = n
	c.check()
}

// check closes done when complete; c.mu is held.
func (c *ackCollector) check() {
	if !c.closed && c.expectedServers >= 0 && c.servers >= c.expectedServers && c.answered >= c.expectedClients {
		c.closed = true
		close(c.done)
	}
}

// result returns the responses so far and whether they are complete, and
// stops collecting.
func (c *ackCollector) result() ([]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	complete := c.closed
	c.closed = true
	return c.responses, complete
}

// FetchSockets returns the selected sockets, cluster-wide.
func (b *Broadcast) FetchSockets(ctx context.Context) ([]*RemoteSocket, error) {
	var out []*RemoteSocket
	var errs []error
	for _, n := range b.nsp.targets() {
		infos, err := n.adapter.FetchSockets(ctx, b.opts())
		if err = b.nsp.gone(n, err); err != nil {
			errs = append(errs, err)
		}
		for _, info := range infos {
			out = append(out, &RemoteSocket{nsp: n, info: info})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fetch sockets: %w", err)
	}
	return out, nil
}

// SocketsJoin makes the selected sockets join rooms. It returns nothing:
// when the cluster cannot take the operation (see Emit), the sockets of
// this server still join, the other servers' do not, and the failure is
// logged and counted (sockstream_adapter_publish_errors_total). The same
// holds for SocketsLeave and DisconnectSockets.
func (b *Broadcast) SocketsJoin(rooms ...string) {
	for _, n := range b.nsp.targets() {
		b.report("sockets join", b.nsp.gone(n, n.adapter.AddSockets(b.opts(), rooms)))
	}
}

// SocketsLeave makes the selected sockets leave rooms.
func (b *Broadcast) SocketsLeave(rooms ...string) {
	for _, n := range b.nsp.targets() {
		b.report("sockets leave", b.nsp.gone(n, n.adapter.DelSockets(b.opts(), rooms)))
	}
}

// DisconnectSockets disconnects the selected sockets; with closeConn their
// connections are closed too.
func (b *Broadcast) DisconnectSockets(closeConn bool) {
	for _, n := range b.nsp.targets() {
		b.report("disconnect sockets", b.nsp.gone(n, n.adapter.DisconnectSockets(b.opts(), closeConn)))
	}
}

// report logs a refusal at Debug: the adapter has counted it and logs
// refusals at most once a second, and an outage must not turn every call
// into a warning.
func (b *Broadcast) report(op string, err error) {
	if err != nil {
		b.nsp.srv.log.Debug("sockstream: "+op+" not published to the cluster", "nsp", b.nsp.name, "err", err)
	}
}

// RemoteSocket is a socket returned by FetchSockets, on this node or another.
type RemoteSocket struct {
	nsp  *Namespace
	info adapter.SocketInfo
}

// ID is the socket's id.
func (r *RemoteSocket) ID() string { return r.info.ID }

// Rooms lists the socket's rooms.
func (r *RemoteSocket) Rooms() []string { return r.info.Rooms }

// Data is the socket's data (see Socket.SetData).
func (r *RemoteSocket) Data() any { return r.info.Data }

// Handshake is the socket's handshake.
func (r *RemoteSocket) Handshake() Handshake {
	h := r.info.Handshake
	hs := Handshake{
		Headers: http.Header{},
		Query:   url.Values{},
		Auth:    h.Auth,
		Address: h.Address,
		Secure:  h.Secure,
		URL:     h.URL,
		Time:    time.UnixMilli(h.Issued),
	}
	if hs.Auth == nil {
		hs.Auth = map[string]any{}
	}
	for k, v := range h.Headers {
		switch t := v.(type) {
		case string:
			hs.Headers.Add(k, t)
		case []any:
			for _, x := range t {
				hs.Headers.Add(k, fmt.Sprint(x))
			}
		case []string:
			for _, x := range t {
				hs.Headers.Add(k, x)
			}
		}
	}
	for k, v := range h.Query {
		switch t := v.(type) {
		case string:
			hs.Query.Add(k, t)
		case []any:
			for _, x := range t {
				hs.Query.Add(k, fmt.Sprint(x))
			}
		case []string:
			for _, x := range t {
				hs.Query.Add(k, x)
			}
		}
	}
	return hs
}

func (r *RemoteSocket) only() *Broadcast {
	return &Broadcast{nsp: r.nsp, sel: adapter.Selection{}.To(r.info.ID)}
}

// Emit sends an event to the socket, wherever it is.
func (r *RemoteSocket) Emit(event string, args ...any) error {
	return r.only().Emit(event, args...)
}

// Join makes the socket join rooms.
func (r *RemoteSocket) Join(rooms ...string) { r.only().SocketsJoin(rooms...) }

// Leave makes the socket leave rooms.
func (r *RemoteSocket) Leave(rooms ...string) { r.only().SocketsLeave(rooms...) }

// Disconnect disconnects the socket.
func (r *RemoteSocket) Disconnect(closeConn bool) { r.only().DisconnectSockets(closeConn) }
