// Package cluster is the Redis Streams transport of the cluster adapter
// (package adapter), on github.com/redis/rueidis, wire compatible with
// Node's @socket.io/redis-streams-adapter 0.3.1: Go and Node nodes can share
// one Redis and serve one Socket.IO cluster.
//
//	tr, err := cluster.New(cluster.Options{URL: "redis://localhost:6379/0"})
//	if err != nil { ... }                       // invalid options only
//	defer tr.Close()
//	b, err := adapter.New(tr, adapter.Config{})
//	opts := socket.DefaultServerOptions()
//	opts.SetAdapter(b)
//
// # What goes where
//
// Durable messages (broadcasts, joins and leaves, disconnections) are
// written with XADD <stream> MAXLEN ~ MaxLen to the stream of their
// namespace: StreamName, or StreamName-i with i = HashCode(nsp) % StreamCount
// when StreamCount > 1 (see StreamKey), as Node computes it. The entry id is
// the message's offset, which connection state recovery appends to packets.
// Ephemeral messages (adapter.Message.Ephemeral: requests and liveness) are
// PUBLISHed as MessagePack to <ChannelPrefix>#<nsp>#, and responses to the
// private channel <ChannelPrefix>#<nsp>#<uid># of the requesting adapter
// (SPUBLISH / SSUBSCRIBE with UseShardedPubSub). ServerCount is PUBSUB
// NUMSUB (or SHARDNUMSUB) of the namespace's channel, summed over the nodes
// of a Redis Cluster, as Node counts.
//
// # Guarantees
//
// Reading. Each stream is read on its own dedicated connection, ReadCount
// entries at a time, in a transaction (MULTI; XREAD; XINFO STREAM; EXEC) so
// that the stream's counters describe the state the entries were read
// from; when there is nothing to read, an XREAD BLOCK BlockTime waits for
// new entries. Like Node's "$", a node gets what is
// written after it started; unlike "$", the start is resolved to a concrete
// entry id, and the reader keeps the id of the last entry it read. After any
// failure (connection cut, Redis restarted or paused) it reconnects with
// exponential backoff (100ms to 5s, jittered; never a busy loop) and resumes
// from that id: every entry written meanwhile is delivered, once, in order,
// as long as MAXLEN has not trimmed it. A blocked XREAD that gets no reply
// within BlockTime + RequestTimeout is abandoned with its connection.
//
// Trimmed gaps. If MAXLEN trimmed entries this node had not read (it was
// cut off, held back, or outpaced by a burst larger than MaxLen), the loss
// is detected exactly from the XINFO STREAM of the read's transaction
// (Redis 7+), logged at Error and counted in
// sockstream_cluster_stream_entries_trimmed_unread_total; the
// stream_lag_entries and stream_lag_seconds gauges warn before it happens.
// Size MaxLen for the longest outage to be survived. The lag gauges are
// kept current by a probe (XINFO STREAM, once a second, only for streams
// whose reader is not caught up): while Redis is unreachable, lag_seconds
// is the time since the node last knew it was caught up, an upper bound
// that keeps rising, and lag_entries keeps its last measured value.
//
// Writing. Durable messages go through a bounded, ordered outbox of
// PublishBufferSize messages, written by one goroutine with pipelined XADDs
// (PublishBatch hands whole batches over). While Redis is reachable,
// Publish returns the entry id; while it is not, Publish returns "" at once
// and the message waits, to be written in order when Redis is back. A full
// outbox refuses the message with an error wrapping adapter.ErrBufferFull
// (and sockstream_cluster_outbox_full_total): nothing is dropped silently.
// When the connection breaks with XADDs in flight, their replies are lost
// but Redis may have applied them: before sending them again the writer
// looks for them in the stream (by uid and contents, after the last id it
// knows it wrote), so each message is written exactly once. Ephemeral
// messages and responses are not buffered: they fail with the error, as
// the requests they belong to are bounded by a timeout anyway; while Redis
// is known to be unreachable they fail at once with adapter.ErrUnavailable.
//
// Foreign entries. Entries and pub/sub payloads that cannot be decoded
// (written by something else, or corrupt, or larger than MaxDataSize) are
// skipped with a log line (rate-limited to one a second at Warn) and
// counted in sockstream_cluster_messages_malformed_total by source and
// reason.
//
// Startup and readiness. New never waits for Redis: it connects in the
// background, retrying with backoff, and calls made in the meantime wait up
// to RequestTimeout for the first connection. Ready is false until Redis
// answers and every stream reader knows where to start, and false whenever
// a command fails for a connection reason (a PING every second keeps it
// current when nothing else flows); use it for readiness probes.
//
// Close refuses new publications, gives the outbox up to RequestTimeout to
// be flushed (messages still waiting then are counted as errors with reason
// "closed"), stops every goroutine and closes every connection.
//
// # Options
//
// The zero value of every field but the address is its default; those
// shared with the Node package have its defaults (streamName "socket.io",
// streamCount 1, maxLen 10000, readCount 100, blockTimeInMs 5000,
// channelPrefix "socket.io", useShardedPubSub false, onlyPlaintext false).
// The Redis address is a URL (redis://user:password@host:port/db, rediss://
// for TLS, redis://h1:p1?addr=h2:p2 for a cluster) or InitAddress; AUTH and
// ACL users come from the URL. RequestTimeout (default 5s) bounds every
// command but the blocking XREAD, the wait of Publish for the entry id, the
// dial and rueidis's connection write timeout. Metrics are registered on
// Options.Registerer only (see metrics.go for the list).
//
// # Connections
//
// A transport opens one shared, auto-pipelined client (commands, XADD,
// PUBLISH, NUMSUB; the client Client returns: one or two connections), one
// dedicated connection per stream for its blocking XREAD, whose reader
// serves every namespace of the stream, and one dedicated pub/sub
// connection for the whole node, on which the channels of every
// subscription (namespace adapter) are SUBSCRIBEd and UNSUBSCRIBEd as they
// come and go (pubsub.go): a namespace costs no connection and no goroutine
// of the transport. Only a second subscription of the same namespace on one
// transport gets a second pub/sub connection, because NUMSUB, with which
// nodes count each other, counts connections. With sharded pub/sub, the
// channels are grouped by the master serving their slot, one pub/sub
// connection per master (shard_map.go; the slot map follows -MOVED answers,
// sunsubscribe pushes and failovers). XRANGE with an exclusive
// start, used to reconcile lost XADD replies, needs Redis 6.2; gap
// detection needs Redis 7.
//
// # Measured
//
// On a 2-core machine shared with other work, Redis 7.0 on loopback,
// MaxFlushDelay 0 (BenchmarkPublish, BenchmarkPublishBatch): one Publish
// at a time, each waiting for its entry id, about 4,500 messages/s (220µs
// each); PublishBatch of 256 messages, which the adapter uses under load,
// about 20,000 messages/s (50µs per message), delivery to a second node
// included. A MaxFlushDelay above 0 only pays when many goroutines publish
// at once (many namespaces); for one namespace the outbox already
// pipelines every queued message in one round trip.
//
// # Redis Cluster
//
// With a Redis Cluster, set StreamCount > 1 so that namespaces spread over
// the shards (one dedicated reading connection per stream). Node writes the
// namespaces whose hash is negative to streams named with a negative index
// ("socket.io--2") that Node nodes never read; Go nodes read them too.
// Non-sharded pub/sub works cluster-wide; sharded pub/sub needs Redis 7.
package cluster
