package engineio_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"

	"github.com/sockstream/sockstream/internal/engineio"
	"github.com/sockstream/sockstream/internal/engineio/eiotest"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// An Engine.IO server whose long-polling transport closes the session on an
// invalid payload, as Node's does.
func ExampleNewPolling() {
	polling := engineio.NewPolling(slog.New(slog.DiscardHandler))
	opts := config.DefaultServerOptions()
	opts.SetTransports(types.NewSet[transports.TransportCtor](polling, engineio.WebSocket{}))
	eng := engine.NewServer(opts)
	polling.Attach(eng)
	defer eng.Close()

	hs := httptest.NewServer(engineio.ReleaseAfterHijack(eng))
	defer hs.Close()

	ctx := context.Background()
	p := &eiotest.Poller{URL: hs.URL + "/engine.io/"}
	if _, err := p.Handshake(ctx); err != nil {
		fmt.Println(err)
		return
	}
	post, _ := p.Post(ctx, "abc")
	poll, _ := p.Get(ctx)
	fmt.Println("POST:", post.Status, "next poll:", poll.Status, poll.Body)
	fmt.Println("invalid payloads:", polling.Stats().InvalidPayloads)
	// Output:
	// POST: 400 next poll: 400 {"code":1,"message":"Session ID unknown"}
	// invalid payloads: 1
}
