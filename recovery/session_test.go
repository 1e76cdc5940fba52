package recovery

import (
	"strings"
	"testing"
)

const (
	testPID  = "AbCdEfGhIjKlMnOpQrSt"     // 20 characters, as Node's base64id
	testPID2 = "AbCdEfGhIjKlMnOpQrStUv_-" // 24 characters, as zishang520's
)

func TestValidPID(t *testing.T) {
	for _, pid := range []string{testPID, testPID2, "aaaaaaaaaaaaaaaaaaaa", "-_-_-_-_-_-_-_-_-_-_"} {
		if !ValidPID(pid) {
			t.Errorf("ValidPID(%q) = false", pid)
		}
	}
	for _, pid := range []string{"", "short", testPID + "x", testPID[:19], "AbCdEfGhIjKlMnOpQrS*", "AbCdEfGhIjKlMnOpQrS/",
		"AbCdEfGhIjKlMnOpQrS=", "AbCdEfGhIjKlMnOpQrS ", "AbCdEfGhIjKlMnOpQrSé", strings.Repeat("a", 1000)} {
		if ValidPID(pid) {
			t.Errorf("ValidPID(%q) = true", pid)
		}
	}
}
