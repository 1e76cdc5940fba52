// Package msgpack is the module's one MessagePack implementation: a writer
// (the Append functions: each item in its smallest form) and a bounded
// decoder into the generic values a JavaScript peer would see: nil, bool,
// float64 (every number, as JavaScript has only one number type), string,
// []byte, []any, map[string]any and time.Time (the timestamp extension, -1,
// which is how @msgpack/msgpack encodes a Date).
//
// The zero Decoder (Decode) reads the dialect of @msgpack/msgpack, what
// Node's redis-streams-adapter writes to Redis: timestamps, map keys that
// are numbers turned into strings, floats as they are. The options of
// Decoder give the other dialects their differences: notepack.io's
// (socket.io-msgpack-parser, what the official client sends) is
// internal/siocodec's, with its own extensions (Ext, Undefined), string
// keys only, invalid UTF-8 replaced, non-finite floats as null and an ack
// id that must be exact (Inexact).
//
// It exists instead of a reflection-based library because what it decodes
// comes from Redis or from clients, written by any node of a cluster, by
// anyone with access to the server or by anyone at all: it bounds nesting
// (a reflection decoder recursing a megabyte of nested arrays can exhaust
// the goroutine stack, a fatal error rather than a recoverable panic) and
// checks every length against the bytes that are left before allocating,
// so a forged header cannot make it allocate more than the input's size.
// And the bytes it writes are the dialect's to choose to the byte (Node's
// @msgpack/msgpack output is matched byte for byte), which the writer's
// functions leave to their callers.
//
// Package cluster (cluster/msgpack.go) writes and reads with it everything
// that goes to and comes from Redis (stream entries, pub/sub payloads,
// persisted sessions); package siocodec (internal/siocodec/msgpack.go) the
// packets of socket.io-msgpack-parser.
package msgpack
