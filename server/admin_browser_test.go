package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstream/sockstream/internal/redistest"
	"github.com/sockstream/sockstream/internal/siotest"
	"github.com/sockstream/sockstream/server"
)

// TestAdminBrowser: the Admin UI itself, the built bundle of
// @socket.io/admin-ui from testdata/node_modules served from a local page,
// in headless Chromium, logs in to node A of two clustered Go nodes, shows
// both servers and a client connected to node B, and its disconnect button
// disconnects that client.
func TestAdminBrowser(t *testing.T) {
	t.Parallel()
	dist, err := siotest.Path("testdata/node_modules/@socket.io/admin-ui/ui/dist")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dist, "index.html")); err != nil {
		t.Fatalf("the Admin UI bundle is missing (%v): `make test` runs npm ci in testdata/", err)
	}
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: `make test` installs Debian's chromium package (as root)", chromium)
	}
	ui := httptest.NewServer(http.FileServer(http.Dir(dist)))
	t.Cleanup(ui.Close)

	rs := redistest.StartStandalone(t)
	node := func(id string) *testServer {
		return startServer(t, server.Config{
			Admin: adminConfig(id),
			Redis: server.RedisConfig{URL: rs.URL(), HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 2 * time.Second},
			// The UI connects with withCredentials (for sticky sessions).
			CORSOrigins:     []string{ui.URL},
			CORSCredentials: true,
		}, nil)
	}
	a, b := node("node-a"), node("node-b")
	for _, ts := range []*testServer{a, b} {
		eventually(t, "/readyz 200", func() bool { return readyz(t, ts) == http.StatusOK })
	}
	cl := siotest.StartClients(t)
	sid := cl.Connect(t, "u1", b.URL+"/", nil, nil).Sid

	script, err := siotest.Path("testdata/admin/browser.js")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, ui.URL+"/", a.URL, "admin", adminPassword, sid, "node-a,node-b", dir)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	outb, err := cmd.CombinedOutput()
	if err != nil {
		if png, rerr := os.ReadFile(filepath.Join(dir, "failure.png")); rerr == nil {
			keep := filepath.Join(os.TempDir(), "admin-browser-failure.png")
			_ = os.WriteFile(keep, png, 0o644)
			t.Logf("screenshot: %s", keep)
		}
		t.Fatalf("browser: %v\n%s", err, outb)
	}
	steps := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		if r["pageerror"] != nil {
			t.Errorf("page error: %v", r["error"])
		}
		if s, ok := r["step"].(string); ok {
			steps[s] = r
		}
	}
	for _, s := range []string{"connected", "servers", "socket", "disconnected"} {
		if steps[s] == nil {
			t.Fatalf("step %s missing:\n%s", s, outb)
		}
	}
	// The click reached the socket on node B.
	d := cl.Wait(t, "u1 disconnected by the UI", waitFor, func(ev siotest.Event) bool { return ev.ID == "u1" && ev.Type == "disconnect" })
	if d.Reason != "io server disconnect" {
		t.Errorf("u1 disconnected with %q, want io server disconnect", d.Reason)
	}
	if _, ok := b.Of("/").Socket(sid); ok {
		t.Error("the socket is still on node B")
	}
}
