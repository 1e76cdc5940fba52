package siocodec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Decoder decodes the packets of one connection: a binary packet's header
// and its attachments arrive as separate messages, so it keeps the packet
// being reconstructed. The zero value is not usable; see NewDecoder. It is
// not safe for concurrent use (a connection's messages are decoded in
// order, by one goroutine at a time).
type Decoder struct {
	limits  Limits
	pending *Packet
	want    int
	atts    [][]byte
	size    int64 // bytes of atts
}

// NewDecoder returns a decoder enforcing limits (zero fields: defaults).
func NewDecoder(limits Limits) *Decoder {
	return &Decoder{limits: limits.withDefaults()}
}

// Text decodes a text message. It returns the packet when complete, or nil
// when it is the header of a binary packet whose attachments follow.
func (d *Decoder) Text(msg []byte) (*Packet, error) {
	if d.pending != nil {
		return nil, invalid("text message while %d attachment(s) of a binary packet are awaited", d.want-len(d.atts))
	}
	p, n, err := d.decodeHeader(msg)
	if err != nil {
		return nil, err
	}
	if p.Type != BinaryEvent && p.Type != BinaryAck {
		return p, nil
	}
	if n == 0 {
		return reconstruct(p, nil)
	}
	d.pending, d.want, d.atts, d.size = p, n, make([][]byte, 0, n), 0
	return nil, nil
}

// Binary decodes a binary message: the next attachment of the pending
// binary packet. It returns the packet once its last attachment arrived.
func (d *Decoder) Binary(msg []byte) (*Packet, error) {
	if d.pending == nil {
		return nil, invalid("binary message without a binary packet header")
	}
	if size := d.size + int64(len(msg)); size > d.limits.MaxAttachmentBytes {
		n := len(d.atts) + 1
		d.Reset()
		return nil, fmt.Errorf("%w: %w: attachment %d brings the packet's attachments to %d bytes, more than the %d allowed",
			ErrInvalid, ErrTooLarge, n, size, d.limits.MaxAttachmentBytes)
	}
	d.atts = append(d.atts, msg)
	d.size += int64(len(msg))
	if len(d.atts) < d.want {
		return nil, nil
	}
	p, atts := d.pending, d.atts
	d.Reset()
	return reconstruct(p, atts)
}

// Awaiting reports how many attachments the pending binary packet still
// needs (0 when none is pending).
func (d *Decoder) Awaiting() int {
	if d.pending == nil {
		return 0
	}
	return d.want - len(d.atts)
}

// Reset drops a pending binary packet.
func (d *Decoder) Reset() { d.pending, d.want, d.atts, d.size = nil, 0, nil, 0 }

// decodeHeader parses a text packet as socket.io-parser's decodeString
// does, with its checks; n is the attachment count of a binary packet.
func (d *Decoder) decodeHeader(s []byte) (*Packet, int, error) {
	if len(s) == 0 {
		return nil, 0, invalid("empty packet")
	}
	p := &Packet{Type: Type(s[0] - '0'), Nsp: "/"}
	if s[0] < '0' || p.Type > BinaryAck {
		return nil, 0, invalid("unknown packet type %q", s[0])
	}
	i := 1
	n := 0
	if p.Type == BinaryEvent || p.Type == BinaryAck {
		j := bytes.IndexByte(s[i:], '-')
		if j <= 0 {
			return nil, 0, invalid("illegal attachments")
		}
		v, err := strconv.Atoi(string(s[i : i+j]))
		if err != nil || v < 0 {
			return nil, 0, invalid("illegal attachments")
		}
		if v > d.limits.MaxAttachments {
			return nil, 0, invalid("%d attachments, more than the %d allowed", v, d.limits.MaxAttachments)
		}
		n = v
		i += j + 1
	}
	if i < len(s) && s[i] == '/' {
		j := bytes.IndexByte(s[i:], ',')
		end := len(s)
		if j >= 0 {
			end = i + j
		}
		if end-i > d.limits.MaxNamespaceLength {
			return nil, 0, invalid("namespace longer than %d", d.limits.MaxNamespaceLength)
		}
		p.Nsp = string(s[i:end])
		i = end
		if j >= 0 {
			i++ // the comma
		}
	}
	if i < len(s) && s[i] >= '0' && s[i] <= '9' {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		id, err := strconv.ParseUint(string(s[i:j]), 10, 64)
		// JavaScript numbers hold integers exactly up to 2^53: a larger id
		// cannot be answered faithfully by any client.
		if err != nil || id > 1<<53 {
			return nil, 0, invalid("illegal packet id")
		}
		p.ID = &id
		i = j
	}
	if i < len(s) {
		var v any
		if err := json.Unmarshal(s[i:], &v); err != nil {
			return nil, 0, invalid("payload is not JSON: %v", err)
		}
		p.Data = v
	}
	if !payloadValid(p.Type, p.Data, i < len(s)) {
		return nil, 0, invalid("invalid payload for %s", p.Type)
	}
	return p, n, nil
}

// payloadValid is socket.io-parser's isPayloadValid.
func payloadValid(t Type, data any, present bool) bool {
	switch t {
	case Connect:
		if !present {
			return true
		}
		_, ok := data.(map[string]any)
		return ok
	case Disconnect:
		return !present
	case ConnectError:
		switch data.(type) {
		case string, map[string]any:
			return true
		}
		return false
	case Event, BinaryEvent:
		a, ok := data.([]any)
		if !ok || len(a) == 0 {
			return false
		}
		switch name := a[0].(type) {
		case float64:
			return true
		case string:
			return !reserved[name]
		}
		return false
	case Ack, BinaryAck:
		_, ok := data.([]any)
		return ok
	}
	return false
}

// reconstruct replaces the placeholders of p by their attachments. Every
// placeholder must name an attachment that exists (Node's parser throws
// "illegal attachments" otherwise).
func reconstruct(p *Packet, atts [][]byte) (*Packet, error) {
	data, err := fill(p.Data, atts)
	if err != nil {
		return nil, err
	}
	p.Data = data
	if p.Type == BinaryEvent {
		p.Type = Event
	} else {
		p.Type = Ack
	}
	return p, nil
}

func fill(v any, atts [][]byte) (any, error) {
	switch t := v.(type) {
	case []any:
		for i, x := range t {
			y, err := fill(x, atts)
			if err != nil {
				return nil, err
			}
			t[i] = y
		}
	case map[string]any:
		if ph, ok := t["_placeholder"].(bool); ok && ph {
			num, ok := t["num"].(float64)
			if !ok || num != float64(int(num)) || num < 0 || int(num) >= len(atts) {
				return nil, invalid("illegal attachments")
			}
			return atts[int(num)], nil
		}
		for k, x := range t {
			y, err := fill(x, atts)
			if err != nil {
				return nil, err
			}
			t[k] = y
		}
	}
	return v, nil
}
