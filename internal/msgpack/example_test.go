package msgpack_test

import (
	"fmt"

	"github.com/sockstream/sockstream/internal/msgpack"
)

func ExampleDecode() {
	// {"n": 1, "tags": ["a"]}, as @msgpack/msgpack encodes it.
	v, err := msgpack.Decode([]byte{0x82, 0xa1, 'n', 0x01, 0xa4, 't', 'a', 'g', 's', 0x91, 0xa1, 'a'})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := v.(map[string]any)
	fmt.Println(m["n"], m["tags"])
	// Output: 1 [a]
}
