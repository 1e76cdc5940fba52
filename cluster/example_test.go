package cluster_test

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
)

// A Socket.IO server whose nodes share a Redis through the Redis Streams
// transport.
func Example() {
	tr, err := cluster.New(cluster.Options{
		URL:         "redis://127.0.0.1:6379/0",
		StreamCount: 1,
		MaxLen:      100_000, // survive longer outages without trimming unread entries
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()

	b, err := adapter.New(tr, adapter.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := socket.DefaultServerOptions()
	opts.SetAdapter(b)
	io := socket.NewServer(nil, opts)
	defer io.Close(nil)
	http.Handle("/socket.io/", io.ServeHandler(nil))
	// http.ListenAndServe(":3000", nil)
}

// New rejects invalid options, and only those: it does not wait for Redis.
func ExampleNew() {
	_, err := cluster.New(cluster.Options{URL: "redis://127.0.0.1:6379", BlockTime: time.Microsecond})
	fmt.Println(errors.Is(err, cluster.ErrInvalidOptions))
	var oe *cluster.OptionsError
	if errors.As(err, &oe) {
		fmt.Println(oe.Field)
	}
	// Output:
	// true
	// BlockTime
}
