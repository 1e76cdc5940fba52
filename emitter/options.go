package emitter

import (
	"errors"
	"time"

	"github.com/redis/rueidis"
	"github.com/sockstream/sockstream/cluster"
)

// DefaultRequestTimeout is the default of Options.RequestTimeout, the
// nodes' (cluster.DefaultRequestTimeout).
const DefaultRequestTimeout = cluster.DefaultRequestTimeout

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

// withDefaults fills the zero fields with the nodes' defaults and checks
// o, through cluster.Options: the options the emitter shares with the
// nodes are declared, defaulted and checked in one place.
func (o Options) withDefaults() (Options, error) {
	if o.Client == nil && o.URL == "" {
		return o, &OptionsError{Field: "Client", Reason: "set Client or URL"}
	}
	co := cluster.Options{
		URL:              o.URL,
		StreamName:       o.StreamName,
		StreamCount:      o.StreamCount,
		MaxLen:           o.MaxLen,
		OnlyPlaintext:    o.OnlyPlaintext,
		MaxDataSize:      o.MaxDataSize,
		ChannelPrefix:    o.ChannelPrefix,
		UseShardedPubSub: o.UseShardedPubSub,
		RequestTimeout:   o.RequestTimeout,
	}
	if err := co.Validate(); err != nil {
		var ce *cluster.OptionsError
		if errors.As(err, &ce) {
			return o, &OptionsError{Field: ce.Field, Reason: ce.Reason}
		}
		return o, &OptionsError{Field: "Options", Reason: err.Error()}
	}
	co = co.Defaults()
	o.StreamName, o.StreamCount, o.MaxLen = co.StreamName, co.StreamCount, co.MaxLen
	o.MaxDataSize, o.ChannelPrefix, o.RequestTimeout = co.MaxDataSize, co.ChannelPrefix, co.RequestTimeout
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
