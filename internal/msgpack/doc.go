// Package msgpack decodes MessagePack into the generic values a JavaScript
// peer's @msgpack/msgpack decode would produce: nil, bool, float64 (every
// number, as JavaScript has only one number type), string, []byte,
// []any, map[string]any and time.Time (the timestamp extension, -1, which
// is how @msgpack/msgpack encodes a Date).
//
// It exists instead of a reflection-based library because what it decodes
// comes from Redis, written by any node of a cluster or by anyone with
// access to the server: it bounds nesting (a reflection decoder recursing a
// megabyte of nested arrays can exhaust the goroutine stack, a fatal error
// rather than a recoverable panic) and checks every length against the
// bytes that are left before allocating, so a forged header cannot make it
// allocate more than the input's size.
//
// Package cluster decodes with it everything it reads from Redis (stream
// entries, pub/sub payloads, persisted sessions); its encoder is
// cluster/msgpack.go.
package msgpack
