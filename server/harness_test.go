package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

// waitFor bounds every wait on an event in these tests. It is long because
// it only matters when a test fails; passing tests never wait for it.
const waitFor = 10 * time.Second

// quiet is a logger for test servers; SOCKSTREAM_TEST_LOG=1 shows the logs.
func quiet() *slog.Logger {
	if os.Getenv("SOCKSTREAM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testServer is a server.Server serving on a loopback listener.
type testServer struct {
	*server.Server
	addr   string // host:port
	URL    string // http://host:port
	cancel context.CancelFunc
	done   chan error
}

// startServer builds a server from cfg, lets setup register handlers, and
// serves it on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg server.Config, setup func(*server.Server), opts ...server.Option) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	srv, err := server.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		Server: srv,
		addr:   ln.Addr().String(),
		URL:    "http://" + ln.Addr().String(),
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop cancels Serve and waits for it to return.
func (ts *testServer) stop(t testing.TB) error {
	t.Helper()
	ts.cancel()
	select {
	case err := <-ts.done:
		ts.done <- err // for a second stop
		return err
	case <-time.After(waitFor):
		t.Errorf("Serve did not return %v after its context ended", waitFor)
		return nil
	}
}

// report is one line written by testdata/client/driver.js.
type report struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Event     string `json:"event"`
	Args      []any  `json:"-"`
	N         *int   `json:"n"`
	Ack       int    `json:"ack"`
	Sid       string `json:"sid"`
	Transport string `json:"transport"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Data      any    `json:"-"`
	Error     string `json:"error"`
	Seq       int    `json:"seq"`
	Connected bool   `json:"connected"`
	Recovered bool   `json:"recovered"`
	line      string
}

func (r report) String() string { return r.line }

// driver is one Node process running testdata/client/driver.js: several
// official clients, driven by commands, whose reports are read with deadlines.
type driver struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *bytes.Buffer

	mu      sync.Mutex
	pending []report
	notify  chan struct{}
	exited  chan struct{}
	seq     int
}

// startDriver starts the Node driver; it is killed when the test ends.
func startDriver(t testing.TB) *driver {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the client tests need Node and testdata/node_modules (make test installs them)")
	}
	script, err := filepath.Abs("../testdata/client/driver.js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("../testdata/node_modules/socket.io-client"); err != nil {
		t.Fatalf("the official client is missing: run `cd testdata && npm ci` (%v)", err)
	}
	d := &driver{t: t, stderr: new(bytes.Buffer), notify: make(chan struct{}, 1), exited: make(chan struct{})}
	d.cmd = exec.Command(node, script)
	d.cmd.Dir = filepath.Dir(script)
	d.cmd.Stderr = &lockedWriter{w: d.stderr, mu: &d.mu}
	d.stdin, err = d.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go d.read(stdout)
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
		_ = d.cmd.Wait()
	})
	return d
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *driver) read(r io.Reader) {
	defer close(d.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var raw struct {
			report
			Args json.RawMessage `json:"args"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			raw.Type, raw.Error = "error", "unparsable line: "+line
		}
		rep := raw.report
		rep.line = line
		rep.Args, _ = decodeJS(raw.Args).([]any)
		rep.Data = decodeJS(raw.Data)
		d.mu.Lock()
		d.pending = append(d.pending, rep)
		d.mu.Unlock()
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
}

// decodeJS decodes a driver value, turning {"$bin": base64} into []byte.
func decodeJS(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return unbin(v)
}

func unbin(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = unbin(t[i])
		}
		return t
	case map[string]any:
		if b, ok := t["$bin"].(string); ok && len(t) == 1 {
			p, _ := base64.StdEncoding.DecodeString(b)
			return p
		}
		for k := range t {
			t[k] = unbin(t[k])
		}
		return t
	}
	return v
}

// bin encodes b for a driver command.
func bin(b []byte) map[string]any {
	return map[string]any{"$bin": base64.StdEncoding.EncodeToString(b)}
}

// send writes a command to the driver.
func (d *driver) send(cmd map[string]any) {
	d.t.Helper()
	line, err := json.Marshal(cmd)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.stdin.Write(append(line, '\n')); err != nil {
		d.t.Fatalf("driver stdin: %v", err)
	}
}

// connect opens client id on url with the client options opts.
func (d *driver) connect(id, url string, opts map[string]any) {
	d.t.Helper()
	d.send(map[string]any{"op": "connect", "id": id, "url": url, "opts": opts})
}

// connected opens client id on url and waits for its connection.
func (d *driver) connected(id, url string, opts map[string]any) report {
	d.t.Helper()
	d.connect(id, url, opts)
	return d.waitType(id, "connect")
}

// emit sends an event from client id, without ack.
func (d *driver) emit(id, event string, args ...any) {
	d.t.Helper()
	d.send(map[string]any{"op": "emit", "id": id, "event": event, "args": args})
}

// call sends an event from client id with an ack and returns the ack's args.
func (d *driver) call(id, event string, args ...any) []any {
	d.t.Helper()
	d.seq++
	seq := d.seq
	d.send(map[string]any{"op": "emit", "id": id, "event": event, "args": args, "ack": seq})
	return d.wait(func(r report) bool { return r.ID == id && r.Type == "ack" && r.Ack == seq }).Args
}

// state asks for client id's transport and connection state.
func (d *driver) state(id string) report {
	d.t.Helper()
	d.seq++
	seq := d.seq
	d.send(map[string]any{"op": "state", "id": id, "seq": seq})
	return d.wait(func(r report) bool { return r.ID == id && r.Type == "state" && r.Seq == seq })
}

// waitType waits for the next report of type typ from client id.
func (d *driver) waitType(id, typ string) report {
	d.t.Helper()
	return d.wait(func(r report) bool { return r.ID == id && r.Type == typ })
}

// waitEvent waits for event from client id.
func (d *driver) waitEvent(id, event string) report {
	d.t.Helper()
	return d.wait(func(r report) bool { return r.ID == id && r.Type == "event" && r.Event == event })
}

// wait removes and returns the first report, in arrival order, that match
// accepts, waiting up to waitFor for it. A driver error fails the test.
func (d *driver) wait(match func(report) bool) report {
	d.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i, r := range d.pending {
			if r.Type == "error" {
				d.mu.Unlock()
				d.t.Fatalf("driver error: %s", r.Error)
			}
			if match(r) {
				d.pending = append(d.pending[:i:i], d.pending[i+1:]...)
				d.mu.Unlock()
				return r
			}
		}
		d.mu.Unlock()
		select {
		case <-d.notify:
		case <-d.exited:
			// Every report was read before exited closed: one last look.
			d.mu.Lock()
			for i, r := range d.pending {
				if match(r) {
					d.pending = append(d.pending[:i:i], d.pending[i+1:]...)
					d.mu.Unlock()
					return r
				}
			}
			d.mu.Unlock()
			d.t.Fatalf("driver exited; stderr:\n%s\nunmatched reports:\n%s", d.stderrText(), d.dump())
		case <-deadline.C:
			d.t.Fatalf("no matching report within %v; unmatched reports:\n%s\nstderr:\n%s", waitFor, d.dump(), d.stderrText())
		}
	}
}

// none fails the test if a report that match accepts is pending.
func (d *driver) none(match func(report) bool, what string) {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.pending {
		if match(r) {
			d.t.Errorf("unexpected %s: %s", what, r)
		}
	}
}

func (d *driver) dump() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for _, r := range d.pending {
		fmt.Fprintf(&b, "  %s\n", r.line)
	}
	return b.String()
}

func (d *driver) stderrText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// recv waits for a value on ch, failing the test after waitFor.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out after %v waiting for %s", waitFor, what)
		var zero T
		return zero
	}
}

// transportOpts are the client options of each way to connect.
var transportModes = []struct {
	name  string
	opts  map[string]any
	final string // the transport the client ends on
}{
	{"websocket", map[string]any{"transports": []string{"websocket"}}, "websocket"},
	{"polling", map[string]any{"transports": []string{"polling"}}, "polling"},
	{"upgrade", map[string]any{"transports": []string{"polling", "websocket"}}, "websocket"},
}

func withOpts(base map[string]any, extra map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}
