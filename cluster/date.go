package cluster

import "time"

// Date is a JavaScript Date received from another node: the MessagePack
// timestamp extension, which is how the Node package encodes a Date in a
// message that carries binary. It is a time.Time whose JSON form is
// Date.prototype.toJSON's (UTC, always three fractional digits), so that a
// Go node's clients receive it exactly as a Node node's clients would.
// Sent on, it is encoded as a timestamp again.
type Date struct{ time.Time }

// jsDateLayout is Date.prototype.toISOString's format.
const jsDateLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON writes the date as JSON.stringify writes a Date.
func (d Date) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(jsDateLayout)+2)
	b = append(b, '"')
	b = d.UTC().AppendFormat(b, jsDateLayout)
	return append(b, '"'), nil
}

// String returns the date as Date.prototype.toISOString does.
func (d Date) String() string { return d.UTC().Format(jsDateLayout) }
