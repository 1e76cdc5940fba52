package adapter

import "testing"

func TestNodeTime(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-30T03:00:33Z":      "Mon Nov 30 2026 03:00:33 GMT+0000 (Coordinated Universal Time)",
		"2026-11-30T04:00:33+01:00": "Mon Nov 30 2026 04:00:33 GMT+0100 (+01:00)",
		"not a time":                "not a time",
	} {
		if got := nodeTime(in); got != want {
			t.Errorf("nodeTime(%q) = %q, want %q", in, got, want)
		}
	}
}
