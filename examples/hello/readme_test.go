package main

import (
	"os"
	"strings"
	"testing"
)

// The README shows this program; keep the two identical so the README's code
// always compiles.
func TestREADMEShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```go\n")
	if !ok {
		t.Fatal("README has no ```go block")
	}
	block, _, _ = strings.Cut(block, "```")
	// main.go starts with its doc comment, which the README leaves out.
	_, code, _ := strings.Cut(string(src), "package main")
	if "package main"+code != block {
		t.Errorf("README's example differs from examples/hello/main.go:\nREADME:\n%s\nmain.go:\n%s", block, "package main"+code)
	}
}
