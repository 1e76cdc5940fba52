package main

import (
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "copy the browser test's screenshot to docs/chat.png")

// browserResult is what testdata/chat/browser.js prints.
type browserResult struct {
	Step     string `json:"step"`
	Error    string `json:"error"`
	Done     bool   `json:"done"`
	Rendered struct {
		Text string `json:"text"`
		HTML string `json:"html"`
		Imgs int    `json:"imgs"`
	} `json:"rendered"`
	Banner    string   `json:"banner"`
	Recovered bool     `json:"recovered"`
	Texts     []string `json:"texts"`
	PageError string   `json:"pageerror"`
}

// runBrowser drives two Chromium pages on urlA and urlB through
// testdata/chat/browser.js and checks the chat end to end.
func runBrowser(t *testing.T, urlA, urlB string) {
	t.Helper()
	if _, err := fs.Stat(web, "web/socket.io.min.js"); err != nil {
		t.Fatal("cmd/chat/web/socket.io.min.js was not embedded: `make test` (or `make run`) copies it from testdata/node_modules before building")
	}
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: `make test` installs Debian's chromium package (as root)", chromium)
	}
	// Not t.TempDir: the failure screenshots must outlive the test.
	dir, err := os.MkdirTemp("", "chat-browser-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	script, _ := filepath.Abs("../../testdata/chat/browser.js")
	cmd := exec.CommandContext(ctx, "node", script, urlA, urlB, dir)
	cmd.Dir = "../../testdata"
	out, err := cmd.CombinedOutput()
	if err != nil || t.Failed() {
		t.Fatalf("browser test: %v (screenshots in %s)\n%s", err, dir, out)
	}
	steps := map[string]browserResult{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r browserResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		if r.PageError != "" {
			t.Errorf("page %s: %s", r.PageError, r.Error)
		}
		steps[r.Step] = r
	}
	esc := steps["escaped"].Rendered
	if esc.Imgs != 0 || !strings.HasPrefix(esc.HTML, "&lt;img") {
		t.Errorf("HTML in a message reached the page as markup: %+v", esc)
	}
	rec := steps["recovered"]
	if !rec.Recovered || !strings.Contains(rec.Banner, "recovered") {
		t.Errorf("after the cut: recovered=%v banner=%q, want a recovered session", rec.Recovered, rec.Banner)
	}
	for _, m := range []string{"missed 1", "missed 2", "missed 3"} {
		if n := countOf(rec.Texts, m); n != 1 {
			t.Errorf("%q appears %d times on the page after recovery, want once: %q", m, n, rec.Texts)
		}
	}
	if i, j := slices.Index(rec.Texts, "missed 1"), slices.Index(rec.Texts, "missed 3"); i < 0 || j < i {
		t.Errorf("missed messages out of order: %q", rec.Texts)
	}
	if t.Failed() {
		t.Logf("screenshots in %s", dir)
		return
	}
	if *updateScreenshot {
		png, err := os.ReadFile(filepath.Join(dir, "chat.png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/chat.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(dir)
}

func countOf(s []string, v string) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestBrowserCluster: two pages on two nodes clustered over a real Redis.
func TestBrowserCluster(t *testing.T) {
	urlA, urlB := startClusteredChat(t)
	runBrowser(t, urlA, urlB)
}
