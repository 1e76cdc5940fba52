// Package siocodec encodes and decodes Socket.IO v5 packets (the format of
// socket.io-parser 4.x): <type>[<attachments>-][<nsp>,][<id>][<json>],
// binary values carried as attachments that follow the header as separate
// Engine.IO messages, each replaced in the JSON by a placeholder
// {"_placeholder":true,"num":N}.
//
// It is sockstream's own rather than zishang520's parsers/socket/v3: that
// parser's decoder is an event emitter per connection, hands binary back as
// its own buffer types (which every caller then converted), copies every
// []any and map on encoding, and accepts what Node's decoder refuses
// (trailing bytes after the JSON, placeholders with a bad index). Decoding
// here is at least as strict as Node's: a packet that Node's decoder would
// throw on is an error, and the caller closes that connection only. It is
// stricter on three points: an ack id above 2^53 (which Node rounds to the
// nearest JavaScript number), a placeholder num that is not an integer, a
// namespace longer than Limits.MaxNamespaceLength.
//
// msgpack.go is the format of socket.io-msgpack-parser 3.x (EncodeMsgpack,
// Decoder.Msgpack): one MessagePack binary message per packet, binary inline.
package siocodec
