package siotest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// stopTimeout is how long a process gets to exit after "exit" before it is
// killed.
const stopTimeout = 5 * time.Second

// Proc is a Node process that reads JSON commands on stdin and prints JSON
// lines on stdout, each decoded into an E and kept. Lines that are not
// JSON are ignored (a script's stray output); stderr is kept and shown
// when the test failed.
type Proc[E any] struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex // guards events, changed, stderr and writes to stdin
	events  []E
	changed chan struct{} // closed and replaced on every new event
	exited  chan struct{} // closed when stdout ends
	stderr  strings.Builder
	once    sync.Once
}

// StartProc starts `node script args...`, with env added to the
// environment; script is relative to the module root. t.Cleanup stops it.
func StartProc[E any](t testing.TB, name, script string, env []string, args ...string) *Proc[E] {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is required by this test (and testdata/node_modules): %v", err)
	}
	path, err := Path(script)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc[E]{t: t, name: name, changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command("node", append([]string{path}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = procStderr[E]{p}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	go p.read(stdout)
	t.Cleanup(p.Stop)
	return p
}

func (p *Proc[E]) read(stdout io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev E
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

type procStderr[E any] struct{ p *Proc[E] }

func (w procStderr[E]) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// Stop asks the process to exit, kills it if it does not, and waits for
// it. It is idempotent.
func (p *Proc[E]) Stop() {
	p.once.Do(func() {
		_ = p.Send(map[string]any{"cmd": "exit"})
		_ = p.stdin.Close()
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		_ = p.cmd.Wait()
		if s := p.Stderr(); s != "" && p.t.Failed() {
			p.t.Logf("%s stderr:\n%s", p.name, s)
		}
	})
}

// Stderr returns what the process wrote on stderr so far.
func (p *Proc[E]) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Send writes cmd as one JSON line.
func (p *Proc[E]) Send(cmd any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encoding command: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing to %s: %w", p.name, err)
	}
	return nil
}

// Do sends cmd, failing t if it cannot.
func (p *Proc[E]) Do(t testing.TB, cmd any) {
	t.Helper()
	if err := p.Send(cmd); err != nil {
		t.Fatal(err)
	}
}

// WaitN waits until n events satisfy pred and returns all those so far,
// failing t after timeout or if the process exits first.
func (p *Proc[E]) WaitN(t testing.TB, what string, n int, timeout time.Duration, pred func(E) bool) []E {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		var got []E
		for _, ev := range p.events {
			if pred(ev) {
				got = append(got, ev)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-p.exited:
			t.Fatalf("%s exited while waiting for %s (%d/%d)\n%s", p.name, what, len(got), n, p.Stderr())
		case <-deadline.C:
			t.Fatalf("%s: timed out after %v waiting for %s: %d/%d", p.name, timeout, what, len(got), n)
		}
	}
}

// Wait returns the first event satisfying pred, waiting up to timeout.
func (p *Proc[E]) Wait(t testing.TB, what string, timeout time.Duration, pred func(E) bool) E {
	t.Helper()
	return p.WaitN(t, what, 1, timeout, pred)[0]
}

// Filter returns the events so far that satisfy pred.
func (p *Proc[E]) Filter(pred func(E) bool) []E {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []E
	for _, ev := range p.events {
		if pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// Count returns how many events so far satisfy pred.
func (p *Proc[E]) Count(pred func(E) bool) int { return len(p.Filter(pred)) }
