package server_test

import (
	"context"
	"log"
	"log/slog"

	"github.com/sockstream/sockstream/server"
)

// WebSocket per-message deflate: clients that offer it get the messages of
// at least 2 KiB compressed, each broadcast compressed once for all of
// them; a payload that is compressed already goes as it is.
func ExampleBroadcast_Compress() {
	srv, err := server.New(server.Config{
		Logger:                     slog.New(slog.DiscardHandler),
		PerMessageDeflate:          true,
		PerMessageDeflateThreshold: 2048,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()

	var report []byte    // a large JSON document
	var thumbnail []byte // a JPEG: deflate would not shrink it
	_ = srv.To("dashboard").Emit("report", report)
	_ = srv.To("gallery").Compress(false).Emit("thumbnail", thumbnail)
}
