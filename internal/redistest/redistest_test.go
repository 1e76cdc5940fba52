package redistest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustDo(t *testing.T, do func(...string) (any, error), args ...string) any {
	t.Helper()
	v, err := do(args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return v
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestStandalonePingSetGet(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)

	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.Port() == 6379 {
		t.Fatalf("Addr = %q", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	if v := mustDo(t, s.Do, "PING"); v != "PONG" {
		t.Fatalf("PING = %#v", v)
	}
	if v := mustDo(t, s.Do, "SET", "k", "hello\r\nworld"); v != "OK" {
		t.Fatalf("SET = %#v", v)
	}
	if v := mustDo(t, s.Do, "GET", "k"); v != "hello\r\nworld" {
		t.Fatalf("GET = %#v", v)
	}
	if v := mustDo(t, s.Do, "GET", "missing"); v != nil {
		t.Fatalf("GET missing = %#v", v)
	}
	if v := mustDo(t, s.Do, "XADD", "s", "*", "f", "v"); !strings.Contains(v.(string), "-") {
		t.Fatalf("XADD = %#v", v)
	}
	if v := mustDo(t, s.Do, "XLEN", "s"); v != int64(1) {
		t.Fatalf("XLEN = %#v", v)
	}
	// Malformed entry: odd number of field/value arguments.
	_, err := s.Do("XADD", "s", "*", "f")
	var re Error
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "ERR") {
		t.Fatalf("malformed XADD error = %v", err)
	}
	v := mustDo(t, s.Do, "XRANGE", "s", "-", "+")
	entries, ok := v.([]any)
	if !ok || len(entries) != 1 {
		t.Fatalf("XRANGE = %#v", v)
	}
	if fields := entries[0].([]any)[1]; fmt.Sprint(fields) != "[f v]" {
		t.Fatalf("XRANGE fields = %#v", fields)
	}
	// Never the shared Redis: the pid answering is our child's.
	info := mustDo(t, s.Do, "INFO", "server").(string)
	if !strings.Contains(info, fmt.Sprintf("process_id:%d\r\n", s.PID())) {
		t.Fatalf("INFO server does not show pid %d", s.PID())
	}
	if !strings.Contains(info, "tcp_port:"+fmt.Sprint(s.Port())) {
		t.Fatalf("INFO server does not show port %d", s.Port())
	}
	if dir := mustDo(t, s.Do, "CONFIG", "GET", "dir").([]any); dir[1] != s.Dir() {
		t.Fatalf("dir = %v, want %s", dir, s.Dir())
	}
	if save := mustDo(t, s.Do, "CONFIG", "GET", "save").([]any); save[1] != "" {
		t.Fatalf("save = %#v, want empty", save)
	}
}

func TestRESP3AndConn(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	hello, err := c.Do("HELLO", "3")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := hello.([]any); !ok || len(m)%2 != 0 || m[0] != "server" {
		t.Fatalf("HELLO 3 = %#v", hello)
	}
	if _, err := c.Do("HSET", "h", "a", "1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Do("HGETALL", "h"); fmt.Sprint(v) != "[a 1]" {
		t.Fatalf("HGETALL = %#v", v)
	}
	if v, _ := c.Do("GET", "missing"); v != nil {
		t.Fatalf("RESP3 null = %#v", v)
	}
	if v, _ := c.Do("INCRBYFLOAT", "f", "1.5"); v != "1.5" {
		t.Fatalf("INCRBYFLOAT = %#v", v)
	}
	if v, _ := c.Do("ZADD", "z", "2.5", "m"); v != int64(1) {
		t.Fatalf("ZADD = %#v", v)
	}
	if v, _ := c.Do("ZSCORE", "z", "m"); v != 2.5 {
		t.Fatalf("ZSCORE (RESP3 double) = %#v", v)
	}
	// Pipelining and an error inside EXEC's array.
	for _, cmd := range [][]string{{"MULTI"}, {"SET", "x", "1"}, {"LPUSH", "x", "y"}, {"EXEC"}} {
		if err := c.Send(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := c.Receive(); err != nil {
			t.Fatal(err)
		}
	}
	v, err := c.Receive()
	if err != nil {
		t.Fatal(err)
	}
	res := v.([]any)
	if res[0] != "OK" {
		t.Fatalf("EXEC[0] = %#v", res[0])
	}
	if e, ok := res[1].(Error); !ok || !strings.HasPrefix(string(e), "WRONGTYPE") {
		t.Fatalf("EXEC[1] = %#v", res[1])
	}
}

func TestPasswordAndACLUser(t *testing.T) {
	t.Parallel()
	pw := StartStandalone(t, WithPassword("s3cret"))
	if v := mustDo(t, pw.Do, "PING"); v != "PONG" {
		t.Fatalf("PING = %#v", v)
	}
	if want := "redis://:s3cret@" + pw.Addr() + "/0"; pw.URL() != want {
		t.Fatalf("URL = %q, want %q", pw.URL(), want)
	}
	if _, err := doOnce(pw.Addr(), nil, "", "", time.Second, false, []string{"PING"}); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("unauthenticated PING error = %v", err)
	}

	acl := StartStandalone(t, WithACLUser("alice", "pw1"))
	if v := mustDo(t, acl.Do, "ACL", "WHOAMI"); v != "alice" {
		t.Fatalf("ACL WHOAMI = %#v", v)
	}
	u, err := url.Parse(acl.URL())
	if err != nil || u.User.Username() != "alice" {
		t.Fatalf("URL = %q (%v)", acl.URL(), err)
	}
	if p, _ := u.User.Password(); p != "pw1" {
		t.Fatalf("URL password = %q", p)
	}
	if _, err := doOnce(acl.Addr(), nil, "default", "pw1", time.Second, false, []string{"PING"}); err == nil {
		t.Fatal("default user could authenticate")
	}
}

func TestAOFRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t, WithAOF())
	port, pid := s.Port(), s.PID()
	mustDo(t, s.Do, "SET", "durable", "yes")

	s.Restart()
	if s.Port() != port || s.PID() == pid {
		t.Fatalf("after Restart: port %d (was %d), pid %d (was %d)", s.Port(), port, s.PID(), pid)
	}
	if v := mustDo(t, s.Do, "GET", "durable"); v != "yes" {
		t.Fatalf("GET after Restart = %#v", v)
	}

	// Acknowledged writes survive even SIGKILL (appendfsync always).
	mustDo(t, s.Do, "SET", "killed", "too")
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := s.DoTimeout(time.Second, "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	s.Restart()
	if v := mustDo(t, s.Do, "MGET", "durable", "killed"); fmt.Sprint(v) != "[yes too]" {
		t.Fatalf("MGET after Kill+Restart = %#v", v)
	}

	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	s.Stop() // idempotent
}

func TestRestartWithoutAOFLosesData(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	mustDo(t, s.Do, "SET", "k", "v")
	s.Restart()
	if v := mustDo(t, s.Do, "GET", "k"); v != nil {
		t.Fatalf("GET after Restart without AOF = %#v", v)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	s.Pause()
	start := time.Now()
	_, err := s.DoTimeout(200*time.Millisecond, "PING")
	if !isTimeout(err) {
		t.Fatalf("PING on paused server: err = %v, want timeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("timeout took %v", el)
	}
	s.Resume()
	if v := mustDo(t, s.Do, "PING"); v != "PONG" {
		t.Fatalf("PING after Resume = %#v", v)
	}

	// Stop works on a paused server too.
	s.Pause()
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop of paused server")
	}
}

func TestClientPause(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	s.ClientPause(500 * time.Millisecond)
	if _, err := s.DoTimeout(150*time.Millisecond, "SET", "k", "v"); !isTimeout(err) {
		t.Fatalf("SET during CLIENT PAUSE: err = %v, want timeout", err)
	}
	if v := mustDo(t, s.Do, "SET", "k", "v"); v != "OK" { // waits out the pause
		t.Fatalf("SET after pause = %#v", v)
	}
}

func TestStartFailsClearlyWithoutRedisServer(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartStandalone(rec)
	}()
	<-done
	if !strings.Contains(rec.msg, "redis-server not found: run `make test`, which installs it") {
		t.Fatalf("Fatalf message = %q", rec.msg)
	}
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestAddrInUseIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := newServer(t, config{startTimeout: 5 * time.Second})
	s.mu.Lock()
	s.port = ln.Addr().(*net.TCPAddr).Port
	err = s.startLocked()
	s.mu.Unlock()
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("start on a taken port: err = %v, want errAddrInUse", err)
	}
	if s.Running() {
		t.Fatal("Running after failed start")
	}
}

func TestKillReachesProcessGroup(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	pid := s.PID()
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Fatalf("pgid = %d (%v), want own group %d", pgid, err, pid)
	}
	s.Kill()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still exists after Kill", pid)
	}
	if _, err := os.Stat(s.LogPath()); err != nil {
		t.Fatalf("log file: %v", err)
	}
}

func TestProxyCutRestore(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	p := NewProxy(t, s.Addr())

	c, err := Dial(p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if v, err := c.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING through proxy = %#v, %v", v, err)
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns = %d, want 1", n)
	}

	p.Cut()
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Cut = %d, want 0", n)
	}
	if _, err := c.Do("PING"); err == nil {
		t.Fatal("PING on a cut connection succeeded")
	}
	if _, err := doOnce(p.Addr(), nil, "", "", time.Second, false, []string{"PING"}); err == nil || isTimeout(err) {
		t.Fatalf("new connection while cut: err = %v, want an immediate failure", err)
	}

	p.Restore()
	if v, err := doOnce(p.Addr(), nil, "", "", 5*time.Second, false, []string{"PING"}); err != nil || v != "PONG" {
		t.Fatalf("PING after Restore = %#v, %v", v, err)
	}
}

func TestProxyBlackhole(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	p := NewProxy(t, s.Addr())

	old, err := Dial(p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.SetDeadline(time.Now().Add(5 * time.Second))
	if v, err := old.Do("PING"); v != "PONG" {
		t.Fatalf("PING = %#v, %v", v, err)
	}

	p.Blackhole()
	fresh, err := Dial(p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, c := range []*Conn{old, fresh} {
		if err := c.Send("ECHO", "held"); err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(150 * time.Millisecond))
		if _, err := c.Receive(); !isTimeout(err) {
			t.Fatalf("reply through blackhole: err = %v, want timeout", err)
		}
	}
	waitFor(t, "Conns() == 2", func() bool { return p.Conns() == 2 })

	p.Restore()
	for _, c := range []*Conn{old, fresh} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if v, err := c.Receive(); err != nil || v != "held" {
			t.Fatalf("held command after Restore = %#v, %v", v, err)
		}
	}

	// Close returns promptly even with a blackholed connection pending.
	p.Blackhole()
	if err := fresh.Send("PING"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Proxy.Close hung")
	}
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Close = %d", n)
	}
	p.Close() // idempotent
}

func TestProxyTargetDown(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t)
	p := NewProxy(t, s.Addr())
	s.Kill()
	if _, err := doOnce(p.Addr(), nil, "", "", 2*time.Second, false, []string{"PING"}); err == nil || isTimeout(err) {
		t.Fatalf("PING through proxy to a dead target: err = %v, want EOF/reset", err)
	}
	s.Restart()
	if v, err := doOnce(p.Addr(), nil, "", "", 5*time.Second, false, []string{"PING"}); v != "PONG" {
		t.Fatalf("PING after target Restart = %#v, %v", v, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 || len(c.Nodes()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	for _, n := range c.Nodes() {
		info := mustDo(t, n.Do, "CLUSTER", "INFO").(string)
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:3", "cluster_size:3"} {
			if !strings.Contains(info, want+"\r\n") {
				t.Fatalf("%s CLUSTER INFO lacks %s:\n%s", n.Addr(), want, info)
			}
		}
	}
	u, err := url.Parse(c.URL())
	if err != nil || u.Host != c.Addrs()[0] || fmt.Sprint(u.Query()["addr"]) != fmt.Sprint(c.Addrs()[1:]) {
		t.Fatalf("URL = %q (%v)", c.URL(), err)
	}

	// Keys on different nodes, set through MOVED-following Do.
	owners := map[*Server]bool{}
	for i := range 12 {
		key := fmt.Sprintf("key-%d", i)
		if v := mustDo(t, c.Do, "SET", key, "v"+key); v != "OK" {
			t.Fatalf("SET %s = %#v", key, v)
		}
		owner := c.NodeForKey(key)
		owners[owner] = true
		if v := mustDo(t, owner.Do, "GET", key); v != "v"+key {
			t.Fatalf("GET %s on owner = %#v", key, v)
		}
		for _, n := range c.Nodes() {
			if n == owner {
				continue
			}
			_, err := n.Do("GET", key)
			if err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
				t.Fatalf("GET %s on non-owner %s: err = %v, want MOVED", key, n.Addr(), err)
			}
		}
	}
	if len(owners) < 2 {
		t.Fatalf("12 keys all on %d node(s)", len(owners))
	}

	// A paused node is skipped as seed; its keys time out, others work.
	n0 := c.Nodes()[0]
	n0.Pause()
	var other string
	for i := 0; other == ""; i++ {
		if k := fmt.Sprintf("key-%d", i); c.NodeForKey(k) != n0 {
			other = k
		}
	}
	if v := mustDo(t, c.Do, "GET", other); v != "v"+other {
		t.Fatalf("GET %s with node 0 paused = %#v", other, v)
	}
	n0.Resume()

	// A node restart keeps its identity (nodes.conf) and the cluster heals.
	n0.Restart()
	c.WaitReady()
	if v := mustDo(t, c.Do, "SET", "after-restart", "1"); v != "OK" {
		t.Fatalf("SET after restart = %#v", v)
	}
}

func TestSmallCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 1, WithPassword("pw"))
	if v := mustDo(t, c.Do, "SET", "{a}b", "1"); v != "OK" {
		t.Fatalf("SET = %#v", v)
	}
	if !strings.HasPrefix(c.URL(), "redis://:pw@127.0.0.1:") {
		t.Fatalf("URL = %q", c.URL())
	}
	if c.NodeForKey("x") != c.Nodes()[0] {
		t.Fatal("single node does not own every key")
	}
}

// TestChildDiesWithTestBinary runs a test binary that starts a server and
// exits without running cleanups (as on a go test -timeout or a crash): the
// redis-server child must die with it (Pdeathsig).
func TestChildDiesWithTestBinary(t *testing.T) {
	t.Parallel()
	if os.Getenv("REDISTEST_HELPER") == "1" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperExitsWithoutCleanup$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISTEST_HELPER=1", "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("helper: err = %v, output:\n%s", err, out)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out), "pid=%d", &pid); err != nil || pid <= 0 {
		t.Fatalf("helper output %q: %v", out, err)
	}
	waitFor(t, fmt.Sprintf("redis-server pid %d to die", pid), func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// A zombie waiting for a reaper is dead too: state after "(comm) ".
		i := strings.LastIndexByte(string(stat), ')')
		return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
	})
}

func TestHelperExitsWithoutCleanup(t *testing.T) {
	if os.Getenv("REDISTEST_HELPER") != "1" {
		return // only meaningful as the child of TestChildDiesWithTestBinary
	}
	s := StartStandalone(t)
	fmt.Printf("pid=%d\n", s.PID())
	os.Exit(3)
}
