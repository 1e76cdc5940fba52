package eio

import (
	"testing"
	"unicode/utf8"
)

// The expected strings are what Node's Buffer.toString("utf8") gives.
func TestReplaceInvalidUTF8(t *testing.T) {
	cases := map[string]string{
		"abc":                  "abc",
		"\xff\xfe":             "\uFFFD\uFFFD",
		"a\xe2\x82b":           "a\uFFFDb",           // a truncated sequence is one subpart
		"\xe2\x82\xac":         "€",                  // valid
		"\xed\xa0\x80":         "\uFFFD\uFFFD\uFFFD", // a surrogate: ED then two lone continuations
		"\xf0\x9f\x98":         "\uFFFD",             // truncated at the end
		"\xf4\x90\x80\x80":     "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\xc0\xaf":             "\uFFFD\uFFFD", // overlong
		"\x80x":                "\uFFFDx",
		"ok\xf0\x9f\x98\x80ok": "ok😀ok",
	}
	for in, want := range cases {
		got := string(replaceInvalidUTF8([]byte(in)))
		if got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%q: result %q is not valid UTF-8", in, got)
		}
	}
}
