package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrConnectRefused is wrapped by the error of a dial the server answered
// with a CONNECT_ERROR packet.
var ErrConnectRefused = errors.New("connection refused by the server")

// ErrClosed is returned by the emits of a client whose connection is gone.
var ErrClosed = errors.New("client closed")

// dialer is shared by every client: small buffers because a run holds
// thousands of connections, and no compression, which neither reference
// server negotiates by default.
var dialer = &websocket.Dialer{
	HandshakeTimeout: 15 * time.Second,
	ReadBufferSize:   2048,
	WriteBufferSize:  2048,
	Proxy:            nil,
}

// client is a Socket.IO v4 client of the main namespace over a WebSocket
// (Engine.IO v4, no polling): the smallest thing that lets a run hold
// thousands of connections from one process while parsing what it receives
// with no allocation beyond the frame itself.
type client struct {
	conn *websocket.Conn

	wmu sync.Mutex // serializes writes: pongs, emits

	// SID and PID are the Socket.IO session id and, when the server has
	// connection state recovery on, the private id that restores it.
	SID, PID string

	onEvent func(frame []byte) // every "42" frame, on the read goroutine

	amu    sync.Mutex
	nextID uint64
	acks   map[uint64]chan []byte
	closed bool

	done chan struct{} // closed when the read loop ends
	err  error         // why it ended; read after done

	// lastPing is when the last ping came (unix ns), answered at once: a
	// "ping timeout" from the server then points at the server.
	lastPing atomic.Int64
}

// dialOptions are what a connection sends in its handshake.
type dialOptions struct {
	Room string
	// Auth is the CONNECT payload, such as {"pid": ..., "offset": ...} to
	// recover a session; nil sends none.
	Auth map[string]string
}

// wsURL turns a node's base URL (http://host:port) into the Engine.IO
// WebSocket endpoint with the room in the query.
func wsURL(base, room string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("node URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("node URL %q: scheme %q is not http(s) or ws(s)", base, u.Scheme)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/socket.io/"
	}
	q := u.Query()
	q.Set("EIO", "4")
	q.Set("transport", "websocket")
	if room != "" {
		q.Set("room", room)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dial opens a connection and joins the main namespace. onEvent receives
// every event frame ("42[...]") and must not keep it.
func dial(ctx context.Context, base string, o dialOptions, onEvent func([]byte)) (*client, error) {
	u, err := wsURL(base, o.Room)
	if err != nil {
		return nil, err
	}
	conn, resp, err := dialer.DialContext(ctx, u, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket %s: %s: %w", u, resp.Status, err)
		}
		return nil, fmt.Errorf("websocket %s: %w", u, err)
	}
	c := &client{conn: conn, onEvent: onEvent, acks: make(map[uint64]chan []byte), done: make(chan struct{})}
	if err := c.handshake(ctx, o.Auth); err != nil {
		_ = conn.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// handshake reads the Engine.IO open packet, sends the namespace CONNECT and
// waits for the server's answer, bounded by ctx.
func (c *client) handshake(ctx context.Context, auth map[string]string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetReadDeadline(dl)
		defer func() { _ = c.conn.SetReadDeadline(time.Time{}) }()
	}
	_, open, err := c.conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("engine.io open: %w", err)
	}
	if len(open) == 0 || open[0] != '0' {
		return fmt.Errorf("engine.io open: unexpected %q", truncate(open))
	}
	connect := []byte("40")
	if auth != nil {
		b, err := json.Marshal(auth)
		if err != nil {
			return fmt.Errorf("connect auth: %w", err)
		}
		connect = append(connect, b...)
	}
	if err := c.write(connect); err != nil {
		return fmt.Errorf("socket.io connect: %w", err)
	}
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("socket.io connect: %w", err)
		}
		switch {
		case bytes.Equal(msg, []byte("2")):
			if err := c.write([]byte("3")); err != nil {
				return fmt.Errorf("pong: %w", err)
			}
		case bytes.HasPrefix(msg, []byte("40")):
			var reply struct {
				SID string `json:"sid"`
				PID string `json:"pid"`
			}
			if err := json.Unmarshal(msg[2:], &reply); err != nil {
				return fmt.Errorf("socket.io connect reply %q: %w", truncate(msg), err)
			}
			c.SID, c.PID = reply.SID, reply.PID
			return nil
		case bytes.HasPrefix(msg, []byte("44")):
			return fmt.Errorf("%w: %s", ErrConnectRefused, truncate(msg[2:]))
		case bytes.HasPrefix(msg, []byte("42")) && c.onEvent != nil:
			// A recovered session's missed packets may come right after the
			// CONNECT reply; only a server that sends them before it would
			// reach here, and they count all the same.
			c.onEvent(msg)
		default:
			return fmt.Errorf("socket.io connect: unexpected %q", truncate(msg))
		}
	}
}

func (c *client) readLoop() {
	defer close(c.done)
	defer c.failAcks()
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			if lp := c.lastPing.Load(); lp > 0 {
				err = fmt.Errorf("%w (last ping answered %v before)", err, time.Since(time.Unix(0, lp)).Round(time.Millisecond))
			}
			c.err = err
			return
		}
		if typ != websocket.TextMessage || len(msg) == 0 {
			continue // no binary in this protocol use
		}
		switch msg[0] {
		case '2': // ping
			c.lastPing.Store(time.Now().UnixNano())
			if err := c.write([]byte("3")); err != nil {
				c.err = fmt.Errorf("pong: %w", err)
				_ = c.conn.Close()
				return
			}
		case '1': // engine close
			c.err = errors.New("server closed the engine.io session")
			return
		case '4':
			if len(msg) < 2 {
				continue
			}
			switch msg[1] {
			case '2':
				if c.onEvent != nil {
					c.onEvent(msg)
				}
			case '3':
				c.deliverAck(msg[2:])
			case '1':
				c.err = errors.New("server disconnected the socket")
				_ = c.conn.Close()
				return
			}
		}
	}
}

// deliverAck hands "<id>[args]" to the waiting EmitWithAck.
func (c *client) deliverAck(b []byte) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	id, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil {
		return
	}
	c.amu.Lock()
	ch := c.acks[id]
	delete(c.acks, id)
	c.amu.Unlock()
	if ch != nil {
		ch <- append([]byte(nil), b[i:]...)
	}
}

func (c *client) failAcks() {
	c.amu.Lock()
	defer c.amu.Unlock()
	c.closed = true
	for id, ch := range c.acks {
		close(ch)
		delete(c.acks, id)
	}
}

func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// emitRaw sends an event whose arguments are already JSON text ("[...]" after
// the event name), as "42[<name>,<args>]".
func (c *client) emitRaw(frame []byte) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	return c.write(frame)
}

// EmitWithAck sends event with args and returns the JSON array of the ack's
// arguments, or an error when ctx ends or the connection goes first.
func (c *client) EmitWithAck(ctx context.Context, event string, args ...any) (json.RawMessage, error) {
	payload, err := json.Marshal(append([]any{event}, args...))
	if err != nil {
		return nil, fmt.Errorf("emit %s: %w", event, err)
	}
	ch := make(chan []byte, 1)
	c.amu.Lock()
	if c.closed {
		c.amu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	id := c.nextID
	c.acks[id] = ch
	c.amu.Unlock()
	frame := append([]byte("42"+strconv.FormatUint(id, 10)), payload...)
	if err := c.write(frame); err != nil {
		return nil, fmt.Errorf("emit %s: %w", event, err)
	}
	select {
	case b, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("emit %s: %w", event, ErrClosed)
		}
		return b, nil
	case <-ctx.Done():
		c.amu.Lock()
		delete(c.acks, id)
		c.amu.Unlock()
		return nil, fmt.Errorf("emit %s: ack: %w", event, ctx.Err())
	}
}

// Close closes the connection politely (socket.io then engine.io close) and
// waits for the read loop.
func (c *client) Close() {
	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("41"))
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("1"))
	c.wmu.Unlock()
	_ = c.conn.Close()
	<-c.done
}

// Drop cuts the TCP connection without a word, as a network failure would:
// the server sees a transport close and, with recovery on, keeps the session.
func (c *client) Drop() {
	if tc, ok := c.conn.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.conn.Close()
	<-c.done
}

func truncate(b []byte) string {
	s := string(b)
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
