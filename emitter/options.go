package emitter

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
	"github.com/sockstream/sockstream/cluster"
)

// DefaultRequestTimeout is the default of Options.RequestTimeout.
const DefaultRequestTimeout = 5 * time.Second

// maxStreamCount is the bound server.RedisConfig puts on StreamCount.
const maxStreamCount = 1024

// ErrInvalidOptions is wrapped by the error New returns for invalid
// Options; the error itself is an *OptionsError naming the field.
var ErrInvalidOptions = errors.New("invalid emitter options")

// OptionsError reports one invalid field of Options.
type OptionsError struct {
	Field  string
	Reason string
}

func (e *OptionsError) Error() string {
	return "emitter: invalid option " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidOptions) true.
func (e *OptionsError) Unwrap() error { return ErrInvalidOptions }

// Options configure an Emitter. Only the Redis connection (Client or URL)
// is required; the other fields must match the nodes' (cluster.Options or
// server.RedisConfig, Node's createAdapter options): an emitter writing to
// a stream the nodes do not read reaches nobody, and says nothing.
type Options struct {
	// Client is a rueidis client of the cluster's Redis, used as is (a
	// cluster.Transport's Client will do). Close does not close it.
	Client rueidis.Client
	// URL, used when Client is nil, is the Redis server:
	// redis://[user:password@]host:port[/db], rediss:// for TLS, or
	// redis://host1:port1?addr=host2:port2 for a Redis Cluster. New then
	// connects (and fails if Redis does not answer), and Close closes the
	// connection.
	URL string

	// StreamName is the stream, or the prefix of the streams when
	// StreamCount > 1. Default "socket.io", as the nodes.
	StreamName string
	// StreamCount is the number of streams the namespaces are spread over
	// (a namespace's messages go to StreamName-i, i = cluster.HashCode(nsp)
	// % StreamCount). Default 1.
	StreamCount int
	// MaxLen is the approximate maximum length of each stream: every entry
	// is written with XADD MAXLEN ~ MaxLen, as the nodes write theirs.
	// Default 10000.
	MaxLen int64
	// OnlyPlaintext writes entries as JSON even when they carry binary
	// (Node's onlyPlaintext): a []byte then reaches clients as
	// {"type":"Buffer","data":[...]}, not as binary.
	OnlyPlaintext bool
	// MaxDataSize refuses, with ErrTooLarge, an entry whose data field is
	// larger: the Go nodes skip such entries as malformed (their
	// cluster.Options.MaxDataSize). Default cluster.DefaultMaxDataSize.
	MaxDataSize int

	// ChannelPrefix is the prefix of the pub/sub channels, for
	// ServerSideEmit. Default "socket.io".
	ChannelPrefix string
	// UseShardedPubSub publishes ServerSideEmit with SPUBLISH (Redis 7+),
	// for nodes with UseShardedPubSub on.
	UseShardedPubSub bool

	// RequestTimeout bounds each Redis command (and, with URL, the
	// connection), within the caller's context. Default 5s.
	RequestTimeout time.Duration
}

func (o Options) withDefaults() (Options, error) {
	bad := func(field, format string, args ...any) error {
		return &OptionsError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if o.Client == nil && o.URL == "" {
		return o, bad("Client", "set Client or URL")
	}
	if o.StreamName == "" {
		o.StreamName = cluster.DefaultStreamName
	}
	if o.StreamCount == 0 {
		o.StreamCount = cluster.DefaultStreamCount
	}
	if o.MaxLen == 0 {
		o.MaxLen = cluster.DefaultMaxLen
	}
	if o.MaxDataSize == 0 {
		o.MaxDataSize = cluster.DefaultMaxDataSize
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = cluster.DefaultChannelPrefix
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case o.StreamCount < 1 || o.StreamCount > maxStreamCount:
		return o, bad("StreamCount", "%d is not between 1 and %d", o.StreamCount, maxStreamCount)
	case o.MaxLen < 0:
		return o, bad("MaxLen", "%d is negative", o.MaxLen)
	case o.MaxDataSize < 0:
		return o, bad("MaxDataSize", "%d is negative", o.MaxDataSize)
	case o.RequestTimeout < time.Millisecond:
		return o, bad("RequestTimeout", "%v is below 1ms", o.RequestTimeout)
	}
	return o, nil
}

// clientOption builds the rueidis options of the client New creates from
// URL.
func (o Options) clientOption() (rueidis.ClientOption, error) {
	co, err := rueidis.ParseURL(o.URL)
	if err != nil {
		// rueidis's message does not repeat the URL, which may hold a
		// password.
		return co, &OptionsError{Field: "URL", Reason: err.Error()}
	}
	co.Dialer.Timeout = o.RequestTimeout
	co.ConnWriteTimeout = o.RequestTimeout
	co.ClientName = "sockstream-emitter"
	// A write is never retried behind the caller's back: an error tells
	// the caller what happened (see Broadcast.Emit).
	co.DisableRetry = true
	co.DisableCache = true
	return co, nil
}
