package adapter_test

import (
	"reflect"
	"testing"

	"github.com/sockstream/sockstream/adapter"
)

// TestSelection: each step returns a new selection and leaves the one it
// came from as it was (a partial selection can be shared), rooms are kept
// once each, and Options always carries both arrays.
func TestSelection(t *testing.T) {
	var none adapter.Selection
	if o := none.Options(); o.Rooms == nil || o.Except == nil || len(o.Rooms)+len(o.Except) != 0 {
		t.Fatalf("empty selection options %#v, want empty, non-nil arrays", o)
	}
	base := none.To("a", "b")
	x := base.To("c", "a").Except("z", "z")
	y := base.To("d").WithFlags(func(f *adapter.Flags) { f.Volatile = true })
	if got := base.Options(); !reflect.DeepEqual(got.Rooms, []string{"a", "b"}) || len(got.Except) != 0 || got.Flags.Volatile {
		t.Errorf("base changed: %#v", got)
	}
	if got := x.Options(); !reflect.DeepEqual(got.Rooms, []string{"a", "b", "c"}) || !reflect.DeepEqual(got.Except, []string{"z"}) {
		t.Errorf("x = %#v", got)
	}
	if got := y.Options(); !reflect.DeepEqual(got.Rooms, []string{"a", "b", "d"}) || !got.Flags.Volatile || !y.Flags().Volatile {
		t.Errorf("y = %#v", got)
	}
	o := x.Options()
	o.Rooms[0] = "changed"
	if x.Options().Rooms[0] != "a" {
		t.Error("Options shares its slices with the selection")
	}
}
