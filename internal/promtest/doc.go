// Package promtest runs a real Prometheus server for tests: Debian's
// prometheus binary, started on a free loopback port with a temporary
// configuration and storage, scraping the targets a test gives it; queried
// through its HTTP API. It also runs `promtool check metrics` over an
// exposition.
//
// Like internal/redistest it never skips: without the binaries a test fails
// with a message saying how to install them (`make test` does, as root).
package promtest
