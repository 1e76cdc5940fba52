package adapter_test

import (
	"fmt"
	"log"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/adapter/adaptertest"
)

// Two zishang520 servers sharing one in-process transport hub form a
// cluster; with package cluster's Transport in place of the hub, they
// would share a Redis.
func ExampleNew() {
	hub := adaptertest.NewHub()
	var servers []*socket.Server
	for range 2 {
		b, err := adapter.New(hub.NewTransport(), adapter.Config{Registerer: prometheus.NewRegistry()})
		if err != nil {
			log.Fatal(err)
		}
		opts := socket.DefaultServerOptions()
		opts.SetAdapter(b)
		servers = append(servers, socket.NewServer(nil, opts))
	}
	// Each namespace adapter subscribes in the background as its server
	// starts; give them a moment before counting.
	count := servers[0].Sockets().Adapter().ServerCount()
	for deadline := time.Now().Add(5 * time.Second); count < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		count = servers[0].Sockets().Adapter().ServerCount()
	}
	fmt.Println("servers in the cluster:", count)
	for _, io := range servers {
		io.Close(nil)
	}
	// Output: servers in the cluster: 2
}
