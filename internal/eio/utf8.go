package eio

// replaceInvalidUTF8 decodes b as UTF-8 the way the WHATWG decoder (and so
// Node's Buffer and TextDecoder) does: every maximal subpart of an invalid
// sequence becomes one U+FFFD. bytes.ToValidUTF8 would turn a whole run of
// invalid bytes into one, so "\xff\xfe" would reach the application as one
// replacement character where a Node server sees two.
func replaceInvalidUTF8(b []byte) []byte {
	const replacement = "\uFFFD"
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		need, lower, upper := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lower = 0xA0
			} else if c == 0xED {
				upper = 0x9F // no surrogates
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lower = 0x90
			} else if c == 0xF4 {
				upper = 0x8F // nothing above U+10FFFF
			}
		default:
			out = append(out, replacement...)
			i++
			continue
		}
		j, ok := i+1, true
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lower || b[j] > upper {
				ok = false
				break
			}
			lower, upper = 0x80, 0xBF
			j++
		}
		if ok {
			out = append(out, b[i:j]...)
		} else {
			// The bytes read so far are one maximal subpart; the byte that
			// broke the sequence is decoded afresh.
			out = append(out, replacement...)
		}
		i = j
	}
	return out
}
