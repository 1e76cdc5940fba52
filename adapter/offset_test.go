package adapter

import (
	"errors"
	"testing"
)

func TestParseOffset(t *testing.T) {
	for s, want := range map[string]Offset{
		"0-0":              {},
		"1700000000000-0":  {Ms: 1700000000000},
		"1700000000000-42": {Ms: 1700000000000, Seq: 42},
		"007-01":           {Ms: 7, Seq: 1}, // the regular expression allows leading zeros
		"18446744073709551615-18446744073709551615": {Ms: ^uint64(0), Seq: ^uint64(0)},
	} {
		got, err := ParseOffset(s)
		if err != nil || got != want {
			t.Errorf("ParseOffset(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-", "1", "1-", "-1", "+1-0", "1-+0", "1--0", "1-0-0", " 1-0", "1-0 ", "a-0", "1-0x",
		"18446744073709551616-0", "1-18446744073709551616", "1700000000000"} {
		if o, err := ParseOffset(s); !errors.Is(err, ErrInvalidOffset) {
			t.Errorf("ParseOffset(%q) = %v, %v; want ErrInvalidOffset", s, o, err)
		}
	}
}

func TestOffsetOrder(t *testing.T) {
	a, b, c := Offset{Ms: 999, Seq: 5}, Offset{Ms: 1000}, Offset{Ms: 1000, Seq: 1}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || b.Compare(c) != -1 || c.Compare(c) != 0 {
		t.Fatal("Compare is not numeric")
	}
	if a.String() != "999-5" || b.Next() != c {
		t.Fatalf("String/Next: %s %v", a, b.Next())
	}
	if got := (Offset{Ms: 3, Seq: ^uint64(0)}).Next(); got != (Offset{Ms: 4}) {
		t.Fatalf("Next at the sequence limit = %v", got)
	}
}
