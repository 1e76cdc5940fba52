package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/server"
)

func TestChatWithOfficialClients(t *testing.T) {
	srv, err := server.New(server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mountChat(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	nctx, ncancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ncancel()
	script, _ := filepath.Abs("../../testdata/chat/two-clients.js")
	cmd := exec.CommandContext(nctx, "node", script, "http://"+ln.Addr().String())
	cmd.Dir = "../../testdata"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	want := map[string]bool{}
	for _, m := range lines {
		switch {
		case m["bad"] != nil:
			if bad, _ := m["bad"].(map[string]any); bad["error"] == nil {
				t.Errorf("a nickname with HTML was accepted: %v", m)
			}
		case m["message"] != nil:
			msg := m["message"].(map[string]any)
			if msg["nick"] != "ann" || msg["text"] != "hello" {
				t.Errorf("unexpected message %v", msg)
			}
			want[m["client"].(string)] = true
		}
	}
	if !want["a"] || !want["b"] {
		t.Errorf("both clients must receive the message; got %v\n%s", want, out)
	}
}

func TestBadOptionStopsWithOneLine(t *testing.T) {
	err := run(context.Background(), []string{"-ping-interval", "-5s"})
	var ce *server.ConfigError
	if !errors.As(err, &ce) || ce.Option != "ping-interval" {
		t.Fatalf("err = %v, want a ConfigError naming ping-interval", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestBadEnvironmentStopsWithOneLine(t *testing.T) {
	t.Setenv("SOCKSTREAM_PING_TIMEOUT", "soon")
	err := run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "SOCKSTREAM_PING_TIMEOUT") {
		t.Fatalf("err = %v, want one naming SOCKSTREAM_PING_TIMEOUT", err)
	}
}

func TestValidName(t *testing.T) {
	for s, ok := range map[string]bool{"ann": true, "a-b_9": true, "": false, "<b>": false, "a b": false, strings.Repeat("x", 33): false} {
		if validName(s, maxNick) != ok {
			t.Errorf("validName(%q) = %v, want %v", s, !ok, ok)
		}
	}
}
