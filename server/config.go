package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Transport names a Socket.IO transport a client may use.
type Transport string

// The transports a server can offer.
const (
	Polling   Transport = "polling"
	WebSocket Transport = "websocket"
)

// Config configures a Server. The zero value of every field means its
// documented default, so Config{} is a working single-node server.
type Config struct {
	// Addr is the address Run listens on. Default ":3000".
	Addr string

	// Path is where Socket.IO is served. Default "/socket.io/".
	Path string

	// CORSOrigins lists the origins allowed to connect from a browser page
	// served elsewhere, such as "https://app.example.com". "*" allows any
	// page, as Node's cors package does with origin "*": a literal
	// Access-Control-Allow-Origin: *, without credentials, so that no page
	// can make requests with the user's cookies. A listed origin is
	// reflected, with Vary: Origin. With a list, "null" (the Origin of
	// sandboxed frames and file: pages) is allowed only when listed; "*"
	// answers it "*" like any other. Default none:
	// same-origin pages and non-browser clients only, as in Node's socket.io.
	CORSOrigins []string
	// CORSCredentials adds Access-Control-Allow-Credentials: true to the
	// answers to the listed origins, so that their pages may send cookies
	// (withCredentials: true; sticky sessions behind a load balancer need
	// it). It requires an explicit CORSOrigins list without "*". Default
	// false, as Node's cors package.
	CORSCredentials bool

	// PingInterval is how often the server pings a client. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long the server waits for a pong before it closes
	// the connection. Default 20s.
	PingTimeout time.Duration
	// ConnectTimeout is how long a client has to join a namespace after its
	// Engine.IO handshake. Default 45s.
	ConnectTimeout time.Duration
	// UpgradeTimeout bounds the upgrade from polling to WebSocket. Default 10s.
	UpgradeTimeout time.Duration

	// MaxPayload is the largest message, in bytes, a client may send
	// (Node's maxHttpBufferSize); a client that sends more is disconnected.
	// Default 1,000,000.
	MaxPayload int64

	// MaxBufferedBytes bounds what may wait, written by the server and not
	// yet taken by the client, on one connection. A client that stops
	// reading is disconnected once it passes the bound, with the reason
	// "slow consumer", a log line and sockstream_engine_slow_consumers_total;
	// the other clients are unaffected. Default 16 MiB.
	MaxBufferedBytes int
	// WriteTimeout bounds each write to a client's connection; a client
	// that takes longer is disconnected ("transport error"). Default 10s.
	WriteTimeout time.Duration
	// MaxAttachments is the most binary attachments one packet from a
	// client may carry (socket.io-parser's maxAttachments); a packet with
	// more closes that client's connection. Default 10.
	MaxAttachments int
	// MaxAttachmentBytes bounds the total size, in bytes, of the binary
	// attachments of one packet from a client, checked as each arrives; the
	// attachment that passes it closes that client's connection. Each
	// attachment is a message, bounded by MaxPayload, so without this bound
	// a client could make the server hold MaxAttachments × MaxPayload for
	// one packet. Default MaxPayload.
	MaxAttachmentBytes int64
	// MaxPendingEventBytes bounds the events one connection has sent that
	// its handlers have not run yet (their size as received). Handlers run
	// one at a time per socket; a client that sends faster than they run,
	// or while one is blocked, is disconnected once its backlog passes the
	// bound, with the reason "event backlog" and a log line, rather than
	// let the server queue without end. Default 4 MiB.
	MaxPendingEventBytes int64

	// IdleTimeout closes a keep-alive connection of Run or Serve that has
	// carried no request for this long. Default 75s: longer than the 60s
	// idle timeout of common proxies and load balancers (nginx upstream
	// keepalive, AWS ALB), so that they close idle connections first and
	// never send a request on one the server is closing.
	IdleTimeout time.Duration
	// ReadTimeout bounds the reading of one request of Run or Serve, its
	// body included: a polling POST whose body has not arrived within it is
	// cut (its session closed, "transport error"). Long-polling GETs (which
	// wait up to PingInterval) and WebSocket connections are not subject to
	// it. Default 30s.
	ReadTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers of a request to
	// Run or Serve; a larger request gets 431. Default 64 KiB: four times
	// Node's 16 KiB, so that what Node accepts passes, and a sixteenth of
	// net/http's 1 MiB.
	MaxHeaderBytes int
	// MaxConnections caps the TCP connections open at once on the listeners
	// of Run and Serve. A connection over the cap is still answered, once,
	// and then closed: 503 to a Socket.IO request, while /healthz, /readyz,
	// /metrics and the Mux's other routes are served, so that probes and
	// scrapes get through a flood; beyond the cap by more than half the
	// file descriptors left above it, a connection is closed unanswered.
	// Each drop is counted (sockstream_tcp_connections_refused_total) and
	// logged. The cap must sit below the process's file-descriptor limit:
	// at the limit, accept fails and no client, probe included, gets in.
	// Default: 90% of the limit (RLIMIT_NOFILE, ulimit -n) minus 32
	// descriptors kept for Redis, files and the connections over the cap;
	// 10,000 where the limit is unknown or unlimited. Connections of a
	// crypto/tls listener are not counted (net/http must see the
	// *tls.Conn): put the cap on the TLS terminator.
	MaxConnections int
	// MetricsAddr, if set, is the address (host:port) where Run serves
	// /metrics, and nothing else; the Handler then no longer serves it.
	// It keeps the runtime, process and host figures off a public listener.
	// Default "": /metrics on the Handler, beside Socket.IO.
	MetricsAddr string

	// Transports the server accepts. Default polling and WebSocket.
	Transports []Transport
	// DisableUpgrades stops clients upgrading from polling to WebSocket.
	DisableUpgrades bool

	// AllowRequest, if set, runs before each Engine.IO handshake (a polling
	// GET or a WebSocket without sid), on the request's goroutine (Node's
	// allowRequest). An error refuses the connection: 403
	// {"code":4,"message":<the error's text>} over polling, 400 with the
	// text over WebSocket, as Node answers; the client gets a
	// connect_error. The requests of existing sessions are not checked
	// again. Return errors whose text may be shown to clients.
	AllowRequest func(r *http.Request) error
	// Cookie, if not nil, sets a cookie holding the Engine.IO session id on
	// the answer to each polling handshake (Node's cookie option, for load
	// balancers that stick sessions by cookie). Off by default, as in Node.
	Cookie *CookieConfig
	// DisableHTTPCompression turns off the gzip/deflate compression of
	// polling responses (Node's httpCompression: false). Compression is on
	// by default, as in Node.
	DisableHTTPCompression bool
	// HTTPCompressionThreshold is the smallest polling response, in bytes,
	// that is compressed (when the client accepts gzip or deflate).
	// Default 1024, Node's. WebSocket messages are compressed only with
	// PerMessageDeflate.
	HTTPCompressionThreshold int
	// PerMessageDeflate offers WebSocket per-message deflate (RFC 7692,
	// Node's perMessageDeflate; off by default, as in Node): a client that
	// asks for it (socket.io-client in Node does by default; browsers do)
	// gets its messages of at least PerMessageDeflateThreshold bytes
	// compressed, and may send compressed ones. It is negotiated without
	// context takeover, so that a broadcast is compressed once for all its
	// recipients and no connection keeps a compression window.
	// Broadcast.Compress(false) sends uncompressed.
	PerMessageDeflate bool
	// PerMessageDeflateThreshold is the smallest message, in bytes (its
	// Engine.IO packet), sent compressed. Default 1024, Node's.
	PerMessageDeflateThreshold int

	// Parser is the Socket.IO packet format every client of the server
	// speaks: ParserJSON (default, socket.io-parser, the official client's
	// default) or ParserMsgpack (socket.io-msgpack-parser 3.x, a client
	// created with `parser: require("socket.io-msgpack-parser")`). The two
	// do not mix: a client speaking the other one is disconnected at its
	// first packet.
	Parser string

	// CleanupEmptyChildNamespaces removes a namespace created by a dynamic
	// namespace (OfDynamic) once no socket of this node is in it and no
	// connection to it is under way: after its last socket's disconnect
	// handlers have run, or after the connection that created it was
	// refused. Its adapter is closed (in a cluster, its Redis
	// subscriptions end and the other nodes are told), it leaves
	// Namespaces() and its parent's operations, and a client that connects
	// to the name again gets a new namespace (the OnNewNamespace handlers
	// run again). A *Namespace kept from before serves no client any more.
	// It bounds what a server serving many short-lived dynamic namespaces
	// keeps: the namespace, its adapter, its Redis subscriptions and its
	// Prometheus series (those labelled with its name are deleted with it;
	// a namespace created again under the name starts them from zero).
	// Node's cleanupEmptyChildNamespaces; default false, as in Node: a
	// child namespace stays once created.
	CleanupEmptyChildNamespaces bool

	// Recovery configures connection state recovery. Off by default.
	Recovery RecoveryConfig

	// Redis clusters the server over Redis Streams when Redis.URL is set.
	// Default: no clustering, the same adapter over an in-memory transport.
	Redis RedisConfig

	// Admin serves the Socket.IO Admin UI's namespace (docs/admin.md).
	// Off by default.
	Admin AdminConfig

	// ShutdownTimeout bounds Run's graceful shutdown after its context ends.
	// Default 10s.
	ShutdownTimeout time.Duration

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger

	// Registry is where the server registers its Prometheus metrics and
	// what /metrics serves. Default: a new registry of the server's own, with
	// the Go runtime and process collectors.
	Registry *prometheus.Registry
}

// RecoveryConfig configures Socket.IO connection state recovery: a client
// whose connection drops for less than MaxDisconnection comes back with the
// same id, rooms and data, and receives the packets it missed.
type RecoveryConfig struct {
	// Enabled turns recovery on.
	Enabled bool
	// MaxDisconnection is how long a session is kept after a disconnection.
	// Default 2m, as in Node.
	MaxDisconnection time.Duration
	// SkipMiddlewares skips the namespace middlewares for a recovered
	// connection. Default false (middlewares always run).
	SkipMiddlewares bool
}

// Defaults, exported so that programs can show them in their help text.
const (
	DefaultAddr             = ":3000"
	DefaultPath             = "/socket.io/"
	DefaultPingInterval     = 25 * time.Second
	DefaultPingTimeout      = 20 * time.Second
	DefaultConnectTimeout   = 45 * time.Second
	DefaultUpgradeTimeout   = 10 * time.Second
	DefaultMaxPayload       = 1_000_000
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultMaxDisconnection = 2 * time.Minute
	DefaultMaxBufferedBytes = 16 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxAttachments   = 10
	// DefaultMaxPendingEventBytes is the default of
	// Config.MaxPendingEventBytes.
	DefaultMaxPendingEventBytes = 4 << 20
	DefaultIdleTimeout          = 75 * time.Second
	DefaultReadTimeout          = 30 * time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	// DefaultHTTPCompressionThreshold is the default of
	// Config.HTTPCompressionThreshold, Node's.
	DefaultHTTPCompressionThreshold = 1024
	// DefaultPerMessageDeflateThreshold is the default of
	// Config.PerMessageDeflateThreshold, Node's.
	DefaultPerMessageDeflateThreshold = 1024
)

// DefaultMaxConnections is the default of Config.MaxConnections on this
// process: 90% of its file-descriptor limit minus 32, or 10,000 where the
// limit is unknown.
func DefaultMaxConnections() int {
	return maxConnectionsFor(fdLimit())
}

// maxConnectionsFor is the default cap under a file-descriptor limit of
// limit (0: unknown).
func maxConnectionsFor(limit int) int {
	switch {
	case limit <= 0:
		return 10_000
	case limit <= 64:
		return max(limit/2, 1)
	}
	return limit*9/10 - 32
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid config")

// The values of Config.Parser.
const (
	// ParserJSON is socket.io-parser's format: a text message per packet,
	// binary values as attachments.
	ParserJSON = "json"
	// ParserMsgpack is socket.io-msgpack-parser 3.x's format: one binary
	// message per packet, MessagePack-encoded, binary values inline.
	ParserMsgpack = "msgpack"
)

// ConfigError names the option that is wrong and why.
type ConfigError struct {
	Option string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid config: %s: %s", e.Option, e.Reason)
}

// Unwrap lets errors.Is(err, ErrInvalidConfig) match.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// withDefaults returns a copy of c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	c.CORSOrigins = normalizeOrigins(c.CORSOrigins)
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.UpgradeTimeout == 0 {
		c.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if len(c.Transports) == 0 {
		c.Transports = []Transport{Polling, WebSocket}
	}
	if c.Parser == "" {
		c.Parser = ParserJSON
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxAttachments == 0 {
		c.MaxAttachments = DefaultMaxAttachments
	}
	if c.MaxAttachmentBytes == 0 {
		c.MaxAttachmentBytes = c.MaxPayload
	}
	if c.MaxPendingEventBytes == 0 {
		c.MaxPendingEventBytes = DefaultMaxPendingEventBytes
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.HTTPCompressionThreshold == 0 {
		c.HTTPCompressionThreshold = DefaultHTTPCompressionThreshold
	}
	if c.PerMessageDeflateThreshold == 0 {
		c.PerMessageDeflateThreshold = DefaultPerMessageDeflateThreshold
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections()
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Recovery.MaxDisconnection == 0 {
		c.Recovery.MaxDisconnection = DefaultMaxDisconnection
	}
	c.Redis = c.Redis.withDefaults()
	c.Admin = c.Admin.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid option, as a *ConfigError. Unset fields
// are valid: they take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(opt, format string, args ...any) error {
		return &ConfigError{Option: opt, Reason: fmt.Sprintf(format, args...)}
	}
	if err := validAddr(c.Addr); err != nil {
		return bad("addr", "%v", err)
	}
	if !strings.HasPrefix(c.Path, "/") {
		return bad("path", "%q must start with /", c.Path)
	}
	if strings.ContainsAny(c.Path, "?#") {
		return bad("path", "%q must not contain a query or fragment", c.Path)
	}
	anyOrigin := false
	for _, o := range c.CORSOrigins {
		if o == "*" {
			anyOrigin = true
			continue
		}
		if o == "null" {
			continue // only when listed: see CORSOrigins
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return bad("cors-origins", "%q is not an origin like https://example.com or *", o)
		}
	}
	if c.CORSCredentials && (len(c.CORSOrigins) == 0 || anyOrigin) {
		return bad("cors-credentials", "needs an explicit cors-origins list without *: credentials for any origin would let every site act with the user's cookies")
	}
	if c.MetricsAddr != "" {
		if err := validAddr(c.MetricsAddr); err != nil {
			return bad("metrics-addr", "%v", err)
		}
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"ping-interval", c.PingInterval},
		{"ping-timeout", c.PingTimeout},
		{"connect-timeout", c.ConnectTimeout},
		{"upgrade-timeout", c.UpgradeTimeout},
		{"shutdown-timeout", c.ShutdownTimeout},
		{"write-timeout", c.WriteTimeout},
		{"idle-timeout", c.IdleTimeout},
		{"read-timeout", c.ReadTimeout},
		{"recovery-max-disconnection", c.Recovery.MaxDisconnection},
	}
	for _, d := range durations {
		if d.v < 0 {
			return bad(d.name, "%s is negative", d.v)
		}
		if d.v < time.Millisecond {
			return bad(d.name, "%s is below the 1ms resolution of the protocol", d.v)
		}
	}
	sizes := []struct {
		name string
		v    int64
	}{
		{"max-payload", c.MaxPayload},
		{"max-buffered-bytes", int64(c.MaxBufferedBytes)},
		{"max-attachments", int64(c.MaxAttachments)},
		{"max-pending-event-bytes", c.MaxPendingEventBytes},
		{"max-attachment-bytes", c.MaxAttachmentBytes},
		{"max-header-bytes", int64(c.MaxHeaderBytes)},
		{"http-compression-threshold", int64(c.HTTPCompressionThreshold)},
		{"per-message-deflate-threshold", int64(c.PerMessageDeflateThreshold)},
	}
	for _, n := range sizes {
		if n.v < 0 {
			return bad(n.name, "%d is negative", n.v)
		}
	}
	if c.Cookie != nil {
		if err := c.Cookie.validate(); err != nil {
			return bad("cookie", "%v", err)
		}
	}
	if c.MaxConnections < 0 {
		return bad("max-connections", "%d is negative", c.MaxConnections)
	}
	if limit := fdLimit(); limit > 0 && c.MaxConnections >= limit {
		return bad("max-connections", "%d is not below the file-descriptor limit, %d (ulimit -n): over the limit no connection, health probes included, is accepted; raise the limit or lower the cap", c.MaxConnections, limit)
	}
	if c.Parser != "" && c.Parser != ParserJSON && c.Parser != ParserMsgpack {
		return bad("parser", "%q is not one of json, msgpack", c.Parser)
	}
	seen := map[Transport]bool{}
	for _, t := range c.Transports {
		if t != Polling && t != WebSocket {
			return bad("transports", "%q is not one of polling, websocket", t)
		}
		if seen[t] {
			return bad("transports", "%q is listed twice", t)
		}
		seen[t] = true
	}
	if err := c.Admin.validate(); err != nil {
		return err
	}
	return c.Redis.validate()
}

// validAddr checks a host:port address to listen on.
func validAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (%w)", addr, err)
	}
	if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) || err != nil && !isServiceName(port) {
		return fmt.Errorf("%q: %q is not a port", addr, port)
	}
	return nil
}

// isServiceName reports whether port may be a service name such as "http",
// which net.Listen resolves.
func isServiceName(port string) bool {
	if port == "" {
		return false
	}
	for _, r := range port {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// normalizeOrigins returns origins as browsers send them in the Origin
// header (lower-case scheme and host, no trailing slash), so that
// "https://Example.com/" matches: the CORS check compares strings.
func normalizeOrigins(origins []string) []string {
	if origins == nil {
		return nil
	}
	out := make([]string, len(origins))
	for i, o := range origins {
		out[i] = normalizeOrigin(o) // Validate reports what is not an origin
	}
	return out
}

// normalizeOrigin is one origin as browsers send it, or o unchanged when it
// is not an origin.
func normalizeOrigin(o string) string {
	u, err := url.Parse(o)
	if o == "*" || err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return o
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}
