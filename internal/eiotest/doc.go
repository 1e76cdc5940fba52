// Package eiotest is a raw-frame Engine.IO v4 client for tests: HTTP
// long-polling requests and WebSocket frames written and read as bytes, with
// no client library in between, so that tests see exactly what a server
// sends, as the official protocol suites do. Every call takes a context;
// nothing waits without a deadline.
package eiotest
