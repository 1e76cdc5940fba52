// Package redistest starts real redis-server processes for tests, and
// provides a small fault-injecting TCP proxy to put in front of them.
//
// Nothing here is a mock: every Server is a /usr/bin/redis-server child
// process listening on a free 127.0.0.1 port with its own temporary
// directory. The Redis that may already run on 127.0.0.1:6379 is never
// used. Packages using redistest can run their tests in parallel with each
// other: ports and directories are unique per server.
//
// # Standalone servers
//
//	s := redistest.StartStandalone(t, redistest.WithAOF())
//	s.Do("SET", "k", "v")
//	s.Restart()            // same port and dir; with AOF the key survives
//	v, err := s.Do("GET", "k")
//
// StartStandalone waits until the server answers PING and registers a
// t.Cleanup that SIGKILLs the whole process group (also when the test fails
// or panics). When the test has failed, the cleanup prints the last 30 lines
// of the server's log file with t.Logf. Children are started with Setpgid
// and Pdeathsig=SIGKILL from a goroutine locked to its OS thread, so they
// also die when the test binary itself is killed (for example by the
// go test -timeout).
//
// If redis-server (or, for clusters, redis-cli) is not on PATH the test
// FAILS with "redis-server not found: run `make test`, which installs it".
// Tests are never skipped because of a missing dependency.
//
// Ports come from FreePort: listen on 127.0.0.1:0, take the port, close the
// listener. Another process can grab the port before redis-server binds it;
// when redis-server then exits with "Address already in use" the start is
// retried on a new port (up to 5 times).
//
// # TLS
//
// WithTLS serves TLS only (rediss://), with a certificate authority and a
// server certificate for 127.0.0.1 and localhost generated with crypto/x509
// into the server's directory:
//
//	s := redistest.StartStandalone(t, redistest.WithTLS())
//	s.URL()       // rediss://127.0.0.1:port/0
//	s.TLSConfig() // trusts the CA; also s.CertPool(), s.CAFile()
//
// Do, Dial and the readiness checks then speak TLS; DialTLS dials any
// address (a Proxy in front of the server) with a given configuration.
// Clusters do not support it.
//
// # Raw commands
//
// Server.Do, Cluster.Do and Conn.Do speak RESP over a plain net.Conn so tests
// need no client library. Arguments are sent as bulk strings. Replies are
// returned as Go values:
//
//	simple string (+OK)        string
//	error (-ERR ...)           returned as the error, of type Error
//	integer (:1)               int64
//	bulk string ($)            string
//	null bulk / null array     nil
//	array (*)                  []any (a nested error is an Error value)
//	RESP3 (after HELLO 3)      null → nil, boolean → bool, double → float64,
//	                           big number → string, verbatim → string without
//	                           the "txt:" prefix, map → []any{k1, v1, k2, v2...},
//	                           set and push → []any, attributes are skipped
//
// Server.Do opens a new connection per call (authenticating when the server
// has a password or ACL user) and uses a 5 s deadline; DoTimeout takes the
// deadline explicitly, which is how a test observes a paused server.
//
// # Clusters
//
// StartCluster starts N cluster-enabled masters (own port, own cluster bus
// port set with cluster-port, own dir and nodes.conf, cluster-node-timeout
// 2000 ms), creates the cluster with
// "redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes"
// (N >= 3; for N < 3, which redis-cli refuses, slots are assigned with
// CLUSTER ADDSLOTSRANGE and nodes joined with CLUSTER MEET) and waits until
// every node reports cluster_state:ok, 16384 assigned slots and N known
// nodes. Cluster.Do follows -MOVED and -ASK redirections.
//
// A cluster client should be given all seed addresses: Cluster.Addrs(), or
// Cluster.URL(), which has the form
//
//	redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3
//
// understood by rueidis.ParseURL and go-redis ParseClusterURL.
//
// # Fault proxy
//
// NewProxy(t, target) listens on a free loopback port and forwards to target.
// Cut closes every connection and resets new ones until Restore; Blackhole
// stalls traffic (accepted connections get no bytes in either direction,
// data already read is held and delivered after Restore) to simulate a hang.
// Close, also registered with t.Cleanup, stops every goroutine the proxy
// started.
//
// # Test goroutine rule
//
// Functions and methods that take or hold a testing.TB report failures with
// t.Fatalf and so must be called from the test goroutine: StartStandalone,
// StartCluster, NewProxy, Stop, Kill, Restart, Pause, Resume, ClientPause,
// Cluster.WaitReady and Cluster.NodeForKey. The Do methods, Conn, Proxy
// state changes and the accessors are safe from any goroutine.
package redistest
