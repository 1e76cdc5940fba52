package server

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstream/sockstream/internal/eio"
	"github.com/sockstream/sockstream/internal/siocodec"
)

// client is one Engine.IO session: one browser tab or Node client, over
// which it joins any number of namespaces. It is the session's eio.Handler:
// the engine calls OnMessage for each message, in arrival order, one at a
// time, so everything a client sends is handled in order by construction.
// A CONNECT is answered, and its socket registered, before the next
// message of the client is read.
type client struct {
	srv  *Server
	sess *eio.Session
	dec  *siocodec.Decoder // used only by OnMessage, one call at a time
	// partial is the size of the messages of the packet being decoded
	// (a binary packet's header and attachments); OnMessage only.
	partial int64
	// pending is the size of the events received and not yet handled,
	// bounded by Config.MaxPendingEventBytes.
	pending atomic.Int64

	mu sync.Mutex
	// The sockets, one per namespace joined: the first one, and the others
	// by namespace name (most clients join one namespace: no map then).
	first  *Socket
	others map[string]*Socket
	closed bool
	// connectTimer closes a session that joins no namespace within
	// Config.ConnectTimeout; stopped and dropped at the first connection.
	connectTimer *time.Timer
}

func (s *Server) accept(sess *eio.Session) eio.Handler {
	c := &client{
		srv:  s,
		sess: sess,
		dec:  siocodec.NewDecoder(siocodec.Limits{MaxAttachments: s.cfg.MaxAttachments, MaxAttachmentBytes: s.cfg.MaxAttachmentBytes}),
	}
	c.connectTimer = time.AfterFunc(s.cfg.ConnectTimeout, c.connectTimedOut)
	if o := s.engineObs.Load(); o != nil {
		o.opened()
	}
	return c
}

// engineObserver is told of every Engine.IO session opening and closing,
// with the engine's reason (the Admin UI's rawConnection and
// rawDisconnection); its functions must not block.
type engineObserver struct {
	opened func()
	closed func(reason string)
}

// socketLocked returns the socket of namespace nsp, or nil. Called holding
// c.mu.
func (c *client) socketLocked(nsp string) *Socket {
	if c.first != nil && c.first.nsp.name == nsp {
		return c.first
	}
	return c.others[nsp]
}

// socketsLocked lists the sockets. Called holding c.mu.
func (c *client) socketsLocked() []*Socket {
	out := make([]*Socket, 0, 1+len(c.others))
	if c.first != nil {
		out = append(out, c.first)
	}
	for _, s := range c.others {
		out = append(out, s)
	}
	return out
}

func (c *client) connectTimedOut() {
	c.mu.Lock()
	idle := c.first == nil && len(c.others) == 0 && !c.closed
	c.mu.Unlock()
	if idle {
		c.srv.log.Debug("no namespace joined in time: closing", "sid", c.sess.ID(), "timeout", c.srv.cfg.ConnectTimeout)
		c.sess.Close()
	}
}

// OnMessage implements eio.Handler: one Engine.IO message.
func (c *client) OnMessage(data []byte, binary bool) {
	var (
		p   *siocodec.Packet
		err error
	)
	c.partial += int64(len(data))
	switch {
	case c.srv.cfg.Parser == ParserMsgpack && binary:
		p, err = c.dec.Msgpack(data)
	case c.srv.cfg.Parser == ParserMsgpack:
		err = fmt.Errorf("%w: text message under the msgpack parser", siocodec.ErrInvalid)
	case binary:
		p, err = c.dec.Binary(data)
	default:
		p, err = c.dec.Text(data)
	}
	if err != nil {
		c.srv.log.Info("closing a connection: invalid packet", "sid", c.sess.ID(), "err", err)
		c.sess.Close()
		return
	}
	if p == nil {
		return // a binary packet waits for its attachments
	}
	size := c.partial
	c.partial = 0
	if p.Type == siocodec.Connect {
		c.connect(p)
		return
	}
	c.mu.Lock()
	sock := c.socketLocked(p.Nsp)
	c.mu.Unlock()
	if sock == nil {
		// Node closes the connection on a packet for a namespace the
		// client has not joined ("invalid state").
		c.srv.log.Info("closing a connection: packet for a namespace it has not joined", "sid", c.sess.ID(), "nsp", p.Nsp, "type", p.Type.String())
		c.sess.Close()
		return
	}
	switch p.Type {
	case siocodec.Event:
		if n := c.pending.Add(size); n > c.srv.cfg.MaxPendingEventBytes {
			c.pending.Add(-size)
			c.srv.log.Warn("closing a connection: its events wait for handlers beyond the bound",
				"sid", c.sess.ID(), "pending_bytes", n-size, "bound", c.srv.cfg.MaxPendingEventBytes)
			c.closeWith("event backlog")
			return
		}
		sock.onEvent(p, size)
	case siocodec.Ack:
		sock.onAck(p)
	case siocodec.Disconnect:
		sock.onclose("client namespace disconnect")
	default: // CONNECT_ERROR comes from servers only
		c.srv.log.Info("closing a connection: unexpected packet", "sid", c.sess.ID(), "type", p.Type.String())
		c.sess.Close()
	}
}

// OnClose implements eio.Handler: the session has ended; every socket of
// the client disconnects with the engine's reason.
func (c *client) OnClose(reason string) {
	if o := c.srv.engineObs.Load(); o != nil {
		o.closed(reason)
	}
	c.mu.Lock()
	c.closed = true
	c.stopConnectTimerLocked()
	socks := c.socketsLocked()
	c.mu.Unlock()
	for _, s := range socks {
		s.onclose(reason)
	}
}

// connect joins the client to a namespace: on the session's reading
// goroutine, so that the next packet is read once the socket is
// registered and its CONNECT answered.
func (c *client) connect(p *siocodec.Packet) {
	auth, _ := p.Data.(map[string]any)
	if auth == nil {
		auth = map[string]any{}
	}
	nsp := c.srv.lookup(p.Nsp, auth)
	if nsp == nil {
		c.writeConnectError(p.Nsp, "Invalid namespace", nil)
		return
	}
	// The connection is under way until connect returns: the socket is
	// registered then, or refused.
	defer nsp.release()
	c.mu.Lock()
	dup := c.socketLocked(p.Nsp) != nil
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	if dup {
		// Node closes the connection here too ("invalid state"); a second
		// CONNECT for a joined namespace is a client bug.
		c.srv.log.Info("closing a connection: second CONNECT for a namespace", "sid", c.sess.ID(), "nsp", p.Nsp)
		c.sess.Close()
		return
	}
	nsp.connect(c, auth)
}

func (c *client) writeConnectError(nsp, message string, data any) {
	payload := map[string]any{"message": message}
	if data != nil {
		payload["data"] = data
	}
	c.write(siocodec.ConnectError, nsp, nil, payload)
}

// write encodes one packet and queues it for the client.
func (c *client) write(t siocodec.Type, nsp string, id *uint64, data any) error {
	msgs, err := c.srv.encode(t, nsp, id, data)
	if err != nil {
		return err
	}
	return c.send(msgs)
}

// writeFlagged is write of an EVENT with the flags of Socket.Volatile and
// Socket.Compress (none: exactly write): with noCompress its messages go
// uncompressed over per-message deflate; a volatile one is dropped, counted
// and not sent, without error, when the transport cannot take it at once,
// as Node's client.writeToEngine drops it.
func (c *client) writeFlagged(nsp string, id *uint64, data any, f emitFlags) error {
	msgs, err := c.srv.encode(siocodec.Event, nsp, id, data)
	if err != nil {
		return err
	}
	if f.noCompress {
		for _, m := range msgs {
			m.DisableCompression()
		}
	}
	if !f.volatile {
		return c.send(msgs)
	}
	err = c.sess.SendVolatile(nil, msgs...)
	switch {
	case errors.Is(err, eio.ErrNotWritable):
		c.srv.volatileDropped(nsp, 1)
		return nil
	case err != nil && !errors.Is(err, eio.ErrClosed) && !errors.Is(err, eio.ErrSlowConsumer):
		c.srv.log.Warn("write to a client failed", "sid", c.sess.ID(), "err", err)
	}
	return err
}

// encode encodes one packet in the server's parser format (Config.Parser)
// as the Engine.IO messages that carry it.
func (s *Server) encode(t siocodec.Type, nsp string, id *uint64, data any) ([]*eio.Message, error) {
	if s.cfg.Parser == ParserMsgpack {
		b, err := siocodec.EncodeMsgpack(t, nsp, id, data)
		if err != nil {
			return nil, err
		}
		return []*eio.Message{eio.BinaryMessage(b)}, nil
	}
	enc, err := siocodec.Encode(t, nsp, id, data)
	if err != nil {
		return nil, err
	}
	return messages(enc), nil
}

func (c *client) send(msgs []*eio.Message) error {
	err := c.sess.Send(msgs...)
	if err != nil && !errors.Is(err, eio.ErrClosed) && !errors.Is(err, eio.ErrSlowConsumer) {
		c.srv.log.Warn("write to a client failed", "sid", c.sess.ID(), "err", err)
	}
	return err
}

// messages turns an encoded packet into Engine.IO messages: the header,
// then one binary message per attachment.
func messages(enc siocodec.Encoded) []*eio.Message {
	msgs := make([]*eio.Message, 1, 1+len(enc.Attachments))
	msgs[0] = eio.TextMessage(enc.Header)
	for _, a := range enc.Attachments {
		msgs = append(msgs, eio.BinaryMessage(a))
	}
	return msgs
}

// register records the socket of a namespace; false if the client is gone.
func (c *client) register(s *Socket) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	switch {
	case c.first == nil:
		c.first = s
	case c.others == nil:
		c.others = map[string]*Socket{s.nsp.name: s}
	default:
		c.others[s.nsp.name] = s
	}
	c.stopConnectTimerLocked()
	return true
}

// stopConnectTimerLocked stops the connect timer and drops it (an idle
// client keeps nothing it no longer needs). Called holding c.mu.
func (c *client) stopConnectTimerLocked() {
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
}

func (c *client) unregister(s *Socket) {
	c.mu.Lock()
	switch {
	case c.first == s:
		c.first = nil
	case c.others[s.nsp.name] == s:
		delete(c.others, s.nsp.name)
		if len(c.others) == 0 {
			c.others = nil
		}
	}
	c.mu.Unlock()
}

// closeWith disconnects every socket of the client with reason, then
// closes the session.
func (c *client) closeWith(reason string) {
	c.mu.Lock()
	socks := c.socketsLocked()
	c.mu.Unlock()
	for _, s := range socks {
		s.onclose(reason)
	}
	c.sess.Close()
}

// disconnectAll disconnects every socket of the client ("server namespace
// disconnect") and closes the session.
func (c *client) disconnectAll() {
	c.mu.Lock()
	socks := c.socketsLocked()
	c.mu.Unlock()
	for _, s := range socks {
		s.disconnect(true)
	}
	c.sess.Close()
}
