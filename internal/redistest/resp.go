package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Error is a Redis error reply, such as "ERR unknown command" or
// "MOVED 3999 127.0.0.1:7001". Do methods return it as their error; inside an
// array reply (for example the result of EXEC) it appears as an element value.
type Error string

func (e Error) Error() string { return string(e) }

// maxBulk bounds the length of a bulk string or aggregate a reply may
// announce, so that a corrupted stream cannot make the reader allocate
// gigabytes.
const maxBulk = 512 << 20

// Conn is a minimal RESP connection: one command at a time (or pipelined with
// Send and Receive), no pooling, no reconnects. It is not safe for concurrent
// use.
type Conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

// Dial connects to a Redis server at addr ("127.0.0.1:port") with the given
// dial timeout. The connection is not authenticated and has no deadline.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	return dial(addr, timeout, nil)
}

// dial connects to addr, over TLS with cfg when cfg is not nil, the TLS
// handshake included in timeout.
func dial(addr string, timeout time.Duration, cfg *tls.Config) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	var nc net.Conn
	var err error
	if cfg != nil {
		nc, err = tls.DialWithDialer(&d, "tcp", addr, cfg)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}, nil
}

// Do sends one command and reads its reply. A Redis error reply is returned
// as an Error; see the package documentation for the Go types of replies.
func (c *Conn) Do(args ...string) (any, error) {
	if err := c.Send(args...); err != nil {
		return nil, err
	}
	return c.Receive()
}

// Send writes one command without reading its reply.
func (c *Conn) Send(args ...string) error {
	if len(args) == 0 {
		return errors.New("redistest: empty command")
	}
	c.w.WriteByte('*')
	c.w.WriteString(strconv.Itoa(len(args)))
	c.w.WriteString("\r\n")
	for _, a := range args {
		c.w.WriteByte('$')
		c.w.WriteString(strconv.Itoa(len(a)))
		c.w.WriteString("\r\n")
		c.w.WriteString(a)
		c.w.WriteString("\r\n")
	}
	return c.w.Flush()
}

// Receive reads one reply. A Redis error reply is returned as an Error.
func (c *Conn) Receive() (any, error) {
	v, err := readReply(c.r)
	if err != nil {
		return nil, err
	}
	if e, ok := v.(Error); ok {
		return nil, e
	}
	return v, nil
}

// SetDeadline sets the read and write deadline of the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// auth authenticates c with an optional ACL user and a password.
func (c *Conn) auth(user, password string) error {
	if password == "" {
		return nil
	}
	var err error
	if user != "" {
		_, err = c.Do("AUTH", user, password)
	} else {
		_, err = c.Do("AUTH", password)
	}
	return err
}

// doOnce dials addr (over TLS with tc when not nil), authenticates, runs an
// optional ASKING and then args, all within timeout.
func doOnce(addr string, tc *tls.Config, user, password string, timeout time.Duration, asking bool, args []string) (any, error) {
	deadline := time.Now().Add(timeout)
	c, err := dial(addr, timeout, tc)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if err := c.auth(user, password); err != nil {
		return nil, fmt.Errorf("redistest: AUTH at %s: %w", addr, err)
	}
	if asking {
		if _, err := c.Do("ASKING"); err != nil {
			return nil, err
		}
	}
	return c.Do(args...)
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than the buffer (a huge simple string or error): collect it.
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redistest: malformed RESP line %q", line)
	}
	return line[:len(line)-2], nil
}

func parseLen(b []byte) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("redistest: malformed RESP length %q", b)
	}
	if n > maxBulk {
		return 0, fmt.Errorf("redistest: RESP length %d too large", n)
	}
	return n, nil
}

func readBulk(r *bufio.Reader, n int) (string, error) {
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return "", errors.New("redistest: bulk string not terminated by CRLF")
	}
	return string(buf[:n]), nil
}

func readAggregate(r *bufio.Reader, n int) ([]any, error) {
	out := make([]any, 0, min(n, 1024))
	for range n {
		v, err := readReply(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// readReply reads one RESP2 or RESP3 value. Error replies are returned as
// Error values, not as errors; the error result is for I/O and protocol
// failures only.
func readReply(r *bufio.Reader) (any, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	kind, body := line[0], line[1:]
	switch kind {
	case '+':
		return string(body), nil
	case '-':
		return Error(body), nil
	case ':':
		n, err := strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redistest: malformed RESP integer %q", body)
		}
		return n, nil
	case '$', '=', '!':
		n, err := parseLen(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		s, err := readBulk(r, n)
		if err != nil {
			return nil, err
		}
		switch kind {
		case '=':
			if len(s) >= 4 && s[3] == ':' {
				s = s[4:] // "txt:" or "mkd:"
			}
		case '!':
			return Error(s), nil
		}
		return s, nil
	case '*', '~', '>', '%', '|':
		n, err := parseLen(body)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		vals, err := readAggregate(r, n)
		if err != nil {
			return nil, err
		}
		if kind == '|' {
			// Attributes describe the next reply; skip them.
			return readReply(r)
		}
		return vals, nil
	case '_':
		return nil, nil
	case '#':
		switch string(body) {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("redistest: malformed RESP boolean %q", body)
	case ',':
		f, err := strconv.ParseFloat(string(body), 64)
		if err != nil {
			return nil, fmt.Errorf("redistest: malformed RESP double %q", body)
		}
		return f, nil
	case '(':
		return string(body), nil
	}
	return nil, fmt.Errorf("redistest: unknown RESP type %q", kind)
}
