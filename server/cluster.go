package server

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/recovery"
)

// RedisConfig clusters the server over Redis Streams: with URL set, the
// server uses sockstream's cluster adapter (wire compatible with Node's
// @socket.io/redis-streams-adapter) over Redis instead of an in-memory
// transport, and broadcasts, rooms operations, FetchSockets and server-side
// emits reach every server on the same Redis and stream. Zero fields take
// the defaults of package cluster, which are Node's.
type RedisConfig struct {
	// URL is the Redis server, redis://[user:password@]host:port[/db] or
	// rediss:// for TLS; a Redis Cluster is
	// redis://host1:port1?addr=host2:port2&addr=host3:port3. Empty means no
	// clustering (the same adapter over an in-memory transport).
	URL string

	// StreamName is the stream (or, with StreamCount > 1, the prefix of the
	// streams) the servers share. Default "socket.io", as Node.
	StreamName string
	// StreamCount spreads the namespaces over that many streams, to spread
	// the load over the shards of a Redis Cluster. Default 1.
	StreamCount int
	// MaxLen is the approximate maximum length of each stream. Default
	// 10000.
	MaxLen int64
	// ChannelPrefix is the prefix of the pub/sub channels (heartbeats,
	// requests and responses). Default "socket.io".
	ChannelPrefix string
	// ShardedPubSub uses SPUBLISH/SSUBSCRIBE (Redis 7+), for Redis Cluster.
	ShardedPubSub bool

	// HeartbeatInterval is how often each server tells the others it is
	// alive. Default 5s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a silent server is still counted, for
	// the requests that wait for every server's answer. Default 10s; it
	// must exceed HeartbeatInterval.
	HeartbeatTimeout time.Duration
	// RequestTimeout bounds FetchSockets and ServerSideEmitWithAck across
	// the cluster, and each Redis command. Default 5s.
	RequestTimeout time.Duration
}

// Enabled reports whether the server clusters over Redis.
func (r RedisConfig) Enabled() bool { return r.URL != "" }

// clusterOptions is r as the options of the cluster transport, which
// declare the Redis options once, with their defaults and their checks:
// RedisConfig only names them for flags and environment variables.
func (r RedisConfig) clusterOptions() cluster.Options {
	return cluster.Options{
		URL:               r.URL,
		StreamName:        r.StreamName,
		StreamCount:       r.StreamCount,
		MaxLen:            r.MaxLen,
		ChannelPrefix:     r.ChannelPrefix,
		UseShardedPubSub:  r.ShardedPubSub,
		HeartbeatInterval: r.HeartbeatInterval,
		HeartbeatTimeout:  r.HeartbeatTimeout,
		RequestTimeout:    r.RequestTimeout,
	}
}

// withDefaults sets every zero field to cluster's default.
func (r RedisConfig) withDefaults() RedisConfig {
	d := r.clusterOptions().Defaults()
	r.StreamName, r.StreamCount, r.MaxLen, r.ChannelPrefix = d.StreamName, d.StreamCount, d.MaxLen, d.ChannelPrefix
	r.HeartbeatInterval, r.HeartbeatTimeout, r.RequestTimeout = d.HeartbeatInterval, d.HeartbeatTimeout, d.RequestTimeout
	return r
}

// redisFlags names the fields of cluster.Options that RedisConfig sets by
// their flags, for configuration errors.
var redisFlags = map[string]string{
	"URL":               "redis",
	"StreamName":        "redis-stream-name",
	"StreamCount":       "redis-stream-count",
	"MaxLen":            "redis-max-len",
	"ChannelPrefix":     "redis-channel-prefix",
	"UseShardedPubSub":  "redis-sharded-pubsub",
	"HeartbeatInterval": "redis-heartbeat-interval",
	"HeartbeatTimeout":  "redis-heartbeat-timeout",
	"RequestTimeout":    "redis-request-timeout",
}

// validate checks r with cluster.Options.Validate (an empty URL passes: no
// clustering); options are named by their flags.
func (r RedisConfig) validate() error {
	err := r.clusterOptions().Validate()
	var oe *cluster.OptionsError
	if errors.As(err, &oe) {
		opt, ok := redisFlags[oe.Field]
		if !ok {
			opt = "redis"
		}
		return &ConfigError{Option: opt, Reason: oe.Reason}
	}
	return err
}

// registerFlags defines the flags of RedisConfig; d holds the defaults.
func (r *RedisConfig) registerFlags(fs *flag.FlagSet, d RedisConfig) {
	fs.StringVar(&r.URL, "redis", d.URL, "Redis URL to cluster over, redis://host:port (env SOCKSTREAM_REDIS_URL); empty: single node")
	fs.StringVar(&r.StreamName, "redis-stream-name", d.StreamName, "Redis stream shared by the servers (env SOCKSTREAM_REDIS_STREAM_NAME)")
	fs.IntVar(&r.StreamCount, "redis-stream-count", d.StreamCount, "number of streams the namespaces are spread over (env SOCKSTREAM_REDIS_STREAM_COUNT)")
	fs.Int64Var(&r.MaxLen, "redis-max-len", d.MaxLen, "approximate maximum length of each stream (env SOCKSTREAM_REDIS_MAX_LEN)")
	fs.StringVar(&r.ChannelPrefix, "redis-channel-prefix", d.ChannelPrefix, "prefix of the Redis pub/sub channels (env SOCKSTREAM_REDIS_CHANNEL_PREFIX)")
	fs.BoolVar(&r.ShardedPubSub, "redis-sharded-pubsub", d.ShardedPubSub, "use sharded pub/sub, Redis 7+ (env SOCKSTREAM_REDIS_SHARDED_PUBSUB)")
	fs.DurationVar(&r.HeartbeatInterval, "redis-heartbeat-interval", d.HeartbeatInterval, "interval between two heartbeats of a server (env SOCKSTREAM_REDIS_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&r.HeartbeatTimeout, "redis-heartbeat-timeout", d.HeartbeatTimeout, "silence after which a server is no longer counted (env SOCKSTREAM_REDIS_HEARTBEAT_TIMEOUT)")
	fs.DurationVar(&r.RequestTimeout, "redis-request-timeout", d.RequestTimeout, "bound on cluster requests and Redis commands (env SOCKSTREAM_REDIS_REQUEST_TIMEOUT)")
}

// setupAdapter picks the adapter the namespaces use, unless a WithAdapter
// option gave one: the cluster adapter over Redis Streams when Config.Redis
// is enabled, else the same adapter core over an in-memory transport (with
// a memory log and session store when recovery is on). One delivery path
// either way. New calls it once the metrics are registered.
func (s *Server) setupAdapter(o *options) error {
	if o.builder != nil {
		return nil
	}
	if s.cfg.Redis.Enabled() {
		opt, err := clusterOption(s.cfg.Redis, s.cfg.Recovery.Enabled, s.log, s.registry)
		if err != nil {
			return err
		}
		opt(o)
		return nil
	}
	acfg := adapter.Config{Logger: s.log, Registerer: s.registry}
	var plog *recovery.MemoryLog
	var closeStore func() error
	if s.cfg.Recovery.Enabled {
		m, err := recovery.NewMetrics(s.registry)
		if err != nil {
			return fmt.Errorf("recovery metrics: %w", err)
		}
		plog = recovery.NewMemoryLog(recovery.MemoryLogOptions{MaxAge: s.cfg.Recovery.MaxDisconnection})
		store := recovery.NewMemoryStore(recovery.MemoryStoreOptions{Logger: s.log})
		acfg.Sessions = &recovery.Sessions{Store: store, Log: plog, Metrics: m, Logger: s.log}
		closeStore = store.Close
	}
	tr := recovery.NewLocalTransport(plog)
	b, err := adapter.New(tr, acfg)
	if err != nil {
		err = fmt.Errorf("adapter: %w", err)
		if closeStore != nil {
			err = errors.Join(err, closeStore())
		}
		return errors.Join(err, tr.Close())
	}
	closeAll := tr.Close
	if closeStore != nil {
		closeAll = func() error { return errors.Join(tr.Close(), closeStore()) }
	}
	// The in-memory transport is always ready: /readyz needs no check.
	WithAdapter(b, nil, closeAll)(o)
	return nil
}

// clusterOption builds what clusters a server over Redis as r says: the
// Redis Streams transport, the adapter over it, /readyz following the
// transport's readiness, and the transport closed at Shutdown, after the
// clients and the namespace adapters. The transport connects in the
// background: New does not wait for Redis, and /readyz answers 503 until
// Redis answers. r has its defaults applied.
//
// With recovery, sessions are kept in Redis and the missed packets read
// from the stream, as Node's adapter does: a client recovers on any server
// of the cluster.
func clusterOption(r RedisConfig, recovering bool, log *slog.Logger, reg prometheus.Registerer) (Option, error) {
	opts := r.clusterOptions()
	opts.Logger, opts.Registerer = log, reg
	tr, err := cluster.New(opts)
	if err != nil {
		return nil, fmt.Errorf("redis cluster transport: %w", err)
	}
	acfg := adapter.Config{
		HeartbeatInterval: r.HeartbeatInterval,
		HeartbeatTimeout:  r.HeartbeatTimeout,
		RequestTimeout:    r.RequestTimeout,
		Logger:            log,
		Registerer:        reg,
	}
	if recovering {
		sessions, err := redisSessions(tr, log, reg)
		if err != nil {
			return nil, errors.Join(err, tr.Close())
		}
		acfg.Sessions = sessions
	}
	b, err := adapter.New(tr, acfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cluster adapter: %w", err), tr.Close())
	}
	u, _ := url.Parse(r.URL)
	log.Info("sockstream clustering over Redis Streams", "redis", u.Redacted(), "stream", r.StreamName, "streams", r.StreamCount, "recovery", recovering)
	return WithAdapter(b, tr.Ready, tr.Close), nil
}

// redisSessions is connection state recovery over the transport's client:
// sessions under Node's keys, missed packets read from the streams the
// transport writes.
func redisSessions(tr *cluster.Transport, log *slog.Logger, reg prometheus.Registerer) (*recovery.Sessions, error) {
	m, err := recovery.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("recovery metrics: %w", err)
	}
	return &recovery.Sessions{
		Store:   tr.SessionStore(),
		Log:     tr.StreamLog(cluster.StreamLogOptions{Metrics: m}),
		Metrics: m,
		Logger:  log,
	}, nil
}
