package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Defaults of Options. Those shared with @socket.io/redis-streams-adapter
// have its values.
const (
	DefaultStreamName        = "socket.io"
	DefaultStreamCount       = 1
	DefaultMaxLen            = 10000
	DefaultReadCount         = 100
	DefaultBlockTime         = 5 * time.Second
	DefaultSessionKeyPrefix  = "sio:session:"
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
	DefaultChannelPrefix     = "socket.io"
	DefaultRequestTimeout    = 5 * time.Second
	DefaultPublishBufferSize = 10000
)

// ErrInvalidOptions is wrapped by the error New returns for invalid Options;
// the error itself is an *OptionsError naming the option.
var ErrInvalidOptions = errors.New("invalid cluster options")

// OptionsError reports one invalid field of Options.
type OptionsError struct {
	Field  string
	Reason string
}

func (e *OptionsError) Error() string {
	return "cluster: invalid option " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidOptions) true.
func (e *OptionsError) Unwrap() error { return ErrInvalidOptions }

// Options configure a Transport. The zero value of a field means its
// default; only the Redis connection (URL or InitAddress) is required.
type Options struct {
	// URL is the Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS, as rueidis.ParseURL reads it; a cluster can be
	// given as redis://host1:port1?addr=host2:port2&addr=host3:port3.
	// Set either URL or InitAddress.
	URL string
	// InitAddress lists "host:port" seeds of a Redis Cluster (or the one
	// address of a standalone server), without authentication or TLS;
	// use URL or ConfigureClient for those.
	InitAddress []string
	// ConfigureClient, when set, is called with the rueidis options
	// derived from URL or InitAddress before the client is created, to set
	// what Options does not cover (TLS configuration, dialer, ...).
	// The transport relies on DisableRetry being true, and sets it after
	// this call.
	ConfigureClient func(*rueidis.ClientOption)

	// StreamName is the name of the stream, or the prefix of the stream
	// names when StreamCount > 1. Default "socket.io".
	StreamName string
	// StreamCount is the number of streams namespaces are spread over
	// (Node's streamCount), to spread the load over the shards of a Redis
	// Cluster. Default 1.
	StreamCount int
	// MaxLen is the approximate maximum length of each stream
	// (XADD MAXLEN ~). Default 10000.
	MaxLen int64
	// ReadCount is the maximum number of entries one XREAD returns.
	// Default 100.
	ReadCount int
	// BlockTime is how long an XREAD waits for new entries. Default 5s.
	BlockTime time.Duration

	// ChannelPrefix is the prefix of the pub/sub channels. Default
	// "socket.io".
	ChannelPrefix string
	// UseShardedPubSub uses SPUBLISH/SSUBSCRIBE (Redis 7+) instead of
	// PUBLISH/SUBSCRIBE.
	UseShardedPubSub bool
	// OnlyPlaintext writes stream data as JSON even when it holds binary.
	OnlyPlaintext bool

	// SessionKeyPrefix is the prefix of the keys of persisted sessions.
	// The transport does not use it; it is here, with Node's default
	// "sio:session:", so that one Options describes a node's Redis layout.
	SessionKeyPrefix string
	// HeartbeatInterval and HeartbeatTimeout (defaults 5s and 10s) are
	// carried for the adapter, which owns node liveness; the transport
	// only validates them.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration

	// RequestTimeout bounds every Redis command but the blocking XREAD, and
	// how long Publish waits for the entry id of a durable message before
	// returning with the message still queued. Default 5s.
	RequestTimeout time.Duration
	// PublishBufferSize is the number of durable messages that may wait for
	// Redis; beyond it Publish fails with adapter.ErrBufferFull.
	// Default 10000.
	PublishBufferSize int
	// MaxDataSize bounds every value read from Redis (see
	// DefaultMaxDataSize); larger entries are skipped as malformed.
	MaxDataSize int
	// MaxFlushDelay is rueidis's ClientOption.MaxFlushDelay: how long the
	// pipeline may wait to gather more commands before writing. 0 (the
	// default) writes at once; see the package documentation for measured
	// figures.
	MaxFlushDelay time.Duration

	// Logger receives the transport's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the transport's metrics; nil registers none.
	// Two transports need two registries (or prometheus.WrapRegistererWith).
	Registerer prometheus.Registerer
}

// Defaults returns o with every zero field set to its default (the
// Default* constants, slog.Default() for Logger). It validates nothing;
// New applies it, then Validate.
func (o Options) Defaults() Options {
	setDefault(&o.StreamName, DefaultStreamName)
	setDefault(&o.StreamCount, DefaultStreamCount)
	setDefault(&o.MaxLen, DefaultMaxLen)
	setDefault(&o.ReadCount, DefaultReadCount)
	setDefault(&o.BlockTime, DefaultBlockTime)
	setDefault(&o.ChannelPrefix, DefaultChannelPrefix)
	setDefault(&o.SessionKeyPrefix, DefaultSessionKeyPrefix)
	setDefault(&o.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&o.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDefault(&o.RequestTimeout, DefaultRequestTimeout)
	setDefault(&o.PublishBufferSize, DefaultPublishBufferSize)
	setDefault(&o.MaxDataSize, DefaultMaxDataSize)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate checks o as New does, zero fields standing for their defaults,
// and returns an *OptionsError naming the first invalid field. It accepts
// Options without URL nor InitAddress, which New refuses: a configuration
// can be checked before it says where Redis is (server.Config does). No
// error repeats the URL, which may hold a password.
func (o Options) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &OptionsError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if o.URL != "" && len(o.InitAddress) > 0 {
		return bad("URL", "set URL or InitAddress, not both")
	}
	if o.URL != "" {
		if err := validateURL(o.URL); err != nil {
			return bad("URL", "%v", err)
		}
	}
	for _, a := range o.InitAddress {
		if a == "" || !strings.Contains(a, ":") {
			return bad("InitAddress", "%q is not host:port", a)
		}
	}
	o = o.Defaults()
	switch {
	case o.StreamCount < 1 || o.StreamCount > 1024:
		return bad("StreamCount", "%d is not between 1 and 1024", o.StreamCount)
	case o.MaxLen < 0:
		return bad("MaxLen", "%d is negative", o.MaxLen)
	case o.ReadCount < 0:
		return bad("ReadCount", "%d is negative", o.ReadCount)
	case o.BlockTime < time.Millisecond:
		return bad("BlockTime", "%v is less than 1ms (XREAD BLOCK 0 would wait forever)", o.BlockTime)
	case o.HeartbeatInterval < time.Millisecond:
		return bad("HeartbeatInterval", "%v is less than 1ms", o.HeartbeatInterval)
	case o.HeartbeatTimeout <= o.HeartbeatInterval:
		return bad("HeartbeatTimeout", "%v is not longer than HeartbeatInterval (%v)", o.HeartbeatTimeout, o.HeartbeatInterval)
	case o.RequestTimeout < time.Millisecond:
		return bad("RequestTimeout", "%v is less than 1ms", o.RequestTimeout)
	case o.PublishBufferSize < 0:
		return bad("PublishBufferSize", "%d is negative", o.PublishBufferSize)
	case o.MaxDataSize < 0:
		return bad("MaxDataSize", "%d is negative", o.MaxDataSize)
	case o.MaxFlushDelay < 0:
		return bad("MaxFlushDelay", "%v is negative", o.MaxFlushDelay)
	}
	return nil
}

// validateURL checks a Redis URL as rueidis reads it, with a host (or a
// unix socket path). Its errors show the URL redacted, if at all.
func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	if _, err := rueidis.ParseURL(raw); err != nil {
		return fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	if u.Host == "" && u.Scheme != "unix" {
		return fmt.Errorf("%s has no host:port", u.Redacted())
	}
	return nil
}

// withDefaults returns o with every zero field set to its default, or the
// first invalid field: New's check, which also needs a Redis to connect to.
func (o Options) withDefaults() (Options, error) {
	if o.URL == "" && len(o.InitAddress) == 0 {
		return o, &OptionsError{Field: "URL", Reason: "set URL or InitAddress"}
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o.Defaults(), nil
}

// clientOption builds the rueidis options.
func (o *Options) clientOption() (rueidis.ClientOption, error) {
	var co rueidis.ClientOption
	if o.URL != "" {
		var err error
		if co, err = rueidis.ParseURL(o.URL); err != nil {
			return co, &OptionsError{Field: "URL", Reason: err.Error()}
		}
	} else {
		co.InitAddress = append([]string(nil), o.InitAddress...)
	}
	co.MaxFlushDelay = o.MaxFlushDelay
	// A paused or unreachable Redis must be noticed within a request
	// timeout, not rueidis's default of 10s.
	co.Dialer.Timeout = o.RequestTimeout
	co.ConnWriteTimeout = o.RequestTimeout
	// Named so that CLIENT LIST shows whose connections these are.
	co.ClientName = "sockstream-cluster"
	if o.ConfigureClient != nil {
		o.ConfigureClient(&co)
	}
	// Every loop of the transport retries on its own terms (backoff,
	// resuming from the last id, re-subscribing, reconciling XADDs whose
	// reply was lost); rueidis's own retries would hide the failures from
	// the readiness tracking.
	co.DisableRetry = true
	// Client-side caching is not used.
	co.DisableCache = true
	return co, nil
}

// setDefault sets *v to d if it is the zero value.
func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
