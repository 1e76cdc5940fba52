package cluster_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
)

// TestTLSRediss runs two Go nodes on a Redis that speaks TLS only, with an
// ACL user, both given by the rediss:// URL; the certificate authority is
// set with Options.ConfigureClient. Every connection of a transport (the
// shared one, the stream readers' and the pub/sub ones) goes over TLS:
// broadcasts (stream), serverSideEmit with acks and fetchSockets (pub/sub)
// and serverCount work across the nodes. A transport that does not trust the
// server's authority, or that speaks plaintext, fails to connect.
func TestTLSRediss(t *testing.T) {
	t.Parallel()
	s := redistest.StartStandalone(t, redistest.WithTLS(), redistest.WithACLUser("sock", "pa55"))
	url := s.URL()
	if !strings.HasPrefix(url, "rediss://sock:pa55@") {
		t.Fatalf("URL %q", url)
	}
	var tlsFromURL atomic.Int32
	trust := func(co *rueidis.ClientOption) {
		// rueidis.ParseURL sets a TLS configuration (server name from the
		// URL's host) for rediss://: add the authority to it.
		if co.TLSConfig == nil {
			return
		}
		tlsFromURL.Add(1)
		co.TLSConfig.RootCAs = s.CertPool()
	}
	cfg := fltDefault
	cfg.configureClient = trust
	a := startFltNode(t, "a", url, cfg)
	b := startFltNode(t, "b", url, cfg)
	if n := tlsFromURL.Load(); n != 2 {
		t.Fatalf("%d of 2 transports got a TLS configuration from the URL", n)
	}
	fltWaitPeers(t, a, b)
	c := siotest.StartClients(t)
	sa := c.Connect(t, "ca", a.url(), map[string]string{"rooms": "r"}, nil).Sid
	sb := c.Connect(t, "cb", b.url(), nil, nil).Sid

	if err := a.srv.Srv.Emit("from-a", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Srv.To("r").Emit("from-b-to-r", []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	c.WaitN(t, "from-a on both clients", 2, 10*time.Second, siotest.IsEvent("from-a"))
	ev := c.Wait(t, "from-b-to-r", 10*time.Second, siotest.IsEvent("from-b-to-r"))
	if ev.ID != "ca" || len(ev.Args) != 1 || !slices.Equal(siotest.Bin(t, ev.Args[0]), []byte{0, 1, 2}) {
		t.Errorf("from-b-to-r: %+v", ev)
	}
	siotest.Eventually(t, 10*time.Second, "both sockets seen from b", func() bool {
		ids, err := fltFetch(b)
		return err == nil && slices.Equal(ids, siotest.Sorted(sa, sb))
	})
	if got, err := fltPing(a); err != nil || !slices.Equal(got, []string{"pong-b"}) {
		t.Errorf("serverSideEmitWithAck from a = %v, %v", got, err)
	}
	if n, err := a.tr.ServerCount(context.Background(), "/"); err != nil || n != 2 {
		t.Errorf("ServerCount = %d, %v; want 2", n, err)
	}
	if got := c.Receivers("from-b-to-r"); !slices.Equal(got, []string{"ca"}) {
		t.Errorf("from-b-to-r received by %v", got)
	}

	// Without the authority (the system roots do not hold it), and in
	// plaintext on the TLS port: connections fail, the transport is not
	// ready.
	for name, tc := range map[string]struct {
		o    cluster.Options
		want string // in the logged connection error
	}{
		"unknown authority": {cluster.Options{URL: url, ConfigureClient: func(co *rueidis.ClientOption) {
			if co.TLSConfig != nil {
				co.TLSConfig.RootCAs = x509.NewCertPool()
			}
		}}, "unknown authority"},
		"plaintext": {cluster.Options{URL: "redis://sock:pa55@" + s.Addr()}, ""},
	} {
		var logs tlsLogBuffer
		tc.o.RequestTimeout = 500 * time.Millisecond
		tc.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		tr, err := cluster.New(tc.o)
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		siotest.Eventually(t, 10*time.Second, name+": a failed connection attempt", func() bool {
			return strings.Contains(logs.String(), "cannot connect to Redis")
		})
		if tr.Ready() {
			t.Errorf("%s: ready", name)
		}
		if !strings.Contains(logs.String(), tc.want) {
			t.Errorf("%s: the connection error does not say %q:\n%s", name, tc.want, logs.String())
		}
		if err := tr.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}

// tlsLogBuffer is a log destination safe for concurrent writers.
type tlsLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *tlsLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *tlsLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
