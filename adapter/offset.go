package adapter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidOffset is returned (wrapped) by ParseOffset for a string that
// does not match ^[0-9]+-[0-9]+$ (the check Node's restoreSession makes)
// or whose parts do not fit in 64 bits (Redis stream ids are two unsigned
// 64-bit integers).
var ErrInvalidOffset = errors.New("invalid offset")

// Offset is the position of a packet in the cluster's history, the offset
// connection state recovery hands to clients: a Redis stream entry id,
// milliseconds and a sequence number, written "<ms>-<seq>". Transports
// return offsets as strings (Transport.Publish); this is the one type that
// parses and orders them, for the adapter, package recovery's logs and
// package cluster's stream.
//
// Compare offsets with Compare, never as strings: "999-0" sorts after
// "1000-0" as a string. The zero Offset is "0-0", before every entry.
type Offset struct {
	Ms  uint64
	Seq uint64
}

// ParseOffset parses "<ms>-<seq>".
func ParseOffset(s string) (Offset, error) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok || !allDigits(msPart) || !allDigits(seqPart) {
		return Offset{}, fmt.Errorf("%w %q: does not match <ms>-<seq>", ErrInvalidOffset, truncateOffset(s))
	}
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if err1 != nil || err2 != nil {
		return Offset{}, fmt.Errorf("%w %q: out of range", ErrInvalidOffset, truncateOffset(s))
	}
	return Offset{Ms: ms, Seq: seq}, nil
}

// truncateOffset keeps an error about a client-chosen string short.
func truncateOffset(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}

// allDigits reports whether s is one or more ASCII digits: the regular
// expression allows nothing else, not even the sign or the underscores
// some of strconv's parsers take.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns "<ms>-<seq>".
func (o Offset) String() string {
	b := make([]byte, 0, 32)
	b = strconv.AppendUint(b, o.Ms, 10)
	b = append(b, '-')
	return string(strconv.AppendUint(b, o.Seq, 10))
}

// Compare returns -1, 0 or +1 as o is before, equal to or after p.
func (o Offset) Compare(p Offset) int {
	switch {
	case o.Ms < p.Ms:
		return -1
	case o.Ms > p.Ms:
		return 1
	case o.Seq < p.Seq:
		return -1
	case o.Seq > p.Seq:
		return 1
	}
	return 0
}

// Next returns the smallest offset after o, the exclusive start of a read
// after o (XRANGE's "(" needs Redis 6.2; Node computes the same).
func (o Offset) Next() Offset {
	if o.Seq == ^uint64(0) {
		return Offset{Ms: o.Ms + 1}
	}
	return Offset{Ms: o.Ms, Seq: o.Seq + 1}
}
