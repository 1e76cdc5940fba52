package engineio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// controlWriteWait bounds the write of a pong or close frame, which runs on
// the reader goroutine.
const controlWriteWait = time.Second

// controlLockPoll is how often the reader tries the write lock while a
// write holds it.
const controlLockPoll = 5 * time.Millisecond

// maxPooledFrameBuffer keeps the buffers of exceptionally large batches out
// of the pool, so that one big message does not pin its memory for good.
const maxPooledFrameBuffer = 64 << 10

// frameBuffers holds the buffers batches are encoded into. A connection
// holds one only while it writes, so idle connections hold none.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeLoop writes the queued batches until the queue is empty, then exits;
// the next Send starts another. Everything queued by the time a write
// starts goes out in that one write.
func (t *wsTransport) writeLoop() {
	for {
		t.mu.Lock()
		batches := t.pending
		t.pending = nil
		if len(batches) == 0 || t.closed {
			t.writing = false
			t.mu.Unlock()
			release(batches)
			return
		}
		t.mu.Unlock()

		err := t.writeBatches(batches)
		if err != nil {
			release(batches)
			// As upstream routes it (an "error" closes the session), and
			// the connection closed whatever listens, so nothing waits on
			// a connection that cannot be written.
			t.stop()
			t.fail(err)
			_ = t.conn.Close()
			return
		}
		// Per Send, in order, as upstream: the engine socket runs that
		// Send's callbacks on "drain" and flushes what it buffered since
		// on "ready", which queues the next batch here.
		for range batches {
			t.Emit("drain")
			t.SetWritable(true)
			t.Emit("ready")
		}
		// A waiting Send (the probe answer) returns after its drain, as
		// upstream's Send followed by a wait for "drain" would.
		release(batches)
	}
}

// release tells whoever waits on batches that they are done with.
func release(batches []sendBatch) {
	for _, b := range batches {
		if b.written != nil {
			close(b.written)
		}
	}
}

// writeBatches writes the packets of batches, in order, in as few writes as
// the compression setting allows: one when it is off.
func (t *wsTransport) writeBatches(batches []sendBatch) error {
	bp := frameBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooledFrameBuffer {
			*bp = buf[:0]
			frameBuffers.Put(bp)
		}
	}()

	deflate := t.PerMessageDeflate()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for _, b := range batches {
		for _, p := range b.packets {
			data, isBinary, err := t.encode(p, deflate != nil)
			if err != nil {
				return err
			}
			if deflate == nil || !wantsCompression(p, len(data), deflate) {
				buf = appendFrame(buf, dataOpcode(isBinary), data)
				continue
			}
			// Compressed frames come from gorilla; what is buffered goes
			// first to keep the order.
			if err := t.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := t.writeCompressed(isBinary, data); err != nil {
				return err
			}
		}
	}
	return t.flush(buf)
}

// encode returns the WebSocket payload of p and whether it is binary. A
// broadcast's frame, encoded once for all its recipients, is used as is
// (read only: other connections read it at the same time), except under
// compression, where upstream encodes per connection as well.
func (t *wsTransport) encode(p *packet.Packet, deflate bool) (data []byte, isBinary bool, err error) {
	// Upstream's queue survived a panicking encoder (a packet's data is any
	// io.Reader); here the panic fails the write, which closes the
	// connection, not the process. In this function, not in writeLoop, to
	// keep the writer goroutine's stack small.
	defer func() {
		if r := recover(); r != nil {
			data, isBinary, err = nil, false, fmt.Errorf("engineio: encoding a %v packet panicked: %v", p.Type, r)
		}
	}()
	if p == nil {
		return nil, false, errors.New("engineio: nil packet")
	}
	if !deflate && p.Options != nil && p.Options.WsPreEncodedFrame != nil {
		_, text := p.Options.WsPreEncodedFrame.(*types.StringBuffer)
		return p.Options.WsPreEncodedFrame.Bytes(), !text, nil
	}
	encoded, err := t.Parser().EncodePacket(p, t.SupportsBinary())
	if err != nil {
		return nil, false, fmt.Errorf("engineio: encode %s packet: %w", p.Type, err)
	}
	_, text := encoded.(*types.StringBuffer)
	return encoded.Bytes(), !text, nil
}

// wantsCompression applies upstream's rule: compress unless the packet
// opts out or is under the threshold.
func wantsCompression(p *packet.Packet, size int, deflate *types.PerMessageDeflate) bool {
	if p.Options != nil && p.Options.Compress != nil && !*p.Options.Compress {
		return false
	}
	return size >= deflate.Threshold
}

// flush writes buf to the connection. Called holding wmu.
func (t *wsTransport) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	_, err := t.raw.Write(buf)
	return err
}

// writeCompressed writes one message through gorilla's compressing writer.
// Called holding wmu.
func (t *wsTransport) writeCompressed(isBinary bool, data []byte) error {
	mt := ws.TextMessage
	if isBinary {
		mt = ws.BinaryMessage
	}
	t.conn.EnableWriteCompression(true)
	w, err := t.conn.NextWriter(mt)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// answerPing is the reader's answer to a WebSocket ping (browsers send
// none; other clients may). Behind a stalled write the pong is dropped, as
// gorilla's own would be once its deadline passed.
func (t *wsTransport) answerPing(appData string) error {
	t.writeControl(ws.PongMessage, []byte(appData))
	return nil
}

// answerClose echoes the client's close frame, as gorilla's default does;
// the reader then ends with the close error. If a write stalled on the
// client holds the connection, the echo is skipped and the connection
// closed: the client is going anyway.
func (t *wsTransport) answerClose(code int, _ string) error {
	if !t.writeControl(ws.CloseMessage, ws.FormatCloseMessage(code, "")) {
		_ = t.raw.Close()
	}
	return nil
}

// writeControl writes a control frame, waiting at most controlWriteWait
// for a write on its way and as long again for its own. It reports false
// if it gave up waiting (the frame is dropped); a failed write is left to
// the reader, which sees the connection fail next. It runs on the reader
// goroutine, which must not wait for a client that stopped reading.
func (t *wsTransport) writeControl(opcode int, payload []byte) bool {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	frame := appendFrame(make([]byte, 0, 2+len(payload)), byte(opcode), payload)
	// Polled rather than queued on: control frames are rare, and the
	// writer's path stays a plain mutex.
	for deadline := time.Now().Add(controlWriteWait); !t.wmu.TryLock(); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(controlLockPoll)
	}
	defer t.wmu.Unlock()
	_ = t.raw.SetWriteDeadline(time.Now().Add(controlWriteWait))
	_, _ = t.raw.Write(frame)
	_ = t.raw.SetWriteDeadline(time.Time{})
	return true
}

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	finBit   = 0x80
)

// dataOpcode is the opcode of a data frame.
func dataOpcode(isBinary bool) byte {
	if isBinary {
		return opBinary
	}
	return opText
}

// appendFrame appends one unmasked, unfragmented frame, the form a server
// sends (RFC 6455, section 5.2); a control frame's payload is at most 125
// bytes.
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, finBit|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}
