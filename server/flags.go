package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// EnvPrefix starts the name of every environment variable LoadEnv reads.
const EnvPrefix = "SOCKSTREAM_"

// RegisterFlags defines a command-line flag for each option on fs, with the
// option's current value as the flag's default. Call it after LoadEnv so that
// flags override the environment, which overrides the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := c.withDefaults()
	fs.StringVar(&c.Addr, "addr", d.Addr, "address to listen on (env SOCKSTREAM_ADDR)")
	fs.StringVar(&c.Path, "path", d.Path, "path Socket.IO is served at (env SOCKSTREAM_PATH)")
	fs.Var(listFlag{&c.CORSOrigins}, "cors-origins", "comma-separated origins allowed by CORS, or * (env SOCKSTREAM_CORS_ORIGINS)")
	fs.BoolVar(&c.CORSCredentials, "cors-credentials", c.CORSCredentials, "allow credentials (cookies) from the listed cors-origins; not with * (env SOCKSTREAM_CORS_CREDENTIALS)")
	fs.DurationVar(&c.PingInterval, "ping-interval", d.PingInterval, "interval between two pings (env SOCKSTREAM_PING_INTERVAL)")
	fs.DurationVar(&c.PingTimeout, "ping-timeout", d.PingTimeout, "time to wait for a pong (env SOCKSTREAM_PING_TIMEOUT)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", d.ConnectTimeout, "time a client has to join a namespace (env SOCKSTREAM_CONNECT_TIMEOUT)")
	fs.DurationVar(&c.UpgradeTimeout, "upgrade-timeout", d.UpgradeTimeout, "bound on the upgrade from polling to WebSocket (env SOCKSTREAM_UPGRADE_TIMEOUT)")
	fs.Int64Var(&c.MaxPayload, "max-payload", d.MaxPayload, "largest message a client may send, in bytes (env SOCKSTREAM_MAX_PAYLOAD)")
	fs.IntVar(&c.MaxBufferedBytes, "max-buffered-bytes", d.MaxBufferedBytes, "bound on what may wait for one client; past it the client is disconnected as a slow consumer (env SOCKSTREAM_MAX_BUFFERED_BYTES)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", d.WriteTimeout, "bound on each write to a client (env SOCKSTREAM_WRITE_TIMEOUT)")
	fs.IntVar(&c.MaxAttachments, "max-attachments", d.MaxAttachments, "most binary attachments in one packet from a client (env SOCKSTREAM_MAX_ATTACHMENTS)")
	fs.Int64Var(&c.MaxPendingEventBytes, "max-pending-event-bytes", d.MaxPendingEventBytes, "bound on the events of one client waiting for its handlers, in bytes; past it the client is disconnected (env SOCKSTREAM_MAX_PENDING_EVENT_BYTES)")
	// 0 stands for MaxPayload, whatever sets it later (a flag after the
	// environment): the default is not written into the field.
	fs.Int64Var(&c.MaxAttachmentBytes, "max-attachment-bytes", c.MaxAttachmentBytes, "bound on the total size of one packet's attachments, in bytes; 0: max-payload (env SOCKSTREAM_MAX_ATTACHMENT_BYTES)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", d.IdleTimeout, "idle keep-alive connections are closed after this (env SOCKSTREAM_IDLE_TIMEOUT)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", d.ReadTimeout, "bound on reading a request, its body included; not long polls nor WebSockets (env SOCKSTREAM_READ_TIMEOUT)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", d.MaxHeaderBytes, "largest request line and headers, in bytes; larger requests get 431 (env SOCKSTREAM_MAX_HEADER_BYTES)")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, fmt.Sprintf("most open TCP connections; over it Socket.IO requests get 503, health checks are served; 0: 90%% of the file-descriptor limit minus 32, %d here (env SOCKSTREAM_MAX_CONNECTIONS)", DefaultMaxConnections()))
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics on this address only, not beside Socket.IO (env SOCKSTREAM_METRICS_ADDR)")
	// The Var flags show the field's value as their default: set it, as the
	// other flags do.
	if len(c.Transports) == 0 {
		c.Transports = d.Transports
	}
	fs.Var(transportsFlag{&c.Transports}, "transports", "comma-separated transports: polling,websocket (env SOCKSTREAM_TRANSPORTS)")
	fs.BoolVar(&c.DisableUpgrades, "disable-upgrades", c.DisableUpgrades, "forbid the upgrade from polling to WebSocket (env SOCKSTREAM_DISABLE_UPGRADES)")
	fs.BoolVar(&c.DisableHTTPCompression, "disable-http-compression", c.DisableHTTPCompression, "do not gzip/deflate polling responses (env SOCKSTREAM_DISABLE_HTTP_COMPRESSION)")
	fs.IntVar(&c.HTTPCompressionThreshold, "http-compression-threshold", d.HTTPCompressionThreshold, "smallest polling response compressed, in bytes (env SOCKSTREAM_HTTP_COMPRESSION_THRESHOLD)")
	fs.BoolVar(&c.PerMessageDeflate, "per-message-deflate", c.PerMessageDeflate, "offer WebSocket per-message deflate (RFC 7692) to the clients (env SOCKSTREAM_PER_MESSAGE_DEFLATE)")
	fs.IntVar(&c.PerMessageDeflateThreshold, "per-message-deflate-threshold", d.PerMessageDeflateThreshold, "smallest WebSocket message compressed, in bytes (env SOCKSTREAM_PER_MESSAGE_DEFLATE_THRESHOLD)")
	fs.Var(cookieFlag{&c.Cookie}, "cookie", "name of a session cookie set on polling handshakes, for sticky sessions; empty: none (env SOCKSTREAM_COOKIE)")
	fs.StringVar(&c.Parser, "parser", c.Parser, "packet format of the clients: json (socket.io-parser) or msgpack (socket.io-msgpack-parser); empty: json (env SOCKSTREAM_PARSER)")
	fs.BoolVar(&c.Recovery.Enabled, "recovery", c.Recovery.Enabled, "enable connection state recovery (env SOCKSTREAM_RECOVERY)")
	fs.DurationVar(&c.Recovery.MaxDisconnection, "recovery-max-disconnection", d.Recovery.MaxDisconnection, "how long a disconnected session is kept (env SOCKSTREAM_RECOVERY_MAX_DISCONNECTION)")
	fs.BoolVar(&c.Recovery.SkipMiddlewares, "recovery-skip-middlewares", c.Recovery.SkipMiddlewares, "skip the middlewares for a recovered connection (env SOCKSTREAM_RECOVERY_SKIP_MIDDLEWARES)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "bound on graceful shutdown (env SOCKSTREAM_SHUTDOWN_TIMEOUT)")
	c.Redis.registerFlags(fs, d.Redis)
	c.Admin.registerFlags(fs, d.Admin)
}

// Parse is a command's whole configuration: the environment (read through
// lookup, os.LookupEnv in a program), then args parsed by fs, on which it
// registers a flag for each option beside those the command defined; flags
// win over the environment, which wins over the defaults. A bad value is one
// error naming the option, without the usage the flag package prints with
// it; -h prints the usage to fs's output and returns flag.ErrHelp.
func (c *Config) Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := c.LoadEnv(lookup); err != nil {
		return err
	}
	c.RegisterFlags(fs)
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(out)
		fmt.Fprintf(out, "usage of %s:\n", fs.Name())
		fs.PrintDefaults()
	}
	return err
}

// LoadEnv sets the options found in the environment, read through lookup
// (os.LookupEnv in a program). A malformed value is an error naming the
// variable; nothing is set then.
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	n := *c
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	n.RegisterFlags(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = &ConfigError{Option: name, Reason: fmt.Sprintf("%q: %v", v, e)}
		}
	})
	if err != nil {
		return err
	}
	*c = n
	return nil
}

// EnvName is the environment variable LoadEnv reads for the flag named
// flagName: SOCKSTREAM_ and the name in upper case with _ for -, such as
// SOCKSTREAM_PING_INTERVAL for -ping-interval; -redis is SOCKSTREAM_REDIS_URL.
func EnvName(flagName string) string {
	if v, ok := envNames[flagName]; ok {
		return EnvPrefix + v
	}
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envNames are the exceptions to the rule of EnvName.
var envNames = map[string]string{"redis": "REDIS_URL"}

type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(v string) error {
	*l.p = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

// cookieFlag sets Config.Cookie by its name, Node's other defaults kept.
type cookieFlag struct{ p **CookieConfig }

func (f cookieFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	if (*f.p).Name == "" {
		return "io"
	}
	return (*f.p).Name
}

func (f cookieFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		*f.p = nil
		return nil
	}
	if !validCookieName(v) {
		return fmt.Errorf("%q is not a cookie name", v)
	}
	var c CookieConfig // a copy: LoadEnv may drop what it sets
	if *f.p != nil {
		c = **f.p
	}
	c.Name = v
	*f.p = &c
	return nil
}

type transportsFlag struct{ p *[]Transport }

func (t transportsFlag) String() string {
	if t.p == nil {
		return ""
	}
	s := make([]string, len(*t.p))
	for i, v := range *t.p {
		s[i] = string(v)
	}
	return strings.Join(s, ",")
}

func (t transportsFlag) Set(v string) error {
	*t.p = nil
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		switch Transport(s) {
		case Polling, WebSocket:
			*t.p = append(*t.p, Transport(s))
		default:
			return fmt.Errorf("%q is not one of polling, websocket", s)
		}
	}
	return nil
}
