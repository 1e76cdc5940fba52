package emitter_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/sockstream/sockstream/emitter"
)

// A program with no clients of its own acts on the sockets of every node of
// the cluster (Go or Node) sharing its Redis.
func Example() {
	e, err := emitter.New(emitter.Options{
		URL: "redis://127.0.0.1:6379/0", // the nodes' Redis
		// StreamName, StreamCount, MaxLen: the nodes' values, if not the
		// defaults.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// To the sockets of /chat in room "news" but not in room "muted";
	// binary arguments travel as binary.
	if err := e.Of("/chat").To("news").Except("muted").Emit(ctx, "headline", "Go 2 released", []byte{0xca, 0xfe}); err != nil {
		log.Print(err) // not written, or errors.Is(err, emitter.ErrUnknownOutcome)
	}
	// Every socket of the main namespace.
	_ = e.Emit(ctx, "maintenance", map[string]any{"in": "5m"})
	// Room operations on every node.
	_ = e.In("news").SocketsJoin(ctx, "weekly")
	_ = e.In("muted").SocketsLeave(ctx, "news")
	_ = e.Of("/chat").In("banned").DisconnectSockets(ctx, true)
	// Server-side listeners of every node (Namespace.OnServerSideEmit).
	_ = e.Of("/chat").ServerSideEmit(ctx, "reload-config")
}

// New rejects invalid options before connecting.
func ExampleNew() {
	_, err := emitter.New(emitter.Options{URL: "redis://127.0.0.1:6379", StreamCount: -1})
	var oe *emitter.OptionsError
	fmt.Println(errors.Is(err, emitter.ErrInvalidOptions), errors.As(err, &oe) && oe.Field == "StreamCount")
	// Output:
	// true true
}
