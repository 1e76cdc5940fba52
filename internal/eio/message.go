package eio

import (
	"encoding/base64"
	"encoding/binary"
	"sync/atomic"
)

// Engine.IO v4 packet types, as the byte that starts a packet.
const (
	pOpen    = '0'
	pClose   = '1'
	pPing    = '2'
	pPong    = '3'
	pMessage = '4'
	pUpgrade = '5'
	pNoop    = '6'
)

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Message is one Engine.IO packet queued for clients, immutable once built
// and shareable by any number of sessions: a broadcast builds one and Sends
// it to every recipient. It caches its encodings (the complete WebSocket
// frame, its compressed frame for connections with per-message deflate,
// and the polling form: "4"+text or "b"+base64) the first time a
// transport needs them, so a broadcast is framed (and compressed) once,
// not once per client.
//
// TextMessage and BinaryMessage build message packets ("4"); the engine
// builds its own control packets (open, ping, pong, noop, close) and
// WebSocket control frames the same way.
type Message struct {
	typ        byte   // Engine.IO packet type; 0 for a WebSocket control frame
	op         byte   // WebSocket opcode of the frame
	binary     bool   // binary message
	noCompress bool   // never sent compressed (DisableCompression)
	data       []byte // packet data after the type byte (binary: all of it)

	ws   atomic.Pointer[[]byte] // the WebSocket frame, once built
	wsz  atomic.Pointer[[]byte] // the compressed WebSocket frame (deflate.go), once built
	poll atomic.Pointer[[]byte] // the polling form, once built
}

// TextMessage returns a message packet carrying text. data must be valid
// UTF-8 and must not be modified afterwards.
func TextMessage(data []byte) *Message {
	return &Message{typ: pMessage, op: opText, data: data}
}

// BinaryMessage returns a message packet carrying binary data. data must not
// be modified afterwards.
func BinaryMessage(data []byte) *Message {
	return &Message{typ: pMessage, op: opBinary, binary: true, data: data}
}

// DisableCompression makes m go uncompressed to every connection, those
// that negotiated per-message deflate (Options.PerMessageDeflate) included,
// as Node's compress(false) does. It must be called before m is sent; it
// returns m.
func (m *Message) DisableCompression() *Message {
	m.noCompress = true
	return m
}

// controlPacket is an Engine.IO packet of type typ with text data.
func controlPacket(typ byte, data string) *Message {
	return &Message{typ: typ, op: opText, data: []byte(data)}
}

// wsControl is a WebSocket control frame (close, pong); it is never sent over
// polling.
func wsControl(op byte, payload []byte) *Message {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	return &Message{op: op, data: payload}
}

// closeFrame is a WebSocket close frame with code (RFC 6455, section 5.5.1).
func closeFrame(code uint16) *Message {
	if code == 0 {
		return wsControl(opClose, nil)
	}
	return wsControl(opClose, binary.BigEndian.AppendUint16(nil, code))
}

// Packets shared by every session: encoded once for the process.
var (
	pingPacket  = controlPacket(pPing, "")
	noopPacket  = controlPacket(pNoop, "")
	closePacket = controlPacket(pClose, "")
	probePong   = controlPacket(pPong, "probe")
	closeNormal = closeFrame(1000)
	closeAway   = closeFrame(1001)
)

// size is the payload size the message counts for (queue bound, metrics).
func (m *Message) size() int {
	if m.typ == 0 || m.binary {
		return len(m.data)
	}
	return 1 + len(m.data)
}

// isControlFrame reports whether m is a WebSocket control frame, not an
// Engine.IO packet.
func (m *Message) isControlFrame() bool { return m.typ == 0 }

// plainFrameLen is len(m.wsFrame()), without building it.
func plainFrameLen(m *Message) int {
	n := m.size()
	switch {
	case n < 126:
		return n + 2
	case n <= 0xFFFF:
		return n + 4
	}
	return n + 10
}

// wsFrame returns the complete, unmasked WebSocket frame of m (RFC 6455,
// section 5.2), built once.
func (m *Message) wsFrame() []byte {
	if p := m.ws.Load(); p != nil {
		return *p
	}
	n := len(m.data)
	if m.typ != 0 && !m.binary {
		n++
	}
	f := make([]byte, 0, n+10)
	f = append(f, 0x80|m.op)
	switch {
	case n < 126:
		f = append(f, byte(n))
	case n <= 0xFFFF:
		f = binary.BigEndian.AppendUint16(append(f, 126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 127), uint64(n))
	}
	if m.typ != 0 && !m.binary {
		f = append(f, m.typ)
	}
	f = append(f, m.data...)
	m.ws.Store(&f)
	return f
}

// pollForm returns m as one packet of a polling payload: the type byte and
// the text, or "b" and the base64 of binary data, built once.
func (m *Message) pollForm() []byte {
	if p := m.poll.Load(); p != nil {
		return *p
	}
	var f []byte
	if m.binary {
		f = make([]byte, 1+base64.StdEncoding.EncodedLen(len(m.data)))
		f[0] = 'b'
		base64.StdEncoding.Encode(f[1:], m.data)
	} else {
		f = make([]byte, 0, 1+len(m.data))
		f = append(append(f, m.typ), m.data...)
	}
	m.poll.Store(&f)
	return f
}
