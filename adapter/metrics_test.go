package adapter_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sockstream/sockstream/adapter"
)

// labelsOf returns the label sets of the series of family name in n's
// registry.
func labelsOf(n *node, name string) []map[string]string {
	n.t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		n.t.Fatalf("gather: %v", err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

// peersSeen returns the peer uids of n's sockstream_adapter_peer_last_seen_seconds
// for namespace "/", sorted.
func peersSeen(n *node) []string {
	var uids []string
	for _, l := range labelsOf(n, "sockstream_adapter_peer_last_seen_seconds") {
		if l["nsp"] == "/" {
			uids = append(uids, l["peer"])
		}
	}
	slices.Sort(uids)
	return uids
}

// TestPeerMetrics: each node reports one silence series per live peer,
// named by the uid the peer's own sockstream_adapter_info gives, and drops
// the series of a peer that leaves; the declared-dead counter moves.
func TestPeerMetrics(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 3, fastConfig())
	uids := make([]string, len(nodes))
	for i, n := range nodes {
		uids[i] = n.a.UID()
		info := labelsOf(n, "sockstream_adapter_info")
		if !slices.ContainsFunc(info, func(l map[string]string) bool { return l["nsp"] == "/" && l["uid"] == uids[i] }) {
			t.Errorf("%s: sockstream_adapter_info = %v, want uid %s for /", n.name, info, uids[i])
		}
	}
	others := func(i int, alive ...int) []string {
		var out []string
		for _, j := range alive {
			if j != i {
				out = append(out, uids[j])
			}
		}
		slices.Sort(out)
		return out
	}
	for i, n := range nodes {
		if got, want := peersSeen(n), others(i, 0, 1, 2); !slices.Equal(got, want) {
			t.Errorf("%s sees peers %v, want %v", n.name, got, want)
		}
		if age := n.metric("sockstream_adapter_peer_last_seen_seconds", map[string]string{"peer": others(i, 0, 1, 2)[0]}); age < 0 || age > 1 {
			t.Errorf("%s: last seen %v s ago with a 100ms heartbeat", n.name, age)
		}
	}

	nodes[2].close()
	for i, n := range nodes[:2] {
		eventually(t, 5*time.Second, n.name+" drops the closed peer's series", func() bool {
			return slices.Equal(peersSeen(n), others(i, 0, 1))
		})
		if got := n.metric("sockstream_adapter_peers_declared_dead_total", nil); got != 1 {
			t.Errorf("%s: peers declared dead = %v, want 1", n.name, got)
		}
		if got := n.metric("sockstream_adapter_peers_alive", map[string]string{"nsp": "/"}); got != 1 {
			t.Errorf("%s: peers alive = %v, want 1", n.name, got)
		}
	}
}

// TestPeerMetricsSharedRegistry: two Builders on one registry (two servers
// in one process) share the collector; a peer both see is reported once.
func TestPeerMetricsSharedRegistry(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	// A third Builder registering on node 0's registry reuses its metrics.
	cfg := fastConfig()
	cfg.Registerer = nodes[0].reg
	b2, err := adapter.New(nodes[0].tr, cfg)
	if err != nil {
		t.Fatalf("second Builder on the same registry: %v", err)
	}
	ns2 := newTestNS("/", "n0-bis")
	a2 := b2.New(ns2)
	ns2.a.Store(a2)
	defer a2.Close()
	uid1 := nodes[1].a.UID()
	// Both adapters of node 0 see node 1; node 1 sees both.
	eventually(t, 5*time.Second, "node 1 sees the second adapter", func() bool { return nodes[1].a.AlivePeers() == 2 })
	eventually(t, 5*time.Second, "the second adapter sees node 1", func() bool {
		return b2.Adapter("/") != nil && slices.Contains(peerUIDs(b2.Adapter("/")), uid1)
	})
	if _, err := nodes[0].reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	var seen []string
	for _, p := range peersSeen(nodes[0]) {
		if p == uid1 {
			seen = append(seen, p)
		}
	}
	if len(seen) != 1 {
		t.Errorf("node 0 reports node 1 %d times, want once", len(seen))
	}
	if got := len(labelsOf(nodes[0], "sockstream_adapter_info")); got != 2 {
		t.Errorf("node 0 has %d sockstream_adapter_info series, want 2 (one per adapter)", got)
	}
}

func peerUIDs(a *adapter.NamespaceAdapter) []string {
	var out []string
	for _, p := range a.Peers() {
		out = append(out, p.UID)
	}
	return out
}

// TestPeersAliveSeriesOfRecreatedNamespace: a namespace created again
// while its previous adapter is still closing keeps its peers_alive
// series: the old adapter's Close removes the series only while it is
// the namespace's newest adapter.
func TestPeersAliveSeriesOfRecreatedNamespace(t *testing.T) {
	t.Parallel()
	nodes := hubCluster(t, 2, fastConfig())
	n := nodes[0]
	has := func() bool {
		for _, l := range labelsOf(n, "sockstream_adapter_peers_alive") {
			if l["nsp"] == "/x" {
				return true
			}
		}
		return false
	}
	old := n.attach(newTestNS("/x", n.name))
	if !has() {
		t.Fatal("no peers_alive series for /x")
	}
	recreated := n.attach(newTestNS("/x", n.name))
	t.Cleanup(func() { _ = recreated.Close() })
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("closing the previous adapter of /x removed the series of the new one")
	}
	if err := recreated.Close(); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("the series of /x is left after its last adapter closed")
	}
}
