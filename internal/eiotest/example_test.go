package eiotest_test

import (
	"fmt"

	"github.com/sockstream/sockstream/internal/eiotest"
)

func ExampleParseOpen() {
	o, err := eiotest.ParseOpen(`0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}`)
	fmt.Println(o.SID, o.Upgrades, o.PingInterval, o.PingTimeout, o.MaxPayload, err)
	_, err = eiotest.ParseOpen(`0{"sid":"abc"}`)
	fmt.Println(err != nil)
	// Output:
	// abc [websocket] 300 200 1000000 <nil>
	// true
}
