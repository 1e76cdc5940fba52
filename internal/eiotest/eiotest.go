package eiotest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Open is the payload of the Engine.IO OPEN packet (the handshake).
type Open struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
}

// ParseOpen decodes an OPEN packet ("0{...}") and checks that it has exactly
// the fields of the protocol.
func ParseOpen(packet string) (Open, error) {
	var o Open
	if !strings.HasPrefix(packet, "0") {
		return o, fmt.Errorf("eiotest: not an OPEN packet: %q", packet)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(packet[1:]), &fields); err != nil {
		return o, fmt.Errorf("eiotest: OPEN payload: %w", err)
	}
	for _, k := range []string{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"} {
		if _, ok := fields[k]; !ok {
			return o, fmt.Errorf("eiotest: OPEN payload %s lacks %q", packet[1:], k)
		}
	}
	if len(fields) != 5 {
		return o, fmt.Errorf("eiotest: OPEN payload %s has fields beyond the protocol's five", packet[1:])
	}
	if err := json.Unmarshal([]byte(packet[1:]), &o); err != nil {
		return o, fmt.Errorf("eiotest: OPEN payload: %w", err)
	}
	return o, nil
}

// Response is an HTTP answer of the server.
type Response struct {
	Status int
	Body   string
}

// Poller speaks HTTP long-polling to the Engine.IO endpoint at URL (such as
// "http://127.0.0.1:3000/engine.io/").
type Poller struct {
	URL    string
	Client *http.Client // http.DefaultClient if nil
	SID    string       // set by Handshake
}

// Handshake opens a session ("GET ?EIO=4&transport=polling") and records its
// sid.
func (p *Poller) Handshake(ctx context.Context) (Open, error) {
	r, err := p.Do(ctx, http.MethodGet, "EIO=4&transport=polling", nil)
	if err != nil {
		return Open{}, err
	}
	if r.Status != http.StatusOK {
		return Open{}, fmt.Errorf("eiotest: handshake answered %d %q", r.Status, r.Body)
	}
	o, err := ParseOpen(r.Body)
	if err != nil {
		return o, err
	}
	p.SID = o.SID
	return o, nil
}

// Get is one poll of the session.
func (p *Poller) Get(ctx context.Context) (Response, error) {
	return p.Do(ctx, http.MethodGet, p.sessionQuery(), nil)
}

// Post sends payload (packets joined by "\x1e") to the session.
func (p *Poller) Post(ctx context.Context, payload string) (Response, error) {
	return p.Do(ctx, http.MethodPost, p.sessionQuery(), strings.NewReader(payload))
}

// PostReader sends a body read from r; a reader of unknown length is sent
// chunked, without Content-Length.
func (p *Poller) PostReader(ctx context.Context, r io.Reader) (Response, error) {
	return p.Do(ctx, http.MethodPost, p.sessionQuery(), r)
}

func (p *Poller) sessionQuery() string {
	return "EIO=4&transport=polling&sid=" + url.QueryEscape(p.SID)
}

// Do sends one request with the given method and raw query.
func (p *Poller) Do(ctx context.Context, method, query string, body io.Reader) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.URL+"?"+query, body)
	if err != nil {
		return Response{}, fmt.Errorf("eiotest: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("eiotest: %s %s: %w", method, query, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, fmt.Errorf("eiotest: read %s %s: %w", method, query, err)
	}
	return Response{Status: res.StatusCode, Body: string(b)}, nil
}

// Frame is one WebSocket message.
type Frame struct {
	Binary bool
	Data   []byte
}

// String is the frame as the suites print it: text as is, binary as bytes.
func (f Frame) String() string {
	if f.Binary {
		return fmt.Sprintf("binary%v", f.Data)
	}
	return string(f.Data)
}

// ErrClosed is returned by WS.Read once the server has closed the connection.
var ErrClosed = errors.New("eiotest: websocket closed")

// WS is a raw WebSocket connection to an Engine.IO endpoint.
type WS struct {
	conn *websocket.Conn
}

// DialWS opens "ws://…?EIO=4&transport=websocket" on the endpoint at
// httpURL, joining the session sid if not empty (an upgrade).
func DialWS(ctx context.Context, httpURL, sid string) (*WS, error) {
	u := "ws" + strings.TrimPrefix(httpURL, "http") + "?EIO=4&transport=websocket"
	if sid != "" {
		u += "&sid=" + url.QueryEscape(sid)
	}
	conn, res, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("eiotest: dial %s: %w", u, err)
	}
	return &WS{conn: conn}, nil
}

// Send writes one text frame.
func (w *WS) Send(text string) error {
	if err := w.conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		return fmt.Errorf("eiotest: send %q: %w", text, err)
	}
	return nil
}

// SendBinary writes one binary frame.
func (w *WS) SendBinary(b []byte) error {
	if err := w.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return fmt.Errorf("eiotest: send binary: %w", err)
	}
	return nil
}

// Read returns the next frame, or ErrClosed (wrapped) when the server closed
// the connection. It gives up when ctx ends; the connection is then unusable.
func (w *WS) Read(ctx context.Context) (Frame, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	_ = w.conn.SetReadDeadline(deadline)
	mt, b, err := w.conn.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) {
			return Frame{}, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return Frame{}, fmt.Errorf("eiotest: read: %w", err)
	}
	return Frame{Binary: mt == websocket.BinaryMessage, Data: b}, nil
}

// ReadText returns the next frame that is not a PING ("2"), which it answers
// with a PONG, failing if that frame is binary.
func (w *WS) ReadText(ctx context.Context) (string, error) {
	for {
		f, err := w.Read(ctx)
		if err != nil {
			return "", err
		}
		if f.Binary {
			return "", fmt.Errorf("eiotest: got %s, want a text frame", f)
		}
		if string(f.Data) == "2" {
			if err := w.Send("3"); err != nil {
				return "", err
			}
			continue
		}
		return string(f.Data), nil
	}
}

// WaitClosed reads until the server closes the connection, failing on any
// frame other than a PING or NOOP, or when ctx ends first.
func (w *WS) WaitClosed(ctx context.Context) error {
	for {
		f, err := w.Read(ctx)
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if s := f.String(); s != "2" && s != "6" {
			return fmt.Errorf("eiotest: got %q while waiting for the close", s)
		}
	}
}

// Close closes the connection without the closing handshake.
func (w *WS) Close() error { return w.conn.Close() }
