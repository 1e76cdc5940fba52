//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// runSoak needs Linux, as the suite does: it reads the nodes' memory from
// /proc and ties their lifetime to its own with Pdeathsig.
func runSoak(context.Context, []string, io.Writer) error {
	return errors.New("-soak runs on Linux only")
}
