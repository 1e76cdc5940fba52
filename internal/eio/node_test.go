package eio

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeClient echoes text and binary with the official engine.io-client
// (testdata/node_modules of the repository, installed by `make test`) over
// WebSocket, polling, and polling upgraded to WebSocket.
func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH")
	}
	modules, _ := filepath.Abs("../../testdata/node_modules")
	if _, err := os.Stat(filepath.Join(modules, "engine.io-client")); err != nil {
		t.Skip("engine.io-client not installed (npm ci in testdata/)")
	}
	h := newHarness(t, Options{}, true)
	for _, mode := range []string{"websocket", "polling", "upgrade"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "testdata/echo-client.js", h.url, mode)
			cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
			out, err := cmd.CombinedOutput()
			want := "ok websocket"
			if mode == "polling" {
				want = "ok polling"
			}
			if err != nil || strings.TrimSpace(string(out)) != want {
				t.Errorf("%s: %v\n%s", mode, err, out)
			}
		})
	}
}
