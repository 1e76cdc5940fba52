package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// errNotConnected is what commands fail with before the first connection
// to Redis succeeded.
var errNotConnected = errors.New("cluster: not connected to Redis yet")

// errBuiltTooEarly is returned for a command built (B()) before the
// connection was made and sent once connected to a Redis Cluster: it was
// built without its key slot.
var errBuiltTooEarly = errors.New("cluster: command built before the connection to the Redis Cluster was made; build it again")

// lazyClient is the rueidis.Client that Transport.Client returns. rueidis
// connects when a client is created and fails when Redis is down, while a
// Transport must start (and a server with it) whatever the state of Redis.
// So until the real client exists, lazyClient forwards to a placeholder
// whose connections always fail to dial: every command fails fast with
// errNotConnected, a connection error like any other.
type lazyClient struct {
	placeholder rueidis.Client
	real        atomic.Pointer[rueidis.Client]
	mu          sync.Mutex
	closed      bool
}

var _ rueidis.Client = (*lazyClient)(nil)

func newLazyClient() (*lazyClient, error) {
	ph, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{"not-connected.invalid:0"},
		ForceSingleClient: true,
		DisableRetry:      true,
		DisableCache:      true,
		DialCtxFn: func(context.Context, string, *net.Dialer, *tls.Config) (net.Conn, error) {
			return nil, errNotConnected
		},
	})
	if ph == nil {
		return nil, err
	}
	return &lazyClient{placeholder: ph}, nil
}

// set installs the connected client; it reports false (and the caller
// closes c) if the lazyClient was closed meanwhile.
func (l *lazyClient) set(c rueidis.Client) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.real.Store(&c)
	return true
}

func (l *lazyClient) get() rueidis.Client {
	if c := l.real.Load(); c != nil {
		return *c
	}
	return l.placeholder
}

// tooEarly reports whether cmd was built by the placeholder's builder (no
// slot) and would go to a cluster client, which needs the slot.
func (l *lazyClient) tooEarly(c rueidis.Client, cmd rueidis.Completed) bool {
	return c != l.placeholder && c.Mode() == rueidis.ClientModeCluster && cmd.Slot()&noSlot != 0
}

// noSlot is the bit rueidis sets in the slot of commands built by a
// standalone builder.
const noSlot = uint16(1 << 15)

func (l *lazyClient) B() rueidis.Builder { return l.get().B() }

func (l *lazyClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c := l.get()
	if l.tooEarly(c, cmd) {
		return rueidis.NewErrorResult(errBuiltTooEarly)
	}
	return c.Do(ctx, cmd)
}

func (l *lazyClient) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	c := l.get()
	for _, cmd := range multi {
		if l.tooEarly(c, cmd) {
			out := make([]rueidis.RedisResult, len(multi))
			for i := range out {
				out[i] = rueidis.NewErrorResult(errBuiltTooEarly)
			}
			return out
		}
	}
	return c.DoMulti(ctx, multi...)
}

func (l *lazyClient) Receive(ctx context.Context, subscribe rueidis.Completed, fn func(msg rueidis.PubSubMessage)) error {
	c := l.get()
	if l.tooEarly(c, subscribe) {
		return errBuiltTooEarly
	}
	return c.Receive(ctx, subscribe, fn)
}

func (l *lazyClient) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	return l.get().DoCache(ctx, cmd, ttl)
}

func (l *lazyClient) DoMultiCache(ctx context.Context, multi ...rueidis.CacheableTTL) []rueidis.RedisResult {
	return l.get().DoMultiCache(ctx, multi...)
}

func (l *lazyClient) DoStream(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResultStream {
	c := l.get()
	if l.tooEarly(c, cmd) {
		return rueidis.NewErrorResultStream(errBuiltTooEarly)
	}
	return c.DoStream(ctx, cmd)
}

func (l *lazyClient) DoMultiStream(ctx context.Context, multi ...rueidis.Completed) rueidis.MultiRedisResultStream {
	return l.get().DoMultiStream(ctx, multi...)
}

func (l *lazyClient) Dedicated(fn func(rueidis.DedicatedClient) error) error {
	return l.get().Dedicated(fn)
}

func (l *lazyClient) Dedicate() (rueidis.DedicatedClient, func()) { return l.get().Dedicate() }

func (l *lazyClient) Nodes() map[string]rueidis.Client { return l.get().Nodes() }

func (l *lazyClient) Mode() rueidis.ClientMode { return l.get().Mode() }

// Close closes the real client and the placeholder. The Transport calls it
// from its own Close; users of Transport.Client must not.
func (l *lazyClient) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if c := l.real.Load(); c != nil {
		(*c).Close()
	}
	l.placeholder.Close()
}
