//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// runSuite needs Linux: it reads the nodes' memory from /proc and ties their
// lifetime to its own with Pdeathsig.
func runSuite(context.Context, []string, io.Writer) error {
	return errors.New("-suite runs on Linux only")
}
