package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultClusterNodeTimeout is the cluster-node-timeout (ms) of cluster
	// nodes. Override it with WithArgs("--cluster-node-timeout", "500").
	DefaultClusterNodeTimeout = 2000
	// clusterSlots is the number of hash slots of a Redis Cluster.
	clusterSlots = 16384
	// clusterReadyTimeout bounds StartCluster's and WaitReady's wait.
	clusterReadyTimeout = 20 * time.Second
	// maxRedirects bounds how many MOVED/ASK replies Cluster.Do follows.
	maxRedirects = 16
)

// Cluster is a Redis Cluster of masters without replicas, each one a Server.
type Cluster struct {
	t     testing.TB
	cfg   config
	nodes []*Server
}

// StartCluster starts masters cluster-enabled redis-server nodes, creates a
// cluster over them (redis-cli --cluster create for 3 or more masters,
// ADDSLOTSRANGE and MEET for fewer) and waits until every node reports
// cluster_state:ok with all 16384 slots assigned. Options apply to every
// node. Every node is killed by a t.Cleanup.
func StartCluster(t testing.TB, masters int, opts ...Option) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: StartCluster needs at least 1 master, got %d", masters)
	}
	cfg := config{nodeTimeout: DefaultClusterNodeTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.tls {
		t.Fatalf("redistest: StartCluster does not support WithTLS")
	}
	cfg.cluster = true
	c := &Cluster{t: t, cfg: cfg}
	for range masters {
		s := newServer(t, cfg)
		s.startFresh()
		c.nodes = append(c.nodes, s)
	}
	if masters >= 3 {
		c.createWithRedisCLI()
	} else {
		c.createManually()
	}
	c.WaitReady()
	return c
}

// Addrs returns the "127.0.0.1:port" address of every node, in node order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// Nodes returns the nodes, so that a test can Stop, Kill, Pause or Restart
// one of them. The slice is a copy; the servers are shared.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// URL returns a seed URL listing every node:
//
//	redis://[user:pw@]127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3
//
// the form rueidis.ParseURL and go-redis ParseClusterURL take for several
// initial addresses. A cluster URL selects no database.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := url.URL{Scheme: "redis", Host: addrs[0]}
	if c.cfg.password != "" {
		u.User = url.UserPassword(c.cfg.user, c.cfg.password)
	}
	q := url.Values{}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Do runs one command on the cluster, starting at the first node that is
// running and not paused and following -MOVED and -ASK redirections, each
// hop on a new connection with a DefaultDoTimeout deadline.
func (c *Cluster) Do(args ...string) (any, error) {
	var seed string
	for _, n := range c.nodes {
		if n.usable() {
			seed = n.Addr()
			break
		}
	}
	if seed == "" {
		return nil, errors.New("redistest: no cluster node is running")
	}
	addr, asking := seed, false
	for range maxRedirects {
		v, err := doOnce(addr, nil, c.cfg.user, c.cfg.password, DefaultDoTimeout, asking, args)
		var re Error
		if !errors.As(err, &re) {
			return v, err
		}
		f := strings.Fields(string(re))
		if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
			return v, err
		}
		addr, asking = redirectAddr(f[2]), f[0] == "ASK"
	}
	return nil, fmt.Errorf("redistest: more than %d redirections for %q", maxRedirects, args)
}

// redirectAddr turns the endpoint of a MOVED/ASK reply into a dialable
// address; an empty or "?" host means the node we asked.
func redirectAddr(endpoint string) string {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil || host == "" || host == "?" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// NodeForKey returns the node that owns key's hash slot, as seen by the
// first running node (CLUSTER KEYSLOT and CLUSTER SLOTS).
func (c *Cluster) NodeForKey(key string) *Server {
	c.t.Helper()
	v, err := c.Do("CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT %q: %v", key, err)
	}
	slot, _ := v.(int64)
	v, err = c.Do("CLUSTER", "SLOTS")
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	ranges, _ := v.([]any)
	for _, r := range ranges {
		rr, _ := r.([]any)
		if len(rr) < 3 {
			continue
		}
		lo, _ := rr[0].(int64)
		hi, _ := rr[1].(int64)
		master, _ := rr[2].([]any)
		if slot < lo || slot > hi || len(master) < 2 {
			continue
		}
		port, _ := master[1].(int64)
		for _, n := range c.nodes {
			if int64(n.Port()) == port {
				return n
			}
		}
	}
	c.t.Fatalf("redistest: no node owns slot %d of key %q (CLUSTER SLOTS %v)", slot, key, v)
	return nil
}

// WaitReady waits until every running node reports cluster_state:ok,
// cluster_slots_assigned:16384 and knows all nodes of the cluster. Call it
// after restarting nodes. It fails the test after 20 s.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		err := c.checkReady()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: cluster not ready within %v: %v", clusterReadyTimeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *Cluster) checkReady() error {
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
	}
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		v, err := n.DoTimeout(time.Second, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr(), err)
		}
		info, _ := v.(string)
		got := map[string]string{}
		for line := range strings.SplitSeq(info, "\r\n") {
			if k, val, ok := strings.Cut(line, ":"); ok {
				got[k] = val
			}
		}
		for k, w := range want {
			if got[k] != w {
				return fmt.Errorf("%s: %s is %q, want %q", n.Addr(), k, got[k], w)
			}
		}
	}
	return nil
}

func (c *Cluster) createWithRedisCLI() {
	c.t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		c.t.Fatalf("redis-cli not found: run `make test`, which installs it (%v)", err)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if c.cfg.password != "" {
		if c.cfg.user != "" {
			args = append(args, "--user", c.cfg.user)
		}
		args = append(args, "--pass", c.cfg.password, "--no-auth-warning")
	}
	cmd := exec.Command(cli, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("redistest: redis-cli --cluster create: %v", err)
	}
	timer := time.AfterFunc(30*time.Second, func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	err = cmd.Wait()
	timer.Stop()
	if err != nil {
		c.t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
}

// createManually builds a cluster of fewer than 3 masters, which redis-cli
// refuses to create: each node takes an even share of the slots and a
// distinct config epoch, then node 0 meets the others on their bus ports.
func (c *Cluster) createManually() {
	c.t.Helper()
	n := len(c.nodes)
	for i, s := range c.nodes {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		for _, cmd := range [][]string{
			{"CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i + 1)},
			{"CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)},
		} {
			if _, err := s.Do(cmd...); err != nil {
				c.t.Fatalf("redistest: %s on %s: %v", strings.Join(cmd, " "), s.Addr(), err)
			}
		}
	}
	for _, s := range c.nodes[1:] {
		s.mu.Lock()
		port, bus := s.port, s.busPort
		s.mu.Unlock()
		if _, err := c.nodes[0].Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(port), strconv.Itoa(bus)); err != nil {
			c.t.Fatalf("redistest: CLUSTER MEET %s: %v", s.Addr(), err)
		}
	}
}
