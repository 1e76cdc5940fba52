package redistest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultStartTimeout bounds how long a start or restart waits for PING.
	DefaultStartTimeout = 10 * time.Second
	// DefaultDoTimeout is the deadline of Server.Do and Cluster.Do.
	DefaultDoTimeout = 5 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// logTailLines is how many log lines are printed for a failed test.
	logTailLines = 30
	// startAttempts is how many fresh ports are tried when the port is
	// taken by someone else between FreePort and redis-server's bind.
	startAttempts = 5
)

var errAddrInUse = errors.New("address already in use")

// Option configures a server started by StartStandalone or StartCluster.
type Option func(*config)

type config struct {
	aof          bool
	user         string
	password     string
	args         []string
	startTimeout time.Duration
	cluster      bool
	nodeTimeout  int
	tls          bool
}

// WithAOF turns on the append only file (appendonly yes, appendfsync always)
// so that data survives Stop, Kill and Restart. Override the fsync policy with
// WithArgs("--appendfsync", "everysec") if a test writes a lot.
func WithAOF() Option { return func(c *config) { c.aof = true } }

// WithPassword sets requirepass (the password of the default user) and
// masterauth. The harness and URL() authenticate with it. It must not
// contain spaces.
func WithPassword(pw string) Option { return func(c *config) { c.password = pw } }

// WithACLUser creates the ACL user "user on >pw ~* &* +@all" and turns the
// default user off, so that only this user can run commands. The harness and
// URL() authenticate as this user. Neither value may contain spaces.
func WithACLUser(user, pw string) Option {
	return func(c *config) { c.user, c.password = user, pw }
}

// WithArgs appends raw redis-server command line arguments, for example
// WithArgs("--maxmemory", "10mb"). They come last, so they override the
// harness defaults (such as --save "" or --cluster-node-timeout).
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithStartTimeout changes how long a start or restart waits for the server
// to answer PING (default DefaultStartTimeout).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) { c.startTimeout = d }
}

// Server is one redis-server child process. Its port and directory stay the
// same across Stop, Kill and Restart.
type Server struct {
	t       testing.TB
	cfg     config
	bin     string
	dir     string
	logPath string
	tls     *tlsFiles // nil without WithTLS

	mu      sync.Mutex
	port    int
	busPort int      // cluster bus port; 0 when not in cluster mode
	proc    *process // nil when not running
	paused  bool
}

// process is a running (or exited) child. done is closed when Wait returns.
type process struct {
	pid  int
	done chan struct{}
}

// StartStandalone starts a standalone redis-server on a free loopback port
// with its own temporary directory, persistence off (--save "") unless
// WithAOF is given, and waits until it answers PING. The process is killed
// by a t.Cleanup. It fails the test (never skips) if redis-server is missing.
func StartStandalone(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	cfg.cluster = false
	s := newServer(t, cfg)
	s.startFresh()
	return s
}

func newServer(t testing.TB, cfg config) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: run `make test`, which installs it (%v)", err)
	}
	if cfg.startTimeout <= 0 {
		cfg.startTimeout = DefaultStartTimeout
	}
	dir := t.TempDir()
	s := &Server{
		t:       t,
		cfg:     cfg,
		bin:     bin,
		dir:     dir,
		logPath: filepath.Join(dir, "redis.log"),
	}
	if cfg.tls {
		if s.tls, err = writeTLSFiles(dir); err != nil {
			t.Fatalf("%v", err)
		}
	}
	// Registered after t.TempDir, so it runs before the dir is removed.
	t.Cleanup(s.cleanup)
	return s
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port()))
}

// Port returns the TCP port of the server.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// URL returns "redis://127.0.0.1:port/0" ("rediss://" WithTLS), with
// "user:password@" or ":password@" when the server was started with
// credentials.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if s.tls != nil {
		u.Scheme = "rediss"
	}
	if s.cfg.password != "" {
		u.User = url.UserPassword(s.cfg.user, s.cfg.password)
	}
	return u.String()
}

// Dir returns the server's working directory (AOF, nodes.conf, log).
func (s *Server) Dir() string { return s.dir }

// LogPath returns the path of the server's log file. stdout and stderr of
// the process (for example configuration errors) are appended to it too.
func (s *Server) LogPath() string { return s.logPath }

// PID returns the process id, or 0 when the server is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.pid
}

// Running reports whether the process has been started and not yet stopped,
// killed or found dead. A paused server is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

func (s *Server) runningLocked() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// usable reports whether the server is running and not paused.
func (s *Server) usable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked() && !s.paused
}

// Do runs one command on a new connection with a DefaultDoTimeout deadline
// and returns the reply (see the package documentation for its Go type). A
// Redis error reply is returned as an Error.
func (s *Server) Do(args ...string) (any, error) {
	return s.DoTimeout(DefaultDoTimeout, args...)
}

// DoTimeout is Do with an explicit deadline covering dial, AUTH, the command
// and its reply.
func (s *Server) DoTimeout(d time.Duration, args ...string) (any, error) {
	return doOnce(s.Addr(), s.tls.clientConfig(), s.cfg.user, s.cfg.password, d, false, args)
}

// Dial opens a connection to the server (over TLS WithTLS), authenticated
// when the server has credentials. The caller closes it and sets deadlines
// as needed.
func (s *Server) Dial() (*Conn, error) {
	c, err := dial(s.Addr(), DefaultDoTimeout, s.tls.clientConfig())
	if err != nil {
		return nil, err
	}
	if s.cfg.password != "" {
		c.SetDeadline(time.Now().Add(DefaultDoTimeout))
		if err := c.auth(s.cfg.user, s.cfg.password); err != nil {
			c.Close()
			return nil, err
		}
		c.SetDeadline(time.Time{})
	}
	return c, nil
}

// Stop shuts the server down gracefully: SIGTERM (Redis then runs its
// SHUTDOWN path, flushing the AOF) plus SIGCONT in case it is paused, and
// waits for it to exit. After 10 s it is killed and the test fails. Stop on
// a server that is not running does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(true); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
}

// Kill sends SIGKILL to the server's process group and waits for it to exit.
// Kill on a server that is not running does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(false); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
}

// Restart stops the server gracefully if it is running, then starts it again
// on the same port and directory and waits until it answers PING (after
// loading the AOF, if any). Without WithAOF the data is gone.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stopLocked(true); err != nil {
		s.t.Errorf("redistest: %v", err)
	}
	var err error
	// The port may be held briefly by someone else: retry for ~2 s.
	for range 20 {
		err = s.startLocked()
		if !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart %s: %v (log: %s)", s.addrLocked(), err, s.logPath)
	}
}

// Pause stops the process with SIGSTOP: connections are still accepted by
// the kernel but nothing is answered, like a hung server.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP, true)
}

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runningLocked() {
		s.t.Fatalf("redistest: %s: server %s is not running", sig, s.addrLocked())
	}
	if err := syscall.Kill(-s.proc.pid, sig); err != nil {
		s.t.Fatalf("redistest: %s to %s: %v", sig, s.addrLocked(), err)
	}
	s.paused = paused
}

// ClientPause runs CLIENT PAUSE <d> ALL: the server stays up but holds every
// client command for d.
func (s *Server) ClientPause(d time.Duration) {
	s.t.Helper()
	ms := max(d.Milliseconds(), 1)
	if _, err := s.Do("CLIENT", "PAUSE", strconv.FormatInt(ms, 10), "ALL"); err != nil {
		s.t.Fatalf("redistest: CLIENT PAUSE on %s: %v", s.Addr(), err)
	}
}

func (s *Server) addrLocked() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// startFresh starts the server on new free ports, retrying when a port was
// taken between FreePort and redis-server's bind.
func (s *Server) startFresh() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range startAttempts {
		if s.port, err = FreePort(); err != nil {
			break
		}
		if s.cfg.cluster {
			if s.busPort, err = FreePort(); err != nil {
				break
			}
		}
		err = s.startLocked()
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		s.t.Fatalf("redistest: start redis-server on %s: %v (log: %s)", s.addrLocked(), err, s.logPath)
	}
}

func (s *Server) args() []string {
	var a []string
	if s.tls != nil {
		a = s.tls.args(strconv.Itoa(s.port))
	} else {
		a = []string{"--port", strconv.Itoa(s.port)}
	}
	a = append(a,
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", s.logPath,
		"--daemonize", "no",
		"--save", "",
	)
	if s.cfg.aof {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.cfg.password != "" {
		if s.cfg.user != "" {
			a = append(a,
				"--user", s.cfg.user, "on", ">"+s.cfg.password, "~*", "&*", "+@all",
				"--user", "default", "off",
				"--masteruser", s.cfg.user)
		} else {
			a = append(a, "--requirepass", s.cfg.password)
		}
		a = append(a, "--masterauth", s.cfg.password)
	}
	if s.cfg.cluster {
		a = append(a,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(s.cfg.nodeTimeout),
			"--cluster-port", strconv.Itoa(s.busPort))
	}
	return append(a, s.cfg.args...)
}

// startLocked starts the process on s.port and waits until it is ready. On
// failure the process is gone and the error wraps errAddrInUse if the port
// (or cluster bus port) was taken.
func (s *Server) startLocked() error {
	if s.runningLocked() {
		return errors.New("already running")
	}
	s.proc, s.paused = nil, false
	logOffset := int64(0)
	if fi, err := os.Stat(s.logPath); err == nil {
		logOffset = fi.Size()
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p, err := spawn(s.bin, s.args(), logFile)
	logFile.Close()
	if err != nil {
		return err
	}
	if err := s.waitReady(p); err != nil {
		syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		if bytes.Contains(s.logSince(logOffset), []byte("Address already in use")) {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	s.proc = p
	return nil
}

// spawn starts the child from a goroutine locked to its OS thread for the
// child's whole life: Pdeathsig fires when the parent *thread* exits, so the
// thread must outlive the child unless the whole test binary dies, in which
// case the child gets SIGKILL. Setpgid puts the child (and anything it forks
// for AOF rewrites) in its own process group, which Kill signals as a whole.
func spawn(bin string, args []string, out *os.File) (*process, error) {
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// waitReady polls until the server on s.port answers PING and INFO reports
// p's pid (so a foreign server that won the port race is not mistaken for
// ours), the process exits, or the start timeout passes.
func (s *Server) waitReady(p *process) error {
	addr := s.addrLocked()
	deadline := time.Now().Add(s.cfg.startTimeout)
	delay := 5 * time.Millisecond
	var last error
	for {
		select {
		case <-p.done:
			return errors.New("redis-server exited during start")
		default:
		}
		last = checkPID(addr, s.tls.clientConfig(), s.cfg.user, s.cfg.password, p.pid)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %v", s.cfg.startTimeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func checkPID(addr string, tc *tls.Config, user, password string, pid int) error {
	c, err := dial(addr, 250*time.Millisecond, tc)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := c.auth(user, password); err != nil {
		return err
	}
	v, err := c.Do("PING")
	if err != nil {
		return err // for example -LOADING while the AOF is read
	}
	if v != "PONG" {
		return fmt.Errorf("PING answered %v", v)
	}
	v, err = c.Do("INFO", "server")
	if err != nil {
		return err
	}
	info, _ := v.(string)
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(info, want) {
		return fmt.Errorf("another process answers on %s", addr)
	}
	return nil
}

// stopLocked ends the process, gracefully (SIGTERM) or not (SIGKILL to the
// process group), and waits for it.
func (s *Server) stopLocked(graceful bool) error {
	p := s.proc
	s.proc, s.paused = nil, false
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if !graceful {
		syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		return nil
	}
	syscall.Kill(p.pid, syscall.SIGTERM)
	syscall.Kill(-p.pid, syscall.SIGCONT)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("redis-server %s did not exit within %v of SIGTERM; killed", s.addrLocked(), stopTimeout)
	}
}

func (s *Server) cleanup() {
	s.mu.Lock()
	s.stopLocked(false)
	s.mu.Unlock()
	if s.t.Failed() {
		s.t.Logf("redistest: last %d lines of %s (redis-server %s):\n%s",
			logTailLines, s.logPath, s.Addr(), s.logTail())
	}
}

func (s *Server) logSince(off int64) []byte {
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, off, 1<<20))
	return b
}

// logTail returns the last logTailLines lines of the log file.
func (s *Server) logTail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const window = 64 << 10
	off := int64(0)
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		off = fi.Size() - window
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, off, window))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return strings.Join(lines, "\n")
}
