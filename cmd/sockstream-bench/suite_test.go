//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteMarkdownKeepsTheTextAround(t *testing.T) {
	cfg := defaultSuite()
	cfg.Out = filepath.Join(t.TempDir(), "benchmarks.md")
	results := []*sideResult{
		{Side: "go", Fanout: &Result{PerSecond: 2000, P99Ms: 10}, Recovery: []RecoveryResult{{Reason: "off"}}},
		{Side: "node", Fanout: &Result{PerSecond: 1000, P99Ms: 20}, Recovery: []RecoveryResult{{Supported: true, Missed: 1000, Restored: 1000, RestoreMs: 5}}},
	}
	tbl := renderTable(cfg, results)
	if !strings.Contains(tbl.markdown, "| 2000 | 1000 | 2.00 |") || !strings.Contains(tbl.markdown, "not measured") {
		t.Fatalf("table:\n%s", tbl.markdown)
	}
	if err := writeMarkdown(cfg, results, tbl.markdown, 0); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	edited := "# Title\n\nbefore\n\n" + string(first[strings.Index(string(first), beginMarker):]) + "\nafter: the findings\n"
	if err := os.WriteFile(cfg.Out, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeMarkdown(cfg, results, "| new table |\n", 0); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	if !strings.HasPrefix(s, "# Title\n\nbefore\n\n"+beginMarker) || !strings.HasSuffix(s, endMarker+"\n\nafter: the findings\n") ||
		!strings.Contains(s, "| new table |") || strings.Contains(s, "| 2000 |") || strings.Count(s, beginMarker) != 1 {
		t.Fatalf("rewritten file:\n%s", s)
	}
}
