package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sockstream/sockstream/adapter"
	"github.com/sockstream/sockstream/cluster"
	"github.com/sockstream/sockstream/server"
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

	b, err := adapter.New(tr, adapter.Config{})
	if err != nil {
		_ = tr.Close()
		fmt.Println(err)
		return
	}
	// The server closes the transport at Shutdown, after its clients and
	// adapters; /readyz follows the transport's readiness.
	srv, err := server.New(server.Config{}, server.WithAdapter(b, tr.Ready, tr.Close))
	if err != nil {
		_ = tr.Close()
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(context.Background())
	http.Handle("/", srv.Handler())
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
