package eio

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Transport names, as in the "transport" query parameter.
const (
	Polling   = "polling"
	WebSocket = "websocket"
)

// Options configure a Server. Every zero field takes its default.
type Options struct {
	// PingInterval is how long after the open packet, or after the client's
	// last PONG, the server sends a PING. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long the server waits for the PONG answering a
	// PING before it closes the session ("ping timeout"). Default 20s.
	PingTimeout time.Duration
	// UpgradeTimeout bounds an upgrade from polling to WebSocket: a probing
	// WebSocket that has not completed the upgrade ("5") by then is closed
	// and the session goes on over polling. Default 10s.
	UpgradeTimeout time.Duration
	// MaxPayload is the largest message (WebSocket, after reassembly of
	// fragments, the Engine.IO type byte included) and the largest POST body
	// (polling) a client may send. Default 1,000,000 bytes.
	MaxPayload int64
	// Transports are the transports clients may use: "polling",
	// "websocket". Default both.
	Transports []string
	// DisableUpgrades stops polling sessions from upgrading to WebSocket:
	// the handshake advertises no upgrade and upgrade requests get 400.
	DisableUpgrades bool
	// MaxBufferedBytes bounds the payload bytes queued for one session and
	// not yet written (the batch being written included). A Send that
	// would pass it closes the session with reason "slow consumer", logs a
	// Warn line (sid, queued bytes) and increments Metrics.SlowConsumers.
	// A broadcast's frame is shared by its recipients, so the memory this
	// bounds per session is less than the figure: it bounds the backlog a
	// client may accumulate, not only memory. Default 16 MiB.
	MaxBufferedBytes int
	// WriteTimeout bounds each write to a client's connection (one flush of
	// the WebSocket queue, one polling response); past it the session is
	// closed ("transport error"). A WebSocket write gets between
	// WriteTimeout and 5/4 of it: the deadline is moved only when less than
	// WriteTimeout remains. It also bounds how long a polling
	// session closed by Session.Close waits for the GET that carries its
	// last packets. Default 10s.
	WriteTimeout time.Duration
	// ReadTimeout bounds the reading of a polling POST's body, from the
	// moment the engine starts reading it: a body that has not arrived by
	// then is cut (400 and the connection closed, the session closed with
	// "transport error"), whatever the http.Server's own ReadTimeout. It
	// does not apply to what must outlive it: net/http lifts the read
	// deadline once a request's body is read, so a long-polling GET may
	// wait up to PingInterval, and a WebSocket's deadline is cleared after
	// the hijack. Default 30s.
	ReadTimeout time.Duration
	// AllowOrigin reports whether a cross-origin page (its Origin header)
	// may use the polling transport; an allowed Origin is reflected in
	// Access-Control-Allow-Origin, with Vary: Origin, and preflight OPTIONS
	// requests are answered 204. Nil: no cross-origin page is allowed (no
	// CORS header is ever sent), unless AllowAnyOrigin.
	AllowOrigin func(origin string) bool
	// AllowAnyOrigin allows every cross-origin page with a literal
	// Access-Control-Allow-Origin: *, as Node's cors package does for
	// origin "*"; AllowOrigin is then not consulted. Browsers refuse
	// credentials with *, so AllowCredentials must be false with it.
	AllowAnyOrigin bool
	// AllowCredentials adds Access-Control-Allow-Credentials: true to the
	// answers to allowed origins. Set it only for a list of trusted origins:
	// it lets their pages make requests with the user's cookies.
	AllowCredentials bool
	// AllowRequest, if set, runs before every handshake (polling GET or
	// WebSocket without sid); an error refuses it with 403
	// {"code":4,"message":<the error's text>} as Node's allowRequest does
	// with the message it is given ("Forbidden" when the text is empty).
	// Over WebSocket the refusal is Node's abortUpgrade answer: 400 with
	// the message as text/html. Upgrades of existing sessions are not
	// checked again. Return errors whose text may be shown to clients.
	AllowRequest func(r *http.Request) error
	// Cookie, if not nil, is set on the answer to every polling handshake
	// with the session id as its value (Node's cookie option, for load
	// balancers that stick sessions by cookie); its Value is ignored. As in
	// Node, a handshake over WebSocket gets none.
	Cookie *http.Cookie
	// Headers, if set, may add headers to the answers to the requests of
	// sessions: initial is true for the handshake (Node's
	// "initial_headers" and "headers" events), false for the later polling
	// requests ("headers"). It runs on the request's goroutine, before the
	// answer is written; refusals (HTTP 400/403) do not go through it.
	Headers func(h http.Header, r *http.Request, initial bool)
	// ConnectionError, if set, is told of each request refused before it
	// reaches a session or opens one (Node's "connection_error"): code and
	// message as in the answer, context with details (transport, sid,
	// method, name, protocol, message), as Node gives them. It runs on the
	// request's goroutine, before the answer is written.
	ConnectionError func(r *http.Request, code int, message string, context map[string]any)
	// DisableHTTPCompression turns off the gzip/deflate compression of
	// polling responses of at least CompressionThreshold bytes, on by
	// default as in Node.
	DisableHTTPCompression bool
	// CompressionThreshold is the smallest polling response compressed.
	// Default 1024 bytes (Node's).
	CompressionThreshold int
	// PerMessageDeflate turns on the WebSocket per-message deflate
	// extension (RFC 7692, Node's perMessageDeflate), off by default as in
	// Node: a client that offers it gets it, without context takeover
	// either way, and messages of at least PerMessageDeflateThreshold bytes
	// go to it compressed (each message compressed once, whatever its
	// number of recipients); its compressed messages are inflated, bounded
	// by MaxPayload.
	PerMessageDeflate bool
	// PerMessageDeflateThreshold is the smallest message (its Engine.IO
	// packet) sent compressed. Default 1024 bytes (Node's).
	PerMessageDeflateThreshold int
	// Logger receives the engine's log lines. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if not nil, are updated by the engine.
	Metrics *Metrics
}

// Metrics are collectors the caller creates and registers (their names are
// the caller's); nil fields are skipped.
type Metrics struct {
	Sessions      prometheus.Gauge   // open sessions
	PacketsIn     prometheus.Counter // Engine.IO packets received (every type)
	PacketsOut    prometheus.Counter // Engine.IO packets queued for clients (every type, open/ping/close included)
	BytesIn       prometheus.Counter // payload bytes received (without transport framing)
	BytesOut      prometheus.Counter // payload bytes queued
	SlowConsumers prometheus.Counter // sessions closed because MaxBufferedBytes was passed
}

// Defaults.
const (
	DefaultPingInterval         = 25 * time.Second
	DefaultPingTimeout          = 20 * time.Second
	DefaultUpgradeTimeout       = 10 * time.Second
	DefaultMaxPayload           = 1_000_000
	DefaultMaxBufferedBytes     = 16 << 20
	DefaultWriteTimeout         = 10 * time.Second
	DefaultReadTimeout          = 30 * time.Second
	DefaultCompressionThreshold = 1024

	DefaultPerMessageDeflateThreshold = 1024
)

// withDefaults returns o with its defaults filled in, or an error for an
// invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.PingInterval < 0 || o.PingTimeout < 0 || o.UpgradeTimeout < 0 || o.WriteTimeout < 0 || o.ReadTimeout < 0 ||
		o.MaxPayload < 0 || o.MaxBufferedBytes < 0 || o.CompressionThreshold < 0 || o.PerMessageDeflateThreshold < 0 {
		return o, errors.New("eio: negative option")
	}
	if err := o.corsDefaults(); err != nil {
		return o, err
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	if o.UpgradeTimeout == 0 {
		o.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxBufferedBytes == 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.CompressionThreshold == 0 {
		o.CompressionThreshold = DefaultCompressionThreshold
	}
	if o.PerMessageDeflateThreshold == 0 {
		o.PerMessageDeflateThreshold = DefaultPerMessageDeflateThreshold
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{Polling, WebSocket}
	} else {
		o.Transports = append([]string(nil), o.Transports...)
		for _, t := range o.Transports {
			if t != Polling && t != WebSocket {
				return o, fmt.Errorf("eio: unknown transport %q", t)
			}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = &Metrics{}
	}
	return o, nil
}

func (o *Options) allows(transport string) bool {
	for _, t := range o.Transports {
		if t == transport {
			return true
		}
	}
	return false
}

// Metric helpers: nil collectors are skipped.
func (m *Metrics) addIn(packets, bytes int) {
	if m.PacketsIn != nil {
		m.PacketsIn.Add(float64(packets))
	}
	if m.BytesIn != nil && bytes > 0 {
		m.BytesIn.Add(float64(bytes))
	}
}

func (m *Metrics) addOut(packets, bytes int) {
	if m.PacketsOut != nil {
		m.PacketsOut.Add(float64(packets))
	}
	if m.BytesOut != nil && bytes > 0 {
		m.BytesOut.Add(float64(bytes))
	}
}
