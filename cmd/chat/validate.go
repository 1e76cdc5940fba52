package main

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Limits on what clients send. The page enforces them too, but the server is
// the one that must.
const (
	maxNick    = 24
	maxRoom    = 32
	maxMessage = 2000
)

var (
	errNick    = errors.New("a nickname is 1 to 24 letters, digits, - or _")
	errRoom    = errors.New("a room name is 1 to 32 letters, digits, - or _")
	errMessage = errors.New("a message is 1 to 2000 characters")
	errNoRoom  = errors.New("join a room first")
)

// validName accepts 1 to max ASCII letters, digits, '-' and '_': names go
// into room names and onto pages, so they stay boring.
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0
}

// validText accepts 1 to maxMessage characters of valid UTF-8 that are not
// all white space. HTML is fine: the page shows text, never markup.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.TrimSpace(s) != "" && utf8.RuneCountInString(s) <= maxMessage
}
