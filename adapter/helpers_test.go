package adapter_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
	"github.com/sockstream/sockstream/internal/siotest"
)

// fastConfig is a Config with short liveness timings for tests.
func fastConfig() adapter.Config {
	return adapter.Config{
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		RequestTimeout:    3 * time.Second,
	}
}

// node is one socket.io server with the cluster adapter, on a loopback
// httptest server.
type node struct {
	t    *testing.T
	name string
	io   *socket.Server
	srv  *siotest.Server
	tr   *adaptertest.Transport
	b    *adapter.Builder
	reg  *prometheus.Registry
	url  string
}

type nodeOption func(*socket.ServerOptions, *adapter.Config)

func withCSR() nodeOption {
	return func(o *socket.ServerOptions, _ *adapter.Config) {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(60_000)
		csr.SetSkipMiddlewares(true)
		o.SetConnectionStateRecovery(csr)
	}
}

func withNoBatch() nodeOption { return nil } // marker handled in newNode

func newNode(t *testing.T, hub *adaptertest.Hub, name string, cfg adapter.Config, opts ...nodeOption) *node {
	t.Helper()
	n := &node{t: t, name: name, tr: hub.NewTransport(), reg: prometheus.NewRegistry()}
	so := socket.DefaultServerOptions()
	noBatch := false
	for _, o := range opts {
		if o == nil {
			noBatch = true
			continue
		}
		o(so, &cfg)
	}
	cfg.Registerer = n.reg
	if cfg.Logger == nil {
		cfg.Logger = siotest.Logger(t).With("node", name)
	}
	var tr adapter.Transport = n.tr
	if noBatch {
		tr = adaptertest.NoBatch(n.tr)
	}
	b, err := adapter.New(tr, cfg)
	if err != nil {
		t.Fatalf("adapter.New: %v", err)
	}
	n.b = b
	so.SetAdapter(b)
	n.srv = siotest.StartServer(t, name, so, func() { _ = n.tr.Close() })
	n.io, n.url = n.srv.IO, n.srv.URL
	n.setup("/")
	return n
}

// setup installs on namespace nspName the middleware the tests rely on: a
// socket joins the rooms of its "rooms" query parameter (comma separated)
// and gets {"user": <"user" query parameter>, "node": <node name>} as data,
// before the client sees "connect".
func (n *node) setup(nspName string) socket.Namespace {
	nsp := n.io.Of(nspName, nil)
	nsp.Use(siotest.JoinQueryRooms(func(q map[string]any) any {
		return map[string]any{"user": siotest.QueryValue(q, "user"), "node": n.name}
	}))
	return nsp
}

// adapter returns the cluster adapter of a namespace of n.
func (n *node) adapter(nsp string) *adapter.NamespaceAdapter {
	a := n.b.Adapter(nsp)
	if a == nil {
		n.t.Fatalf("%s: no adapter for %s", n.name, nsp)
	}
	return a
}

func (n *node) close() { n.srv.Close() }

// metric returns the value of a counter or gauge of n's registry (summed
// over the series matching labels).
func (n *node) metric(name string, labels map[string]string) float64 {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			match := true
			for k, v := range labels {
				if have[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

// newCluster starts n nodes on one hub and waits until they know each other.
func newCluster(t *testing.T, count int, cfg adapter.Config, opts ...nodeOption) (*adaptertest.Hub, []*node) {
	t.Helper()
	hub := adaptertest.NewHub()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, hub, fmt.Sprintf("n%d", i), cfg, opts...)
	}
	waitPeers(t, nodes, "/")
	return hub, nodes
}

// waitPeers waits until the adapter of nsp on every node sees the others.
func waitPeers(t *testing.T, nodes []*node, nsp string) {
	t.Helper()
	siotest.Eventually(t, 5*time.Second, "nodes see each other on "+nsp, func() bool {
		for _, n := range nodes {
			a := n.b.Adapter(nsp)
			if a == nil || a.AlivePeers() != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// eventually is siotest.Eventually, under the name metrics_test.go (another
// author's file) calls.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	siotest.Eventually(t, timeout, what, cond)
}
